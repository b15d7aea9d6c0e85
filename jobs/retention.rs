//! `retention`: delete what has been kept long enough, rule by rule
//! (`bizcontacts_store::retention`), in chunks of `retention.chunk_rows`,
//! each its own transaction; the counts per rule in the job's progress
//! message and in a closing audit event.
//!
//! Idempotent: a rule deletes rows older than a cutoff, so a rerun (a retry
//! after a kill, or the next day's run) deletes only what is still there.
//! Daily at 03:30 UTC.

use async_trait::async_trait;
use bizcontacts_config::RetentionSettings;
use bizcontacts_queue::args::{JobArgs, Worker};
use bizcontacts_queue::handler::{JobContext, JobError, RetryPolicy, Starter};
use bizcontacts_queue::scheduler::Schedule;
use bizcontacts_store::audit::{self, Actor, NewEvent};
use bizcontacts_store::retention::{self, Rule};
use chrono::{Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionArgs {
    /// The UTC day of the run.
    pub day: NaiveDate,
}

impl JobArgs for RetentionArgs {
    const KIND: &'static str = "retention";

    fn retry() -> RetryPolicy {
        RetryPolicy::new(
            5,
            std::time::Duration::from_secs(60),
            std::time::Duration::from_secs(3600),
        )
    }
}

pub struct RetentionJob(pub RetentionSettings);

impl RetentionJob {
    /// Each rule with how many days its records are kept.
    fn rules(&self) -> [(Rule, u32); 10] {
        let s = &self.0;
        [
            (retention::AUDIT, s.audit_days),
            (retention::UPLOADS, s.uploads_days),
            (retention::REJECTED_ROWS, s.rejected_rows_days),
            (retention::HIGHLEVEL_WEBHOOKS, s.webhook_days),
            (retention::STRIPE_EVENTS, s.webhook_days),
            (retention::CRM_CONTACT_EVENTS, s.webhook_days),
            (retention::SESSIONS, s.expired_days),
            (retention::INVITATIONS, s.expired_days),
            (retention::OAUTH_STATES, s.expired_days),
            // Expired exports go at once: their expiry is their retention.
            (retention::EXPORTS, 0),
        ]
    }
}

fn report(counts: &BTreeMap<&str, u64>) -> String {
    counts
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[async_trait]
impl Worker for RetentionJob {
    type Args = RetentionArgs;

    fn starter(&self) -> Starter {
        Starter::Platform
    }

    async fn work(&self, ctx: &mut JobContext, _: RetentionArgs) -> Result<(), JobError> {
        let chunk = self.0.chunk_rows.max(1);
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for (rule, days) in self.rules() {
            let cutoff = Utc::now() - Duration::days(i64::from(days));
            let deleted = counts.entry(rule.name).or_default();
            loop {
                ctx.checkpoint().await?;
                let n = retention::delete_chunk(ctx.pool(), rule, cutoff, chunk)
                    .await
                    .map_err(|e| JobError::Retryable(e.into()))?;
                *deleted += n;
                if n < chunk as u64 {
                    break;
                }
            }
            let done: u64 = counts.values().sum();
            ctx.progress(done as i64, None, Some(&report(&counts)))
                .await?;
        }
        let mut tx = ctx.pool().begin().await?;
        audit::record(
            &mut *tx,
            NewEvent {
                tenant_id: None,
                actor: Actor::system(),
                action: "retention.enforced",
                target_type: Some("job"),
                target_id: Some(ctx.job_id.to_string()),
                details: serde_json::to_value(&counts).expect("counts serialize"),
                request_id: None,
            },
        )
        .await
        .map_err(|e| JobError::Retryable(e.into()))?;
        ctx.complete_in(&mut tx).await?;
        tx.commit().await?;
        tracing::info!(counts = %report(&counts), "retention enforced");
        Ok(())
    }
}

/// Daily at 03:30 UTC (after the nightly pulls' hour).
pub fn schedule() -> Schedule {
    Schedule::new(
        RetentionArgs::KIND,
        "0 30 3 * * *",
        Arc::new(|tick, _pool| {
            Box::pin(async move {
                Ok(vec![RetentionArgs {
                    day: tick.date_naive(),
                }
                .job()])
            })
        }),
    )
    .expect("static cron expression")
}
