//! The worker side of the ledger: claim, finish, leases, promotion.
//!
//! A delivery from Redis is only a hint. A worker runs a job only after it
//! *claims* the row: status `queued`, due, not cancelled, and under the
//! tenant's concurrent-job limit, counted from live leases in the ledger (so
//! the count is derived, never a counter that can drift). The claim sets a
//! fresh `run_id` and a lease; finishing requires that `run_id`, so a worker
//! that lost its lease (paused, partitioned) cannot overwrite a newer run.
//! Duplicate deliveries therefore cost one query and run nothing.
//!
//! Claims and finishes of concurrent handlers are batched ([`Batcher`]) so one
//! round trip serves many jobs: this is what lets the ledger keep up with Redis.

use crate::admission::{self, Count, Room};
use crate::job::JobMessage;
use crate::ledger::Ledger;
use crate::metrics;
use crate::sql::{interval, tune_hot_tx};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// A claimed run.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub job_id: Uuid,
    pub run_id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub kind: String,
    pub params: serde_json::Value,
    pub attempt: i32,
    pub max_attempts: i32,
    pub queued_at: DateTime<Utc>,
}

/// How a run ended, as the worker reports it.
#[derive(Debug, Clone)]
pub enum Finish {
    Succeeded,
    /// Succeeded, and the handler already wrote that in its own transaction;
    /// carries the tenant whose slot it freed.
    AlreadyCompleted(Option<Uuid>),
    Retry {
        error: String,
        delay: Duration,
    },
    /// Back to the queue for `delay`, this run not counted as an attempt.
    Wait {
        reason: String,
        delay: Duration,
    },
    Dead {
        error: String,
    },
    Failed {
        error: String,
    },
    Cancelled,
}

type ClaimRequest = (JobMessage, oneshot::Sender<Option<Claimed>>);
type FinishRequest = (Uuid, Uuid, Finish, oneshot::Sender<()>);

/// Claims and finishes many jobs per round trip. Requests queue on channels;
/// one task drains whatever has arrived (up to `max_batch`) and runs it as one
/// statement, so under load batches grow and under light load latency stays
/// one round trip.
#[derive(Clone)]
pub struct Batcher {
    claims: mpsc::Sender<ClaimRequest>,
    finishes: mpsc::Sender<FinishRequest>,
}

