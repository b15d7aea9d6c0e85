//! What a job kind provides: a handler, a retry policy, who may start it.
//!
//! The platform owns the job's fate: handlers return `Ok(())`, or a
//! [`JobError`] saying whether trying again could help. They never retry in a
//! loop themselves, and they must be idempotent: a worker can die after the
//! work and before the ledger says so, and the job then runs again.

use crate::ledger::Ledger;
use bizcontacts_domain::{Permission, TenantId};
use rand::Rng;
use sqlx::PgConnection;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Why a run did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt (timeouts, 5xx, 429, lost connections).
    #[error("{0:#}")]
    Retryable(anyhow::Error),
    /// Will fail the same way again (bad params, a partner's 4xx): the job fails now.
    #[error("{0:#}")]
    Permanent(anyhow::Error),
    /// The job saw a cancellation request at a checkpoint and stopped.
    #[error("cancelled")]
    Cancelled,
    /// Nothing failed, but the work cannot go on before `delay` (a partner's
    /// daily budget is spent): the job waits, queued, and the run does not
    /// count as an attempt. It resumes from its own checkpoints.
    #[error("waiting: {reason}")]
    Wait {
        reason: String,
        delay: std::time::Duration,
    },
}

impl From<anyhow::Error> for JobError {
    /// Unclassified errors are retried: transient faults are the common case.
    fn from(e: anyhow::Error) -> Self {
        JobError::Retryable(e)
    }
}

impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> Self {
        JobError::Retryable(e.into())
    }
}

/// Exponential backoff with full jitter, then `dead`.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: i32,
    pub base: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    pub const fn new(max_attempts: i32, base: Duration, max_delay: Duration) -> Self {
        Self {
            max_attempts,
            base,
            max_delay,
        }
    }

    /// Delay before attempt `attempt + 1` after attempt `attempt` failed:
    /// uniformly random in [0, min(max, base * 2^(attempt-1))] ("full jitter"),
    /// so a burst of failures does not come back as a burst.
    pub fn backoff(&self, attempt: i32) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).clamp(0, 30) as u32));
        let cap = exp.min(self.max_delay);
        let millis = cap.as_millis() as u64;
        Duration::from_millis(if millis == 0 {
            0
        } else {
            rand::thread_rng().gen_range(0..=millis)
        })
    }
}

/// Who may start a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Starter {
    /// A tenant caller holding this permission (`POST /jobs`).
    Tenant(Permission),
    /// The intake, on behalf of a tenant caller holding this permission, as
    /// part of a request of its own (an import upload, a review); never
    /// through `POST /jobs`. Cancelling needs the same permission.
    Intake(Permission),
    /// Only the platform (scheduler, admin).
    Platform,
}

/// What a running job can see and do.
pub struct JobContext {
    pub job_id: Uuid,
    pub tenant_id: Option<TenantId>,
    pub params: serde_json::Value,
    /// 1 on the first run.
    pub attempt: i32,
    pub(crate) run_id: Uuid,
    pub(crate) ledger: Ledger,
    pub(crate) completed_in_tx: bool,
}

impl JobContext {
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        self.ledger.pool()
    }

    /// Decode the params into the kind's own type; a mismatch is permanent.
    pub fn params<T: serde::de::DeserializeOwned>(&self) -> Result<T, JobError> {
        serde_path_to_error::deserialize(&self.params).map_err(|e| {
            JobError::Permanent(anyhow::anyhow!(
                "invalid params at {}: {}",
                e.path(),
                e.inner()
            ))
        })
    }

    /// Record progress a user can read (`done` of `total`).
    pub async fn progress(
        &self,
        done: i64,
        total: Option<i64>,
        message: Option<&str>,
    ) -> Result<(), JobError> {
        self.ledger
            .progress(self.job_id, self.run_id, done, total, message)
            .await?;
        Ok(())
    }

    /// A place where the job may stop: `Err(Cancelled)` once cancellation was
    /// requested, also when the lease was lost to another worker; and
    /// `Err(Wait)` once its tenant is suspended (released, not counted as an
    /// attempt; on its next claim it is held, deferred, until the tenant is
    /// unsuspended, then resumes from its own checkpoints).
    pub async fn checkpoint(&self) -> Result<(), JobError> {
        match self.ledger.should_stop(self.job_id, self.run_id).await? {
            crate::ledger::Stop::No => Ok(()),
            crate::ledger::Stop::Cancel => Err(JobError::Cancelled),
            crate::ledger::Stop::Suspended => Err(JobError::Wait {
                reason: crate::admission::SUSPENDED.to_string(),
                delay: std::time::Duration::ZERO,
            }),
        }
    }

    /// Mark the job succeeded inside the caller's transaction, so the job's
    /// effects and its success commit together (exactly once). Fails with
    /// `Cancelled` when this run no longer owns the job; the caller must then
    /// roll back.
    pub async fn complete_in(&mut self, tx: &mut PgConnection) -> Result<(), JobError> {
        if !crate::claim::complete_in_tx(tx, self.job_id, self.run_id).await? {
            return Err(JobError::Cancelled);
        }
        self.completed_in_tx = true;
        Ok(())
    }
}

/// `JobHandler::validate` for kinds whose params are one serde type: they
/// are valid when they decode into it.
pub fn params_decode_as<T: serde::de::DeserializeOwned>(
    params: &serde_json::Value,
) -> Result<(), String> {
    T::deserialize(params)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// One job kind.
#[async_trait::async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// The kind's name in the ledger, in URLs and in queue names.
    fn kind(&self) -> &'static str;
    fn starter(&self) -> Starter;
    fn retry(&self) -> RetryPolicy;
    /// Check params at submission, so bad input is a 422, not a failed job.
    fn validate(&self, params: &serde_json::Value) -> Result<(), String>;
    async fn run(&self, ctx: &mut JobContext) -> Result<(), JobError>;
}

/// The kinds this build can run, by name.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<&'static str, Arc<dyn JobHandler>>,
}

impl Registry {
    pub fn with(mut self, handler: impl JobHandler) -> Self {
        self.handlers.insert(handler.kind(), Arc::new(handler));
        self
    }

    pub fn get(&self, kind: &str) -> Option<&Arc<dyn JobHandler>> {
        self.handlers.get(kind)
    }

    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.handlers.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy::new(5, Duration::from_secs(1), Duration::from_secs(8));
        for attempt in 1..10 {
            let cap = Duration::from_secs(1 << (attempt - 1).min(3));
            for _ in 0..50 {
                assert!(p.backoff(attempt) <= cap);
            }
        }
        let distinct: std::collections::HashSet<_> = (0..50).map(|_| p.backoff(4)).collect();
        assert!(distinct.len() > 10, "jitter spreads retries");
    }
}
