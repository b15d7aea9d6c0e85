//! `quota_reset`: start a new usage day for every tenant.
//!
//! Idempotent: it inserts the day's `usage_daily` row for each tenant with
//! `ON CONFLICT DO NOTHING`, so running it twice for the same day changes
//! nothing, and counters already accumulated that day are never reset.

use async_trait::async_trait;
use bizcontacts_queue::handler::{
    params_decode_as, JobContext, JobError, JobHandler, RetryPolicy, Starter,
};
use bizcontacts_queue::job::NewJob;
use bizcontacts_queue::scheduler::Schedule;
use bizcontacts_store::usage;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

pub const KIND: &str = "quota_reset";

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The UTC day to open.
    pub day: NaiveDate,
}

pub struct QuotaReset;

#[async_trait]
impl JobHandler for QuotaReset {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn starter(&self) -> Starter {
        Starter::Platform
    }

    fn retry(&self) -> RetryPolicy {
        RetryPolicy::new(10, Duration::from_secs(5), Duration::from_secs(600))
    }

    fn validate(&self, params: &serde_json::Value) -> Result<(), String> {
        params_decode_as::<Params>(params)
    }

    async fn run(&self, ctx: &mut JobContext) -> Result<(), JobError> {
        let params: Params = ctx.params()?;
        let mut tx = ctx.pool().begin().await?;
        let opened = usage::open_day_for_all(&mut *tx, params.day)
            .await
            .map_err(|e| JobError::Retryable(e.into()))?;
        ctx.complete_in(&mut tx).await?;
        tx.commit().await?;
        tracing::info!(day = %params.day, tenants = opened, "usage day opened");
        Ok(())
    }
}

/// Daily at 00:00 UTC, for the day that starts then.
pub fn schedule() -> Schedule {
    Schedule::new(
        KIND,
        "0 0 0 * * *",
        Arc::new(|tick, _pool| {
            Box::pin(async move {
                Ok(vec![NewJob {
                    tenant_id: None,
                    kind: KIND.into(),
                    params: serde_json::json!({ "day": tick.date_naive() }),
                    idempotency_key: None,
                    max_attempts: QuotaReset.retry().max_attempts,
                    run_after: None,
                    created_by: None,
                }])
            })
        }),
    )
    .expect("static cron expression")
}
