//! The relay: periodic repairs that keep Redis in step with the ledger.
//!
//! Every worker process runs it; each step is safe to run concurrently (row
//! locks with SKIP LOCKED, idempotent pushes). One tick:
//! 1. Redis lost its data (restart without persistence, FLUSHALL): detected by
//!    a missing epoch key; every queued job becomes due for a push again.
//! 2. Expired leases (a worker died mid-job): the job is queued again, or dead
//!    when that was its last attempt.
//! 3. Queued jobs never pushed (crash between commit and push, retries whose
//!    backoff is over, a failed push): pushed, in bounded batches so Redis never
//!    sees thousands become due at once.
//! 4. Queued jobs pushed long ago and still not started (the delivery was lost
//!    after it left Redis): a new generation is pushed.
//! 5. Deferred jobs whose tenant has a free slot again: promoted.
//! 6. Housekeeping: queue depth gauges, trimming finished tasks from Redis,
//!    deleting ledger history past its retention.

use crate::job::JobMessage;
use crate::ledger::{Ledger, Pending};
use crate::metrics;
use crate::sql::interval;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub interval: Duration,
    /// How long a just-enqueued job may wait for its own after-commit push.
    pub push_grace: Duration,
    /// Queued this long after a push without starting: push a new generation.
    pub stale_after: Duration,
    pub retention: Duration,
    /// Most rows each step handles per tick.
    pub batch: i64,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    pub redis_lost: bool,
    pub leases_expired: usize,
    pub pushed: usize,
    pub stale: u64,
    pub promoted: usize,
    pub purged: u64,
}

/// Run ticks until `shutdown`.
pub async fn run(
    ledger: Ledger,
    kinds: Vec<&'static str>,
    settings: RelaySettings,
    shutdown: CancellationToken,
) {
    let mut last_purge = Instant::now() - Duration::from_secs(3600);
    loop {
        let purge = last_purge.elapsed() > Duration::from_secs(60);
        match tick(&ledger, &kinds, &settings, purge).await {
            Ok(report) => {
                if purge {
                    last_purge = Instant::now();
                }
                if report != TickReport::default() {
                    tracing::debug!(?report, "relay tick");
                }
            }
            Err(e) => tracing::warn!(error = %e, "relay tick failed; next tick retries"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(settings.interval) => {}
        }
    }
}

pub async fn tick(
    ledger: &Ledger,
    kinds: &[&'static str],
    s: &RelaySettings,
    purge: bool,
) -> Result<TickReport, crate::ledger::LedgerError> {
    let pool = ledger.pool();
    let mut report = TickReport::default();

    if ledger.transport().epoch_was_lost().await? {
        let n = sqlx::query(
            "UPDATE jobs SET pushed_at = NULL WHERE status = 'queued' AND pushed_at IS NOT NULL",
        )
        .execute(pool)
        .await?
        .rows_affected();
        if n > 0 {
            tracing::warn!(
                requeued = n,
                "Redis lost its data; re-pushing every queued job from the ledger"
            );
        } else {
            tracing::info!(
                "no epoch key in Redis (first start, or Redis was emptied); nothing was queued"
            );
        }
        report.redis_lost = true;
    }

    let expired: Vec<(Uuid, String, String, Option<Uuid>)> = sqlx::query_as(
        // A job whose cancel was asked ends cancelled here: queued again it
        // would never be claimed, yet hold its tenant's slot forever.
        "UPDATE jobs j SET
             status = CASE WHEN j.cancel_requested THEN 'cancelled'
                           WHEN j.attempts >= j.max_attempts THEN 'dead' ELSE 'queued' END,
             last_error = 'the worker running this job stopped responding (lease expired)',
             finished_at = CASE WHEN j.cancel_requested OR j.attempts >= j.max_attempts THEN now() ELSE NULL END,
             run_id = NULL, lease_until = NULL, queued_at = now(),
             push_seq = j.push_seq + 1, pushed_at = NULL
         WHERE j.id IN (SELECT id FROM jobs WHERE status = 'running' AND lease_until < now()
                        ORDER BY lease_until LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING j.id, j.kind, j.status, j.tenant_id",
    )
    .bind(s.batch)
    .fetch_all(pool)
    .await?;
    report.leases_expired = expired.len();
    let mut freed: Vec<Uuid> = Vec::new();
    for (id, kind, status, tenant) in &expired {
        tracing::warn!(job_id = %id, kind, status, "job lease expired");
        metrics::lease_expired(kind);
        if status != "queued" {
            metrics::finished(kind, status);
        }
        freed.extend(tenant);
    }

    let due: Vec<(Uuid, String, i32)> = sqlx::query_as(
        "SELECT id, kind, push_seq FROM jobs
         WHERE status = 'queued' AND pushed_at IS NULL AND run_after <= now()
           AND queued_at < now() - $1::interval
         ORDER BY run_after LIMIT $2",
    )
    .bind(interval(s.push_grace))
    .bind(s.batch)
    .fetch_all(pool)
    .await?;
    report.pushed = due.len();
    if !due.is_empty() {
        ledger
            .push(Pending {
                messages: due
                    .into_iter()
                    .map(|(job_id, kind, seq)| (kind, JobMessage { job_id, seq }))
                    .collect(),
            })
            .await;
    }

    report.stale = sqlx::query(
        "UPDATE jobs SET push_seq = push_seq + 1, pushed_at = NULL
         WHERE id IN (SELECT id FROM jobs WHERE status = 'queued' AND pushed_at < now() - $1::interval
                      LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind(interval(s.stale_after))
    .bind(s.batch)
    .execute(pool)
    .await?
    .rows_affected();

    let waiting: Vec<Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT tenant_id FROM jobs WHERE status = 'deferred' AND tenant_id IS NOT NULL",
    )
    .fetch_all(pool)
    .await?;
    freed.extend(waiting);
    freed.sort();
    freed.dedup();
    if !freed.is_empty() {
        report.promoted = ledger.promote_deferred(&freed).await?;
    }

    for kind in kinds {
        let transport = ledger.transport();
        match transport.depth(kind).await {
            Ok(depth) => metrics::queue_depth(kind, depth),
            Err(e) => tracing::debug!(error = %e, kind, "cannot read queue depth"),
        }
        // Whatever piled up in `:scheduled` (see transport.rs), a bounded step per tick.
        for _ in 0..10 {
            match transport.promote(kind, crate::transport::CHUNK).await {
                Ok(n) if n as usize == crate::transport::CHUNK => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::debug!(error = %e, kind, "cannot promote scheduled tasks");
                    break;
                }
            }
        }
        // Small script calls, so other clients interleave: one big Lua call
        // would stall every worker's fetch while it runs.
        for _ in 0..20 {
            match transport.trim_finished(kind, crate::transport::CHUNK).await {
                Ok(n) if n as usize >= crate::transport::CHUNK => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::debug!(error = %e, kind, "cannot trim finished tasks");
                    break;
                }
            }
        }
    }

    if purge {
        report.purged = sqlx::query(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE finished_at < now() - $1::interval LIMIT 10000)",
        )
        .bind(interval(s.retention))
        .execute(pool)
        .await?
        .rows_affected();
    }
    Ok(report)
}
