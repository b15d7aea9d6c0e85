//! How requests become jobs: typed job arguments (`ImportArgs { .. }.job()`)
//! enqueued in the request's own transaction, charged to the tenant's jobs
//! per day in that same transaction (so a request that fails costs nothing).
//! Push the returned `Pending` after commit.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use axum::http::HeaderValue;
use axum::response::Response;
use bizcontacts_domain::{PackageLimits, TenantId};
use bizcontacts_queue::job::{Job, NewJob};
use bizcontacts_queue::ledger::{Enqueued, LedgerError, Pending};
use bizcontacts_store::tenants::Tenant;
use bizcontacts_store::{packages, usage};
use chrono::Utc;
use sqlx::PgConnection;

/// A tenant's job, charged to its jobs per day (a 429 once they are used up).
pub(crate) async fn tenant_job(
    state: &AppState,
    tx: &mut PgConnection,
    tenant: &Tenant,
    by: &Principal,
    job: NewJob,
) -> Result<(Enqueued, Pending, Usage), ApiError> {
    // Through the transaction: a second pool connection taken while this one
    // is held can wait forever once the pool is busy.
    let limits = packages::get(&mut *tx, tenant.package).await?;
    let usage = charge_job(&limits, tenant.id, tx).await?;
    let job = job.tenant(tenant.id).by(by.user_id.0);
    let (enqueued, pending) = state.ledger.enqueue(tx, job).await.map_err(ledger_error)?;
    Ok((enqueued, pending, usage))
}

/// A platform job (no tenant), asked for by an operator.
pub(crate) async fn platform_job(
    state: &AppState,
    tx: &mut PgConnection,
    by: &Principal,
    job: NewJob,
) -> Result<(Job, Pending), ApiError> {
    let (enqueued, pending) = state
        .ledger
        .enqueue(tx, job.by(by.user_id.0))
        .await
        .map_err(ledger_error)?;
    Ok((enqueued.job, pending))
}

/// What a call consumed of a daily limit, for the `X-Usage-*` headers.
pub(crate) struct Usage {
    limit: i32,
    remaining: i32,
}

impl Usage {
    pub(crate) fn new(limit: i32, remaining: i32) -> Self {
        Usage { limit, remaining }
    }

    pub(crate) fn on(&self, mut res: Response) -> Response {
        res.headers_mut()
            .insert("x-usage-limit", HeaderValue::from(self.limit));
        res.headers_mut()
            .insert("x-usage-remaining", HeaderValue::from(self.remaining));
        res
    }
}

/// Count one job against the tenant's jobs per day, in `tx`; a 429 once the
/// day's jobs are used up.
pub(crate) async fn charge_job(
    limits: &PackageLimits,
    tenant: TenantId,
    tx: &mut PgConnection,
) -> Result<Usage, ApiError> {
    let remaining = usage::consume(
        &mut *tx,
        usage::Counter::Jobs,
        tenant,
        Utc::now().date_naive(),
        limits.jobs_per_day,
    )
    .await?
    .ok_or_else(|| ApiError::DailyLimit {
        limit: "jobs_per_day",
        max: limits.jobs_per_day,
        detail: format!(
            "the package allows {} jobs per day; the limit resets at 00:00 UTC",
            limits.jobs_per_day
        ),
    })?;
    Ok(Usage {
        limit: limits.jobs_per_day,
        remaining,
    })
}

pub(crate) fn ledger_error(e: LedgerError) -> ApiError {
    match e {
        LedgerError::NotFound => ApiError::NotFound("job"),
        LedgerError::Conflict(msg) => ApiError::Conflict(msg),
        other => ApiError::Internal(other.into()),
    }
}
