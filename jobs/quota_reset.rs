//! `quota_reset`: start a new usage day for every tenant.
//!
//! Idempotent: it inserts the day's `usage_daily` row for each tenant with
//! `ON CONFLICT DO NOTHING`, so running it twice for the same day changes
//! nothing, and counters already accumulated that day are never reset.

use async_trait::async_trait;
use bizcontacts_queue::args::{JobArgs, Worker};
use bizcontacts_queue::handler::{JobContext, JobError, RetryPolicy, Starter};
use bizcontacts_queue::scheduler::Schedule;
use bizcontacts_store::usage;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaResetArgs {
    /// The UTC day to open.
    pub day: NaiveDate,
}

impl JobArgs for QuotaResetArgs {
    const KIND: &'static str = "quota_reset";

    fn retry() -> RetryPolicy {
        RetryPolicy::new(10, Duration::from_secs(5), Duration::from_secs(600))
    }
}

pub struct QuotaReset;

#[async_trait]
impl Worker for QuotaReset {
    type Args = QuotaResetArgs;

    fn starter(&self) -> Starter {
        Starter::Platform
    }

    async fn work(&self, ctx: &mut JobContext, params: QuotaResetArgs) -> Result<(), JobError> {
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
        QuotaResetArgs::KIND,
        "0 0 0 * * *",
        Arc::new(|tick, _pool| {
            Box::pin(async move {
                Ok(vec![QuotaResetArgs {
                    day: tick.date_naive(),
                }
                .job()])
            })
        }),
    )
    .expect("static cron expression")
}
