//! What the admin dashboard reads beyond [`crate::ledger::Ledger::stats`]:
//! finished jobs per kind in time buckets (the throughput chart),
//! enqueue-to-start latency, deferred jobs, running jobs per tenant against
//! their package's limit, and a job's runs. Each query names the index that
//! serves it at 1,000,000 jobs (docs/benchmarks.md, the dashboard).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// Finished jobs of one kind in one bucket.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Bucket {
    pub kind: String,
    pub start: DateTime<Utc>,
    pub succeeded: i64,
    /// failed + dead
    pub failed: i64,
}

/// Jobs that finished in the last `window_secs`, per kind and `bucket_secs`
/// bucket (range scan of `jobs_finished`).
pub async fn buckets(
    pool: &PgPool,
    window_secs: i64,
    bucket_secs: i64,
) -> Result<Vec<Bucket>, sqlx::Error> {
    sqlx::query_as(
        "SELECT kind,
                date_bin(make_interval(secs => $2), finished_at, '2000-01-01'::timestamptz) AS start,
                count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
                count(*) FILTER (WHERE status IN ('failed', 'dead')) AS failed
         FROM jobs WHERE finished_at > now() - make_interval(secs => $1)
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind(window_secs as f64)
    .bind(bucket_secs as f64)
    .fetch_all(pool)
    .await
}

/// Enqueue-to-start latency of the jobs that finished in the window, in
/// seconds: (p50, p99, how many). `jobs_finished` again; `queued_at` is
/// when the job last became queued, so a retry's backoff is not counted.
pub async fn latency(pool: &PgPool, window_secs: i64) -> Result<(f64, f64, i64), sqlx::Error> {
    let (p50, p99, n): (Option<f64>, Option<f64>, i64) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY s), count(*)
         FROM (SELECT extract(epoch FROM started_at - greatest(queued_at, run_after)) AS s
               FROM jobs WHERE finished_at > now() - make_interval(secs => $1)
                 AND started_at IS NOT NULL) t",
    )
    .bind(window_secs as f64)
    .fetch_one(pool)
    .await?;
    Ok((p50.unwrap_or(0.0).max(0.0), p99.unwrap_or(0.0).max(0.0), n))
}

/// A job waiting for its tenant's room, and why.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Waiting {
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub kind: String,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The oldest deferred jobs (`jobs_deferred`, partial: only deferred rows).
pub async fn deferred(pool: &PgPool, limit: i64) -> Result<(Vec<Waiting>, i64), sqlx::Error> {
    let rows = sqlx::query_as(
        "SELECT id, tenant_id, kind, waiting_reason AS reason, created_at
         FROM jobs WHERE status = 'deferred' ORDER BY id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'deferred'")
        .fetch_one(pool)
        .await?;
    Ok((rows, total))
}

/// A tenant's running jobs against its package's concurrent-job limit.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TenantLoad {
    pub tenant_id: Uuid,
    pub name: String,
    pub running: i64,
    pub limit: i32,
}

/// Tenants with a job running now (`jobs_leases`, partial: running rows).
pub async fn running_per_tenant(pool: &PgPool) -> Result<Vec<TenantLoad>, sqlx::Error> {
    sqlx::query_as(
        "SELECT t.id AS tenant_id, t.name, r.running, p.concurrent_jobs AS limit
         FROM (SELECT tenant_id, count(*) AS running FROM jobs
               WHERE status = 'running' AND tenant_id IS NOT NULL GROUP BY tenant_id) r
         JOIN tenants t ON t.id = r.tenant_id JOIN packages p ON p.name = t.package
         ORDER BY r.running DESC, t.name",
    )
    .fetch_all(pool)
    .await
}

/// One run of a job that ended without success (`job_runs`, written by a
/// trigger); the run that succeeded is the jobs row itself.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Run {
    pub attempt: i32,
    pub worker_id: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: DateTime<Utc>,
    pub outcome: String,
    pub error: Option<String>,
    pub note: Option<String>,
}

/// A job's runs that ended without success, first first (`job_runs_job`).
pub async fn runs(pool: &PgPool, job_id: Uuid) -> Result<Vec<Run>, sqlx::Error> {
    sqlx::query_as(
        "SELECT attempt, worker_id, started_at, ended_at, outcome, error, note
         FROM job_runs WHERE job_id = $1 ORDER BY ended_at, attempt",
    )
    .bind(job_id)
    .fetch_all(pool)
    .await
}

/// When the job was last handed to Redis (NULL: due for a push, or finished).
pub async fn pushed_at(pool: &PgPool, job_id: Uuid) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    Ok(
        sqlx::query_scalar("SELECT pushed_at FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_optional(pool)
            .await?
            .flatten(),
    )
}

/// The tenant's CRM connection a crm_* job works through, as
/// ("method, status", location): no secret is read.
pub async fn crm_connection(
    pool: &PgPool,
    tenant_id: Uuid,
) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT method || ', ' || status, coalesce(location_name || ' ', '') || coalesce(location_id, '')
         FROM crm_connections WHERE tenant_id = $1",
    )
    .bind(tenant_id)
    .fetch_optional(pool)
    .await
}
