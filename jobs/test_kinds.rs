//! Kinds that exist only in test builds (`--features test-kinds`), to exercise
//! the platform itself: a no-op, a sleeper with an exactly-once side effect,
//! and a job that fails.

use async_trait::async_trait;
use bizcontacts_domain::Permission;
use bizcontacts_queue::args::{JobArgs, Worker};
use bizcontacts_queue::handler::{JobContext, JobError, Registry, RetryPolicy, Starter};
use bizcontacts_queue::scheduler::Schedule;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

pub fn register(r: Registry) -> Registry {
    r.with(Noop).with(Sleep).with(Fail)
}

/// A fast `test_noop` schedule, only when BIZCONTACTS_TEST_TICK (a cron
/// expression) is set, for tests of several scheduler replicas.
pub fn schedule() -> Option<Schedule> {
    let expr = std::env::var("BIZCONTACTS_TEST_TICK").ok()?;
    Some(
        Schedule::new(
            "test_tick",
            &expr,
            Arc::new(|_, _| Box::pin(async { Ok(vec![NoopArgs {}.job()]) })),
        )
        .expect("BIZCONTACTS_TEST_TICK is a valid cron expression"),
    )
}

fn test_policy() -> RetryPolicy {
    RetryPolicy::new(3, Duration::from_millis(100), Duration::from_millis(400))
}

/// `test_noop`: does nothing. Idempotent trivially.
pub struct Noop;

#[derive(Serialize, Deserialize)]
pub struct NoopArgs {}

impl JobArgs for NoopArgs {
    const KIND: &'static str = "test_noop";
    fn retry() -> RetryPolicy {
        test_policy()
    }
}

#[async_trait]
impl Worker for Noop {
    type Args = NoopArgs;
    fn starter(&self) -> Starter {
        Starter::Tenant(Permission::JobsRead)
    }
    async fn work(&self, _: &mut JobContext, _: NoopArgs) -> Result<(), JobError> {
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
pub struct SleepArgs {
    ms: u64,
    /// A label recorded with the side effect, so tests can find it.
    #[serde(default)]
    label: String,
    /// Fail (retryably) at the end instead of writing the effect.
    #[serde(default)]
    fail: bool,
    /// Never look at cancellation (a handler between checkpoints).
    #[serde(default)]
    ignore_cancel: bool,
}

/// `test_sleep`: sleeps with checkpoints, then writes one audit event
/// (`test.effect`) in the same transaction that marks the job succeeded, so the
/// effect exists once however often the job is started.
pub struct Sleep;

impl JobArgs for SleepArgs {
    const KIND: &'static str = "test_sleep";
    fn retry() -> RetryPolicy {
        test_policy()
    }
}

#[async_trait]
impl Worker for Sleep {
    type Args = SleepArgs;
    fn starter(&self) -> Starter {
        Starter::Tenant(Permission::JobsRead)
    }
    async fn work(&self, ctx: &mut JobContext, p: SleepArgs) -> Result<(), JobError> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(p.ms);
        let mut done = 0;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(
                Duration::from_millis(50).min(deadline - tokio::time::Instant::now()),
            )
            .await;
            done += 1;
            ctx.progress(done, None, Some("sleeping")).await?;
            if !p.ignore_cancel && !p.fail {
                ctx.checkpoint().await?;
            }
        }
        if p.fail {
            return Err(JobError::Retryable(anyhow::anyhow!(
                "planned failure after sleeping"
            )));
        }
        let mut tx = ctx.pool().begin().await?;
        sqlx::query(
            "INSERT INTO audit_events (id, tenant_id, action, target_type, target_id, details)
             VALUES ($1, $2, 'test.effect', 'job', $3, jsonb_build_object('label', $4::text))",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(ctx.tenant_id.map(|t| t.0))
        .bind(ctx.job_id.to_string())
        .bind(&p.label)
        .execute(&mut *tx)
        .await?;
        ctx.complete_in(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
pub struct FailArgs {
    /// Fail the first `times` attempts (default: every attempt).
    times: Option<i32>,
    #[serde(default)]
    permanent: bool,
    /// Fail until this file exists: a fault an operator fixes, then
    /// retries the job (the admin dashboard's browser test).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fixed_by: Option<std::path::PathBuf>,
}

/// `test_fail`: fails (retryably, or permanently).
pub struct Fail;

impl JobArgs for FailArgs {
    const KIND: &'static str = "test_fail";
    fn retry() -> RetryPolicy {
        test_policy()
    }
}

#[async_trait]
impl Worker for Fail {
    type Args = FailArgs;
    fn starter(&self) -> Starter {
        Starter::Tenant(Permission::JobsRead)
    }
    async fn work(&self, ctx: &mut JobContext, p: FailArgs) -> Result<(), JobError> {
        if let Some(fix) = &p.fixed_by {
            if fix.exists() {
                return Ok(());
            }
        }
        if p.times.is_none_or(|t| ctx.attempt <= t) {
            let e = anyhow::anyhow!("planned failure on attempt {}", ctx.attempt);
            return Err(if p.permanent {
                JobError::Permanent(e)
            } else {
                JobError::Retryable(e)
            });
        }
        Ok(())
    }
}
