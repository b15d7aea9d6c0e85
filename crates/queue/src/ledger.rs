//! The ledger: job rows in Postgres and the operations on them that callers use
//! (enqueue, read, cancel, retry). The worker-side operations (claim, finish,
//! leases) are in `claim.rs`; periodic repairs in `relay.rs`.
//!
//! Enqueue is transactional: [`Ledger::enqueue`] writes the row inside the
//! caller's transaction, next to the domain write that caused it, and returns a
//! [`Pending`] push. After commit, [`Ledger::push`] hands the job to Redis. If
//! the process dies in between, the relay finds the row (`pushed_at` is NULL)
//! and pushes it: no job is lost while its row exists.

use crate::admission::{self, Count};
use crate::job::{Job, JobMessage, JobRow, JobStatus, NewJob, JOB_COLUMNS};
use crate::transport::Transport;
use bizcontacts_domain::TenantId;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Handle to the ledger and the transport; cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    pool: PgPool,
    transport: Transport,
}

/// Jobs written but not yet pushed; push them after the transaction commits.
#[must_use = "push the pending jobs after commit (the relay would, later)"]
#[derive(Debug, Default)]
pub struct Pending {
    pub(crate) messages: Vec<(String, JobMessage)>,
}

/// The outcome of an enqueue.
#[derive(Debug)]
pub struct Enqueued {
    pub job: Job,
    /// False when the idempotency key matched an existing job.
    pub created: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Transport(#[from] crate::QueueError),
}

/// Filters for listing jobs.
#[derive(Debug, Default, Clone)]
pub struct JobFilter {
    /// `Some(None)` means platform jobs only.
    pub tenant_id: Option<Option<TenantId>>,
    pub kind: Option<String>,
    pub status: Option<JobStatus>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    /// Text the last error contains (case-insensitive; served by a trigram index).
    pub error_contains: Option<String>,
}

/// Job ids are uuid v7 ([`Ledger::enqueue_many`]): their first 48 bits are
/// the creation time in ms, so a time range is an id range, which the
/// primary key serves (a created_at filter alone read every newer job).
/// The id comes from the enqueuing process's clock and `created_at` from
/// Postgres's: the id range is widened by this margin and `created_at`
/// still decides.
const ID_CLOCK_MARGIN: chrono::Duration = chrono::Duration::minutes(5);

/// The smallest uuid v7 of millisecond `t`.
fn id_bound(t: DateTime<Utc>) -> Uuid {
    let ms = t.timestamp_millis().max(0) as u64;
    Uuid::from_u128(((ms as u128) << 80) | (0x7u128 << 76) | (0x8u128 << 60))
}

/// `text` as a LIKE pattern matching itself anywhere: its wildcards escaped.
fn contains_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

impl Ledger {
    pub fn new(pool: PgPool, transport: Transport) -> Self {
        Self { pool, transport }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Write jobs inside `tx`. A job whose idempotency key already exists
    /// returns that job instead (`created: false`). A tenant job beyond the
    /// tenant's concurrent-job limit is written `deferred` and is not pushed
    /// until a slot frees, so one tenant's backlog never sits in front of
    /// another tenant's work in Redis.
    pub async fn enqueue(
        &self,
        tx: &mut PgConnection,
        new: NewJob,
    ) -> Result<(Enqueued, Pending), LedgerError> {
        let mut out = self.enqueue_many(tx, vec![new]).await?;
        let (one, pending) = (out.0.pop().expect("one job in, one out"), out.1);
        Ok((one, pending))
    }

    /// [`Ledger::enqueue`] for many jobs in one round trip per step.
    pub async fn enqueue_many(
        &self,
        tx: &mut PgConnection,
        jobs: Vec<NewJob>,
    ) -> Result<(Vec<Enqueued>, Pending), LedgerError> {
        let tenants: Vec<Uuid> = jobs
            .iter()
            .filter_map(|j| j.tenant_id.map(|t| t.0))
            .collect();
        let mut room = admission::lock_and_count(tx, &tenants, Count::Admitted).await?;

        let n = jobs.len();
        let mut ids = Vec::with_capacity(n);
        let mut tenant_ids = Vec::with_capacity(n);
        let mut kinds = Vec::with_capacity(n);
        let mut params = Vec::with_capacity(n);
        let mut statuses = Vec::with_capacity(n);
        let mut reasons: Vec<Option<String>> = Vec::with_capacity(n);
        let mut keys = Vec::with_capacity(n);
        let mut max_attempts = Vec::with_capacity(n);
        let mut run_afters = Vec::with_capacity(n);
        let mut created_by = Vec::with_capacity(n);
        let now = Utc::now();
        for j in &jobs {
            let (status, reason) = match j.tenant_id.and_then(|t| room.get_mut(&t.0)) {
                Some(r) => match r.take() {
                    Ok(()) => (JobStatus::Queued, None),
                    Err(reason) => (JobStatus::Deferred, Some(reason)),
                },
                None => (JobStatus::Queued, None),
            };
            ids.push(Uuid::now_v7());
            tenant_ids.push(j.tenant_id.map(|t| t.0));
            kinds.push(j.kind.clone());
            params.push(j.params.clone());
            statuses.push(status.as_str());
            reasons.push(reason);
            keys.push(j.idempotency_key.clone());
            max_attempts.push(j.max_attempts);
            run_afters.push(j.run_after.unwrap_or(now));
            created_by.push(j.created_by);
        }
        let inserted: Vec<JobRow> = sqlx::query_as(&format!(
            "INSERT INTO jobs (id, tenant_id, kind, params, status, waiting_reason, idempotency_key,
                               max_attempts, run_after, created_by)
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::text[], $6::text[],
                                  $7::text[], $8::int[], $9::timestamptz[], $10::uuid[])
             ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(&ids)
        .bind(&tenant_ids)
        .bind(&kinds)
        .bind(&params)
        .bind(&statuses)
        .bind(&reasons)
        .bind(&keys)
        .bind(&max_attempts)
        .bind(&run_afters)
        .bind(&created_by)
        .fetch_all(&mut *tx)
        .await?;

        let mut by_id: std::collections::HashMap<Uuid, Job> = std::collections::HashMap::new();
        for row in inserted {
            let job: Job = row.try_into()?;
            by_id.insert(job.id, job);
        }
        let mut out = Vec::with_capacity(n);
        let mut pending = Pending::default();
        for (i, j) in jobs.into_iter().enumerate() {
            if let Some(job) = by_id.remove(&ids[i]) {
                if job.status == JobStatus::Deferred {
                    crate::metrics::deferred(&job.kind);
                }
                if job.status == JobStatus::Queued && job.run_after <= now {
                    pending.messages.push((
                        job.kind.clone(),
                        JobMessage {
                            job_id: job.id,
                            seq: 0,
                        },
                    ));
                }
                out.push(Enqueued { job, created: true });
            } else {
                // The idempotency key existed: return that job.
                let existing = self
                    .find_by_key_in(
                        &mut *tx,
                        j.tenant_id,
                        j.idempotency_key.as_deref().unwrap_or_default(),
                    )
                    .await?
                    .ok_or(LedgerError::Conflict(
                        "idempotency key raced with a delete".into(),
                    ))?;
                out.push(Enqueued {
                    job: existing,
                    created: false,
                });
            }
        }
        Ok((out, pending))
    }

    /// The job a tenant (or the platform, `None`) created with this idempotency key.
    async fn find_by_key_in(
        &self,
        db: &mut PgConnection,
        tenant: Option<TenantId>,
        key: &str,
    ) -> Result<Option<Job>, sqlx::Error> {
        sqlx::query_as::<_, JobRow>(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE tenant_id IS NOT DISTINCT FROM $1 AND idempotency_key = $2"
        ))
        .bind(tenant.map(|t| t.0))
        .bind(key)
        .fetch_optional(db)
        .await?
        .map(TryInto::try_into)
        .transpose()
    }

