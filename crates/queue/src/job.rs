//! A job as the ledger holds it.

use bizcontacts_domain::TenantId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a job is in its life. Terminal: succeeded, failed, cancelled, dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Admitted and waiting for a worker (possibly until `run_after`).
    Queued,
    /// Waiting for a slot under the tenant's concurrent-job limit; not an attempt.
    Deferred,
    Running,
    Succeeded,
    /// Stopped by a permanent error (bad params, a partner's 4xx): not retried.
    Failed,
    Cancelled,
    /// Every attempt failed; the last error is kept.
    Dead,
}

impl JobStatus {
    pub const ALL: [JobStatus; 7] = [
        Self::Queued,
        Self::Deferred,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Deferred => "deferred",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Dead => "dead",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Cancelled | Self::Dead
        )
    }
}

impl std::str::FromStr for JobStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown status {s:?}; expected one of queued, deferred, running, succeeded, failed, cancelled, dead"))
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One ledger row.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: Uuid,
    pub tenant_id: Option<TenantId>,
    pub kind: String,
    pub params: serde_json::Value,
    pub status: JobStatus,
    pub attempts: i32,
    pub max_attempts: i32,
    pub progress_done: i64,
    pub progress_total: Option<i64>,
    pub progress_message: Option<String>,
    pub last_error: Option<String>,
    pub waiting_reason: Option<String>,
    pub idempotency_key: Option<String>,
    pub run_after: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub worker_id: Option<String>,
    /// Last lease renewal of the current (or last) run.
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub cancel_requested: bool,
}

#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    id: Uuid,
    tenant_id: Option<Uuid>,
    kind: String,
    params: serde_json::Value,
    status: String,
    attempts: i32,
    max_attempts: i32,
    progress_done: i64,
    progress_total: Option<i64>,
    progress_message: Option<String>,
    last_error: Option<String>,
    waiting_reason: Option<String>,
    idempotency_key: Option<String>,
    run_after: DateTime<Utc>,
    created_at: DateTime<Utc>,
    queued_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    worker_id: Option<String>,
    heartbeat_at: Option<DateTime<Utc>>,
    cancel_requested: bool,
}

pub(crate) const JOB_COLUMNS: &str = "id, tenant_id, kind, params, status, attempts, max_attempts, progress_done,
    progress_total, progress_message, last_error, waiting_reason, idempotency_key, run_after, created_at,
    queued_at, started_at, finished_at, worker_id, heartbeat_at, cancel_requested";

impl TryFrom<JobRow> for Job {
    type Error = sqlx::Error;
    fn try_from(r: JobRow) -> Result<Self, sqlx::Error> {
        Ok(Job {
            id: r.id,
            tenant_id: r.tenant_id.map(TenantId),
            kind: r.kind,
            params: r.params,
            status: r
                .status
                .parse()
                .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            progress_done: r.progress_done,
            progress_total: r.progress_total,
            progress_message: r.progress_message,
            last_error: r.last_error,
            waiting_reason: r.waiting_reason,
            idempotency_key: r.idempotency_key,
            run_after: r.run_after,
            created_at: r.created_at,
            queued_at: r.queued_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            worker_id: r.worker_id,
            heartbeat_at: r.heartbeat_at,
            cancel_requested: r.cancel_requested,
        })
    }
}

/// What a caller asks for.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub tenant_id: Option<TenantId>,
    pub kind: String,
    pub params: serde_json::Value,
    pub idempotency_key: Option<String>,
    pub max_attempts: i32,
    pub run_after: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
}

/// The message carried by Redis: just enough to find the ledger row.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobMessage {
    pub job_id: Uuid,
    /// `push_seq` at push time; the worker ignores a message older than the row.
    pub seq: i32,
}