impl Batcher {
    pub fn start(ledger: Ledger, worker_id: String, lease: Duration, max_batch: usize) -> Self {
        let (claims, mut claim_rx) = mpsc::channel::<ClaimRequest>(max_batch * 4);
        let (finishes, mut finish_rx) = mpsc::channel::<FinishRequest>(max_batch * 4);
        let l = ledger.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(max_batch);
            while claim_rx.recv_many(&mut buf, max_batch).await > 0 {
                let batch: Vec<ClaimRequest> = std::mem::take(&mut buf);
                let messages: Vec<JobMessage> = batch.iter().map(|(m, _)| m.clone()).collect();
                let claimed = loop {
                    match claim(&l, &messages, &worker_id, lease).await {
                        Ok(c) => break c,
                        Err(e) => {
                            tracing::warn!(error = %e, "claim failed; retrying");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                };
                let mut by_id: HashMap<Uuid, Claimed> =
                    claimed.into_iter().map(|c| (c.job_id, c)).collect();
                for (m, reply) in batch {
                    let _ = reply.send(by_id.remove(&m.job_id));
                }
            }
        });
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(max_batch);
            while finish_rx.recv_many(&mut buf, max_batch).await > 0 {
                let batch: Vec<FinishRequest> = std::mem::take(&mut buf);
                let items: Vec<(Uuid, Uuid, Finish)> = batch
                    .iter()
                    .map(|(j, r, f, _)| (*j, *r, f.clone()))
                    .collect();
                loop {
                    match finish(&ledger, &items).await {
                        Ok(()) => break,
                        Err(e) => {
                            // The lease protects us meanwhile: if this never
                            // lands, the job runs again after lease expiry.
                            tracing::warn!(error = %e, "finish failed; retrying");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
                for (_, _, _, reply) in batch {
                    let _ = reply.send(());
                }
            }
        });
        Self { claims, finishes }
    }

    /// Claim the job named by a delivery; `None` means "not ours to run" (done,
    /// cancelled, stale, deferred, or claimed by another worker).
    pub async fn claim(&self, message: JobMessage) -> Option<Claimed> {
        let (tx, rx) = oneshot::channel();
        self.claims.send((message, tx)).await.ok()?;
        rx.await.ok().flatten()
    }

    pub async fn finish(&self, job_id: Uuid, run_id: Uuid, how: Finish) {
        let (tx, rx) = oneshot::channel();
        if self.finishes.send((job_id, run_id, how, tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

#[derive(sqlx::FromRow)]
struct Candidate {
    id: Uuid,
    tenant_id: Option<Uuid>,
    kind: String,
    push_seq: i32,
}

/// Claim a batch. Returns the jobs this worker now runs.
pub async fn claim(
    ledger: &Ledger,
    messages: &[JobMessage],
    worker_id: &str,
    lease: Duration,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let ids: Vec<Uuid> = messages.iter().map(|m| m.job_id).collect();
    let mut tx = ledger.pool().begin().await?;
    tune_hot_tx(&mut tx).await?;
    // Lock in id order so concurrent batches cannot deadlock; a row another
    // worker is claiming right now is waited for, then seen as running.
    let candidates: Vec<Candidate> = sqlx::query_as(
        // The id list drives the join, so each row is found by primary key: with
        // `id = ANY(..)` the planner may pick the partial index on queued jobs
        // and scan the whole backlog on every claim.
        "SELECT j.id, j.tenant_id, j.kind, j.push_seq FROM unnest($1::uuid[]) AS r(id) JOIN jobs j ON j.id = r.id
         WHERE j.status = 'queued' AND j.run_after <= now() AND NOT j.cancel_requested
         ORDER BY j.id FOR UPDATE OF j",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    // A delivery older than the row's generation is a stale duplicate; the
    // current generation is (or will be) in Redis too.
    let seq_of: HashMap<Uuid, i32> = messages.iter().map(|m| (m.job_id, m.seq)).collect();
    let candidates: Vec<Candidate> = candidates
        .into_iter()
        .filter(|c| seq_of.get(&c.id).is_some_and(|s| *s >= c.push_seq))
        .collect();

    let tenants: Vec<Uuid> = candidates.iter().filter_map(|c| c.tenant_id).collect();
    let mut room = admission::lock_and_count(&mut tx, &tenants, Count::Running).await?;
    let mut run = Vec::new();
    let mut deferred = Vec::new();
    let mut reasons = Vec::new();
    for c in candidates {
        match c.tenant_id.and_then(|t| room.get_mut(&t)).map(Room::take) {
            Some(Err(reason)) => {
                deferred.push(c.id);
                reasons.push(reason);
                metrics::deferred(&c.kind);
            }
            Some(Ok(())) | None => run.push(c.id),
        }
    }
    if !deferred.is_empty() {
        sqlx::query(
            "UPDATE jobs j SET status = 'deferred', waiting_reason = r.reason, pushed_at = NULL
             FROM unnest($1::uuid[], $2::text[]) AS r(id, reason) WHERE j.id = r.id",
        )
        .bind(&deferred)
        .bind(&reasons)
        .execute(&mut *tx)
        .await?;
    }
    let run_ids: Vec<Uuid> = run.iter().map(|_| Uuid::now_v7()).collect();
    let claimed: Vec<Claimed> = sqlx::query_as(
        "UPDATE jobs j SET status = 'running', run_id = r.run_id, attempts = j.attempts + 1,
                worker_id = $3, started_at = now(), heartbeat_at = now(), lease_until = now() + $4::interval,
                waiting_reason = NULL
         FROM unnest($1::uuid[], $2::uuid[]) AS r(id, run_id) WHERE j.id = r.id
         RETURNING j.id AS job_id, j.run_id, j.tenant_id, j.kind, j.params, j.attempts AS attempt,
                   j.max_attempts, j.queued_at",
    )
    .bind(&run)
    .bind(&run_ids)
    .bind(worker_id)
    .bind(interval(lease))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(claimed)
}

/// Record how runs ended, then let deferred jobs of the freed tenants in.
pub async fn finish(ledger: &Ledger, items: &[(Uuid, Uuid, Finish)]) -> Result<(), sqlx::Error> {
    let mut ids = Vec::new();
    let mut run_ids = Vec::new();
    let mut statuses = Vec::new();
    let mut errors: Vec<Option<String>> = Vec::new();
    let mut delays = Vec::new();
    let mut reasons: Vec<Option<String>> = Vec::new();
    let mut uncounted = Vec::new();
    for (job, run, how) in items {
        let (status, error, delay, reason) = match how {
            Finish::AlreadyCompleted(_) => continue,
            Finish::Succeeded => ("succeeded", None, 0i64, None),
            Finish::Cancelled => ("cancelled", None, 0, None),
            Finish::Failed { error } => ("failed", Some(error.clone()), 0, None),
            Finish::Dead { error } => ("dead", Some(error.clone()), 0, None),
            Finish::Retry { error, delay } => (
                "queued",
                Some(error.clone()),
                delay.as_millis() as i64,
                Some(format!(
                    "retrying after an error, in {:.1} s",
                    delay.as_secs_f64()
                )),
            ),
            Finish::Wait { reason, delay } => (
                "queued",
                None,
                delay.as_millis() as i64,
                Some(reason.clone()),
            ),
        };
        uncounted.push(matches!(how, Finish::Wait { .. }));
        ids.push(*job);
        run_ids.push(*run);
        statuses.push(status);
        errors.push(error);
        delays.push(delay);
        reasons.push(reason);
    }
    let mut freed: Vec<Uuid> = items
        .iter()
        .filter_map(|(_, _, how)| match how {
            Finish::AlreadyCompleted(tenant) => *tenant,
            _ => None,
        })
        .collect();
    if !ids.is_empty() {
        let mut tx = ledger.pool().begin().await?;
        tune_hot_tx(&mut tx).await?;
        let rows: Vec<(Option<Uuid>, String, String)> = sqlx::query_as(
            // A run whose job was asked to cancel ends `cancelled` unless it
            // succeeded: a retry would be queued but never claimed (claims
            // skip cancel_requested), holding the tenant's slot forever.
            "WITH r AS (
                 SELECT r.*, CASE WHEN j.cancel_requested AND r.status <> 'succeeded' THEN 'cancelled'
                                  ELSE r.status END AS final
                 FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::bigint[], $6::text[],
                             $7::bool[])
                      AS r(id, run_id, status, error, delay_ms, reason, uncounted)
                 JOIN jobs j ON j.id = r.id
             )
             UPDATE jobs j SET
                 status = r.final,
                 attempts = CASE WHEN r.uncounted AND r.final = 'queued' THEN j.attempts - 1
                                 ELSE j.attempts END,
                 last_error = coalesce(r.error, j.last_error),
                 waiting_reason = CASE WHEN r.final = 'queued' THEN r.reason END,
                 run_id = NULL, lease_until = NULL,
                 finished_at = CASE WHEN r.final = 'queued' THEN NULL ELSE now() END,
                 run_after = CASE WHEN r.final = 'queued' THEN now() + r.delay_ms * interval '1 millisecond' ELSE j.run_after END,
                 queued_at = CASE WHEN r.final = 'queued' THEN now() ELSE j.queued_at END,
                 push_seq = CASE WHEN r.final = 'queued' THEN j.push_seq + 1 ELSE j.push_seq END,
                 pushed_at = CASE WHEN r.final = 'queued' THEN NULL ELSE j.pushed_at END
             FROM r
             WHERE j.id = r.id AND j.run_id = r.run_id AND j.status = 'running'
             RETURNING j.tenant_id, j.kind, j.status",
        )
        .bind(&ids)
        .bind(&run_ids)
        .bind(&statuses)
        .bind(&errors)
        .bind(&delays)
        .bind(&reasons)
        .bind(&uncounted)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        for (tenant, kind, status) in &rows {
            metrics::finished(kind, status);
            if let Some(t) = tenant {
                freed.push(*t);
            }
        }
    }
    freed.sort();
    freed.dedup();
    if !freed.is_empty() {
        ledger.promote_deferred(&freed).await.map_err(|e| match e {
            crate::ledger::LedgerError::Database(e) => e,
            other => sqlx::Error::Protocol(other.to_string()),
        })?;
    }
    Ok(())
}

/// Inside a handler's transaction: mark its run succeeded. False when the run
/// no longer owns the job.
pub async fn complete_in_tx(
    tx: &mut PgConnection,
    job_id: Uuid,
    run_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let kind: Option<String> = sqlx::query_scalar(
        "UPDATE jobs SET status = 'succeeded', finished_at = now(), run_id = NULL, lease_until = NULL,
                waiting_reason = NULL
         WHERE id = $1 AND run_id = $2 AND status = 'running' AND NOT cancel_requested RETURNING kind",
    )
    .bind(job_id)
    .bind(run_id)
    .fetch_optional(tx)
    .await?;
    if let Some(kind) = &kind {
        metrics::finished(kind, "succeeded");
    }
    Ok(kind.is_some())
}

/// Extend the leases of this worker's running jobs (heartbeat).
pub async fn renew_leases(
    ledger: &Ledger,
    runs: &[Uuid],
    lease: Duration,
) -> Result<u64, sqlx::Error> {
    if runs.is_empty() {
        return Ok(0);
    }
    Ok(sqlx::query(
        // A row another transaction holds is skipped, never waited for: it
        // is being finished (or expired) right now, so it needs no lease,
        // and waiting deadlocked with finishing batches, which lock the same
        // rows in another order. A renewal missed once is made next beat.
        "UPDATE jobs SET lease_until = now() + $2::interval, heartbeat_at = now()
         WHERE id IN (SELECT id FROM jobs WHERE run_id = ANY($1) AND status = 'running'
                      FOR UPDATE SKIP LOCKED)",
    )
    .bind(runs)
    .bind(interval(lease))
    .execute(ledger.pool())
    .await?
    .rows_affected())
}

/// On shutdown: give back runs that did not finish in time. The attempt is
/// not counted (the job did not fail; we stopped it) and it is queued again.
pub async fn release(ledger: &Ledger, runs: &[Uuid]) -> Result<u64, sqlx::Error> {
    if runs.is_empty() {
        return Ok(0);
    }
    // A run asked to cancel ends cancelled instead (see `finish`).
    let released: Vec<(Uuid, String, i32, String)> = sqlx::query_as(
        "UPDATE jobs SET status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
                finished_at = CASE WHEN cancel_requested THEN now() END,
                attempts = greatest(attempts - 1, 0), run_id = NULL,
                lease_until = NULL, queued_at = now(), push_seq = push_seq + 1, pushed_at = NULL,
                waiting_reason = CASE WHEN cancel_requested THEN NULL ELSE 'released by a worker that shut down' END
         WHERE run_id = ANY($1) AND status = 'running' RETURNING id, kind, push_seq, status",
    )
    .bind(runs)
    .fetch_all(ledger.pool())
    .await?;
    let n = released.len() as u64;
    let released: Vec<(Uuid, String, i32)> = released
        .into_iter()
        .filter(|(.., status)| status == "queued")
        .map(|(id, kind, seq, _)| (id, kind, seq))
        .collect();
    ledger
        .push(crate::ledger::Pending {
            messages: released
                .into_iter()
                .map(|(job_id, kind, seq)| (kind, JobMessage { job_id, seq }))
                .collect(),
        })
        .await;
    Ok(n)
}