    /// Hand committed jobs to Redis and note that they were handed over. A
    /// failure here is logged, not returned: the relay pushes them later.
    pub async fn push(&self, pending: Pending) {
        if pending.messages.is_empty() {
            return;
        }
        let ids: Vec<Uuid> = pending.messages.iter().map(|(_, m)| m.job_id).collect();
        if let Err(e) = self.transport.push(&pending.messages).await {
            tracing::warn!(error = %e, jobs = ids.len(), "push to Redis failed; the relay will retry");
            return;
        }
        crate::metrics::pushed(&pending.messages);
        // Rows a worker is claiming right now are skipped: they are leaving
        // `queued` anyway, and waiting for their locks would queue every push
        // behind the claims of the previous one.
        if let Err(e) = self.mark_pushed(&ids).await {
            tracing::warn!(error = %e, "could not record push; the relay may push again (harmless)");
        }
    }

    /// Let the oldest deferred jobs of `tenants` in, as far as their limits
    /// allow now, and push them; returns how many.
    pub async fn promote_deferred(&self, tenants: &[Uuid]) -> Result<usize, LedgerError> {
        let mut tx = self.pool.begin().await?;
        let promoted = admission::promote_deferred(&mut tx, tenants).await?;
        tx.commit().await?;
        let n = promoted.len();
        self.push(Pending {
            messages: promoted
                .into_iter()
                .map(|(job_id, kind, seq)| (kind, JobMessage { job_id, seq }))
                .collect(),
        })
        .await;
        Ok(n)
    }

