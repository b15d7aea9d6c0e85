//! Tenant admission: how many of a tenant's jobs may be live at once, in one
//! place.
//!
//! The package's `concurrent_jobs` is enforced twice, each time from the
//! ledger (a derived count, never a counter that can drift):
//! - when a job is **admitted** (enqueued, or a deferred job promoted): its
//!   tenant's queued and running jobs are counted under
//!   [`AdvisoryLock::TenantAdmission`]; past the limit a job is written
//!   `deferred` and not pushed, so one tenant's backlog never sits in front of
//!   another tenant's work in Redis;
//! - when a worker **claims** it: the tenant's running jobs with a live lease
//!   are counted under [`AdvisoryLock::TenantClaim`], so a job pushed twice,
//!   or promoted while a killed worker's lease was still running out, cannot
//!   run beside the limit.

use bizcontacts_domain::locks::{self, AdvisoryLock};
use sqlx::PgConnection;
use std::collections::HashMap;
use uuid::Uuid;

/// Which jobs count against the limit.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Count {
    /// Queued and running: what admission and promotion count.
    Admitted,
    /// Running with a live lease: what a claim counts.
    Running,
}

/// A tenant's room under its limit, as counted at the start of a transaction.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Room {
    pub free: i64,
    pub limit: i32,
    /// A suspended tenant has no room at all: its jobs are held (deferred,
    /// not run, not failed) until it is unsuspended.
    pub suspended: bool,
}

impl Room {
    /// Take a slot, or say why the job waits.
    pub fn take(&mut self) -> Result<(), String> {
        if self.suspended {
            return Err(SUSPENDED.to_string());
        }
        if self.free <= 0 {
            return Err(format!(
                "tenant at concurrent-job limit {0}/{0}",
                self.limit
            ));
        }
        self.free -= 1;
        Ok(())
    }
}

/// Why a suspended tenant's job waits.
pub(crate) const SUSPENDED: &str = "tenant is suspended";

/// Lock the tenants' admission (or claims) until the transaction ends, in id
/// order so concurrent transactions cannot deadlock, and count their room.
pub(crate) async fn lock_and_count(
    tx: &mut PgConnection,
    tenants: &[Uuid],
    count: Count,
) -> Result<HashMap<Uuid, Room>, sqlx::Error> {
    let mut sorted = tenants.to_vec();
    sorted.sort();
    sorted.dedup();
    if sorted.is_empty() {
        return Ok(HashMap::new());
    }
    let lock = match count {
        Count::Admitted => AdvisoryLock::TenantAdmission,
        Count::Running => AdvisoryLock::TenantClaim,
    };
    for t in &sorted {
        sqlx::query(locks::SQL)
            .bind(lock.class())
            .bind(t.to_string())
            .execute(&mut *tx)
            .await?;
    }
    let live = match count {
        Count::Admitted => "j.status IN ('queued', 'running')",
        Count::Running => "j.status = 'running' AND j.lease_until > now()",
    };
    let rows: Vec<(Uuid, i64, i32, bool)> = sqlx::query_as(&format!(
        "SELECT t.id, p.concurrent_jobs - (SELECT count(*) FROM jobs j WHERE j.tenant_id = t.id AND {live}),
                p.concurrent_jobs, t.status = 'suspended'
         FROM tenants t JOIN packages p ON p.name = t.package WHERE t.id = ANY($1)"
    ))
    .bind(&sorted)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(t, free, limit, suspended)| {
            let free = if suspended { 0 } else { free };
            (
                t,
                Room {
                    free,
                    limit,
                    suspended,
                },
            )
        })
        .collect())
}

/// Move the oldest deferred jobs of `tenants` to queued, as many as their
/// room allows now; returns (id, kind, push_seq) of each, to push after commit.
pub(crate) async fn promote_deferred(
    tx: &mut PgConnection,
    tenants: &[Uuid],
) -> Result<Vec<(Uuid, String, i32)>, sqlx::Error> {
    let room = lock_and_count(tx, tenants, Count::Admitted).await?;
    let (ids, free): (Vec<Uuid>, Vec<i64>) = room
        .into_iter()
        .filter(|(_, r)| r.free > 0)
        .map(|(t, r)| (t, r.free))
        .unzip();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "WITH picked AS (
             SELECT d.id FROM unnest($1::uuid[], $2::bigint[]) AS room(tenant_id, free), LATERAL (
                 SELECT id FROM jobs WHERE tenant_id = room.tenant_id AND status = 'deferred'
                 ORDER BY id LIMIT room.free
             ) d
         )
         UPDATE jobs j SET status = 'queued', waiting_reason = NULL, queued_at = now(),
                push_seq = j.push_seq + 1, pushed_at = NULL
         FROM picked WHERE j.id = picked.id
         RETURNING j.id, j.kind, j.push_seq",
    )
    .bind(&ids)
    .bind(&free)
    .fetch_all(&mut *tx)
    .await
}