    async fn mark_pushed(&self, ids: &[Uuid]) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        crate::sql::tune_hot_tx(&mut tx).await?;
        sqlx::query(
            "UPDATE jobs SET pushed_at = now() WHERE id IN (
                 SELECT j.id FROM unnest($1::uuid[]) AS r(id) JOIN jobs j ON j.id = r.id
                 WHERE j.status = 'queued' FOR UPDATE OF j SKIP LOCKED)",
        )
        .bind(ids)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// One job, seen from a tenant (`Some`) or the platform (`None`).
    pub async fn get(&self, tenant: Option<TenantId>, id: Uuid) -> Result<Job, LedgerError> {
        let row = sqlx::query_as::<_, JobRow>(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)"
        ))
        .bind(id)
        .bind(tenant.map(|t| t.0))
        .fetch_optional(&self.pool)
        .await?
        .ok_or(LedgerError::NotFound)?;
        Ok(row.try_into()?)
    }

    /// The jobs among `ids` (in any order), for pages that show one job per item.
    pub async fn get_many(&self, ids: &[Uuid]) -> Result<Vec<Job>, LedgerError> {
        let rows = sqlx::query_as::<_, JobRow>(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = ANY($1)"
        ))
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(TryInto::try_into)
            .collect::<Result<_, _>>()?)
    }

    /// Newest first; `before` is the last id of the previous page.
    pub async fn list(
        &self,
        f: &JobFilter,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Job>, LedgerError> {
        let (tenant_filter, tenant) = match f.tenant_id {
            None => (false, None),
            Some(t) => (true, t.map(|t| t.0)),
        };
        let rows = sqlx::query_as::<_, JobRow>(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs
             WHERE (NOT $1 OR tenant_id IS NOT DISTINCT FROM $2)
               AND ($3::text IS NULL OR kind = $3)
               AND ($4::text IS NULL OR status = $4)
               AND ($5::timestamptz IS NULL OR created_at >= $5)
               AND ($6::timestamptz IS NULL OR created_at < $6)
               AND ($10::uuid IS NULL OR id >= $10) AND ($11::uuid IS NULL OR id < $11)
               AND ($7::uuid IS NULL OR id < $7)
               AND ($9::text IS NULL OR last_error ILIKE $9)
             ORDER BY id DESC LIMIT $8"
        ))
        .bind(tenant_filter)
        .bind(tenant)
        .bind(f.kind.as_deref())
        .bind(f.status.map(|s| s.as_str()))
        .bind(f.created_after)
        .bind(f.created_before)
        .bind(before)
        .bind(limit)
        .bind(f.error_contains.as_deref().map(contains_pattern))
        .bind(f.created_after.map(|t| id_bound(t - ID_CLOCK_MARGIN)))
        .bind(f.created_before.map(|t| id_bound(t + ID_CLOCK_MARGIN)))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(TryInto::try_into)
            .collect::<Result<_, _>>()?)
    }

    /// Cancel: a queued or deferred job stops at once; a running job is asked
    /// to stop and sees it at its next checkpoint. Terminal jobs are a conflict.
    pub async fn cancel(&self, tenant: Option<TenantId>, id: Uuid) -> Result<Job, LedgerError> {
        let mut tx = self.pool.begin().await?;
        let job = self.lock(&mut tx, tenant, id).await?;
        match job.status {
            JobStatus::Queued | JobStatus::Deferred => {
                Self::cancel_waiting(&mut tx, id).await?;
            }
            JobStatus::Running => {
                sqlx::query("UPDATE jobs SET cancel_requested = true WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            s => return Err(LedgerError::Conflict(format!("the job is already {s}"))),
        }
        tx.commit().await?;
        if job.status == JobStatus::Queued {
            // A slot it held in admission is free: let a deferred job in.
            if let Some(t) = job.tenant_id {
                self.promote_deferred(&[t.0]).await?;
            }
        }
        self.get(tenant, id).await
    }

    /// Cancel a job that has not started (queued or deferred), in the
    /// caller's transaction; false when it has started or ended.
    pub async fn cancel_waiting(tx: &mut PgConnection, id: Uuid) -> Result<bool, LedgerError> {
        Ok(sqlx::query(
            "UPDATE jobs SET status = 'cancelled', finished_at = now(), waiting_reason = NULL,
                    cancel_requested = true
             WHERE id = $1 AND status IN ('queued', 'deferred')",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1)
    }

    /// Platform retry of a failed or dead job: queued again with fresh attempts.
    pub async fn retry(&self, id: Uuid) -> Result<Job, LedgerError> {
        let mut tx = self.pool.begin().await?;
        let job = self.lock(&mut tx, None, id).await?;
        if !matches!(job.status, JobStatus::Failed | JobStatus::Dead) {
            return Err(LedgerError::Conflict(format!(
                "only failed or dead jobs can be retried; this one is {}",
                job.status
            )));
        }
        sqlx::query(
            "UPDATE jobs SET status = 'queued', attempts = 0, run_after = now(), queued_at = now(),
                    pushed_at = NULL, push_seq = push_seq + 1, finished_at = NULL, cancel_requested = false,
                    waiting_reason = NULL, last_error = last_error
             WHERE id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let seq: i32 = sqlx::query_scalar("SELECT push_seq FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        self.push(Pending {
            messages: vec![(job.kind.clone(), JobMessage { job_id: id, seq })],
        })
        .await;
        self.get(None, id).await
    }

    async fn lock(
        &self,
        tx: &mut PgConnection,
        tenant: Option<TenantId>,
        id: Uuid,
    ) -> Result<Job, LedgerError> {
        let row = sqlx::query_as::<_, JobRow>(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2) FOR UPDATE"
        ))
        .bind(id)
        .bind(tenant.map(|t| t.0))
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(LedgerError::NotFound)?;
        Ok(row.try_into()?)
    }

    pub(crate) async fn progress(
        &self,
        id: Uuid,
        run_id: Uuid,
        done: i64,
        total: Option<i64>,
        message: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE jobs SET progress_done = $3, progress_total = coalesce($4, progress_total),
                    progress_message = coalesce($5, progress_message)
             WHERE id = $1 AND run_id = $2",
        )
        .bind(id)
        .bind(run_id)
        .bind(done)
        .bind(total)
        .bind(message)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// True when the run should stop: cancellation requested, or the job is no
    /// longer this run's (its lease expired and another worker took it).
    pub(crate) async fn should_stop(&self, id: Uuid, run_id: Uuid) -> Result<Stop, sqlx::Error> {
        let row: Option<(bool, bool)> = sqlx::query_as(
            "SELECT j.cancel_requested, coalesce(t.status = 'suspended', false)
             FROM jobs j LEFT JOIN tenants t ON t.id = j.tenant_id
             WHERE j.id = $1 AND j.run_id = $2 AND j.status = 'running'",
        )
        .bind(id)
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            // Lost to another worker, or finished elsewhere.
            None => Stop::Cancel,
            Some((true, _)) => Stop::Cancel,
            Some((false, true)) => Stop::Suspended,
            Some((false, false)) => Stop::No,
        })
    }
}

/// What a checkpoint found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    No,
    /// Cancellation was asked for, or the run lost its lease.
    Cancel,
    /// The job's tenant was suspended: release the job, held until the
    /// tenant is unsuspended.
    Suspended,
}

/// What the admin stats endpoint shows.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// kind -> status -> count, over the whole ledger.
    #[schema(value_type = Object)]
    pub counts: std::collections::BTreeMap<String, std::collections::BTreeMap<String, i64>>,
    /// kind -> tasks waiting in Redis.
    #[schema(value_type = Object)]
    pub queue_depth: std::collections::BTreeMap<String, u64>,
    /// tenant id -> jobs running now.
    #[schema(value_type = Object)]
    pub running_per_tenant: std::collections::BTreeMap<String, i64>,
    pub last_hour: Window,
    pub last_day: Window,
}

#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct Window {
    pub succeeded: i64,
    /// failed + dead
    pub failed: i64,
    /// Finished jobs per second over the window.
    pub throughput_per_sec: f64,
    /// failed / (succeeded + failed); 0 when nothing finished.
    pub failure_rate: f64,
}

impl Ledger {
    pub async fn stats(&self, kinds: &[&'static str]) -> Result<Stats, LedgerError> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT kind, status, count(*) FROM jobs GROUP BY kind, status ORDER BY kind, status",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut counts: std::collections::BTreeMap<
            String,
            std::collections::BTreeMap<String, i64>,
        > = Default::default();
        for (kind, status, n) in rows {
            counts.entry(kind).or_default().insert(status, n);
        }
        let running: Vec<(Uuid, i64)> = sqlx::query_as(
            "SELECT tenant_id, count(*) FROM jobs WHERE status = 'running' AND tenant_id IS NOT NULL GROUP BY tenant_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut queue_depth = std::collections::BTreeMap::new();
        for kind in kinds {
            queue_depth.insert(kind.to_string(), self.transport.depth(kind).await?);
        }
        Ok(Stats {
            counts,
            queue_depth,
            running_per_tenant: running
                .into_iter()
                .map(|(t, n)| (t.to_string(), n))
                .collect(),
            last_hour: self.window(3600).await?,
            last_day: self.window(86400).await?,
        })
    }

    async fn window(&self, secs: i64) -> Result<Window, sqlx::Error> {
        let (succeeded, failed): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status IN ('failed', 'dead'))
             FROM jobs WHERE finished_at > now() - make_interval(secs => $1)",
        )
        .bind(secs as f64)
        .fetch_one(&self.pool)
        .await?;
        let finished = succeeded + failed;
        Ok(Window {
            succeeded,
            failed,
            throughput_per_sec: (succeeded + failed) as f64 / secs as f64,
            failure_rate: if finished == 0 {
                0.0
            } else {
                failed as f64 / finished as f64
            },
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_time_is_the_lower_bound_of_its_ids() {
        let t = chrono::Utc::now();
        let id = uuid::Uuid::now_v7();
        let (before, after) = (
            super::id_bound(t - chrono::Duration::milliseconds(1)),
            super::id_bound(t + chrono::Duration::seconds(1)),
        );
        assert!(before < id && id < after, "{before} < {id} < {after}");
        assert_eq!(super::id_bound(t).get_version_num(), 7);
    }

    #[test]
    fn error_text_is_matched_literally() {
        assert_eq!(super::contains_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
        assert_eq!(super::contains_pattern("timeout"), "%timeout%");
    }
}
