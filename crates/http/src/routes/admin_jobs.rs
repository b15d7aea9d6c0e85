//! Job monitoring and operation for system roles.

use crate::auth::{perm, SystemScope};
use crate::enqueue::ledger_error;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiQuery, RequestId};
use crate::pagination::Page;
use crate::routes::jobs::{JobQuery, JobView};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use bizcontacts_domain::TenantId;
use bizcontacts_queue::ledger::{JobFilter, Stats};
use bizcontacts_queue::presence::{self, WorkerView};
use bizcontacts_store::audit;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(stats))
        .routes(routes!(list))
        .routes(routes!(retry))
        .routes(routes!(cancel))
        .routes(routes!(workers))
}

/// Worker processes seen in the last day: live ones (heartbeat fresh),
/// stopped ones (shut down gracefully) and lost ones (heartbeat stale: killed,
/// or cut off), with their kinds, concurrency and jobs in flight.
#[utoipa::path(get, path = "/v1/admin/workers", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<WorkerView>), (status = 403, body = Problem)))]
async fn workers(
    State(state): State<AppState>,
    _scope: SystemScope<perm::AdminMonitor>,
) -> Result<Json<Vec<WorkerView>>, ApiError> {
    Ok(Json(
        presence::list(&state.store.pool, state.worker_heartbeat).await?,
    ))
}

/// Counts per kind and status, Redis queue depth, running per tenant,
/// throughput and failure rate over the last hour and day.
#[utoipa::path(get, path = "/v1/admin/jobs/stats", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Stats), (status = 403, body = Problem)))]
async fn stats(
    State(state): State<AppState>,
    _scope: SystemScope<perm::AdminMonitor>,
) -> Result<Json<Stats>, ApiError> {
    let kinds: Vec<&'static str> = state.registry.kinds().collect();
    Ok(Json(
        state.ledger.stats(&kinds).await.map_err(ledger_error)?,
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AdminJobQuery {
    /// A tenant id, or `platform` for jobs of no tenant.
    tenant_id: Option<String>,
    created_after: Option<DateTime<Utc>>,
    created_before: Option<DateTime<Utc>>,
    kind: Option<String>,
    status: Option<String>,
    /// Text the last error contains (case-insensitive), 3 to 200 characters.
    error: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    cursor: Option<String>,
}

/// Jobs of every tenant, newest first, with filters.
#[utoipa::path(get, path = "/v1/admin/jobs", tag = "admin", security(("bearer" = [])), params(AdminJobQuery),
    responses((status = 200, body = Page<JobView>), (status = 403, body = Problem)))]
async fn list(
    State(state): State<AppState>,
    _scope: SystemScope<perm::AdminMonitor>,
    ApiQuery(q): ApiQuery<AdminJobQuery>,
) -> Result<Json<Page<JobView>>, ApiError> {
    let tenant = match q.tenant_id.as_deref() {
        None => None,
        Some("platform") => Some(None),
        Some(t) => Some(Some(t.parse::<TenantId>().map_err(|_| {
            ApiError::field("tenant_id", "must be a tenant id or 'platform'")
        })?)),
    };
    let (kind, status, page) =
        JobQuery::from_fields(q.kind, q.status, q.limit, q.cursor).parts()?;
    let limit = page.limit()?;
    let filter = JobFilter {
        tenant_id: tenant,
        kind,
        status,
        created_after: q.created_after,
        created_before: q.created_before,
        error_contains: error_filter(q.error)?,
    };
    let rows = state
        .ledger
        .list(&filter, page.cursor()?, limit + 1)
        .await
        .map_err(ledger_error)?;
    Ok(Json(Page::from_rows(rows, limit, |j| j.id, JobView::from)))
}

/// The `error` filter: at least a trigram (shorter text cannot use the
/// index and would read every failed job), at most a line.
pub fn error_filter(text: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(text) = text.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let n = text.chars().count();
    if !(3..=200).contains(&n) || text.chars().any(char::is_control) {
        return Err(ApiError::field(
            "error",
            "must be 3 to 200 characters, without control characters",
        ));
    }
    Ok(Some(text))
}

#[derive(Deserialize)]
struct JobPath {
    job_id: Uuid,
}

/// Queue a failed or dead job again, with fresh attempts (audited).
#[utoipa::path(post, path = "/v1/admin/jobs/{job_id}/retry", tag = "admin", security(("bearer" = [])),
    params(("job_id" = Uuid, Path)),
    responses((status = 200, body = JobView), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn retry(
    State(state): State<AppState>,
    scope: SystemScope<perm::AdminOperate>,
    RequestId(request_id): RequestId,
    Path(JobPath { job_id }): Path<JobPath>,
) -> Result<Json<JobView>, ApiError> {
    let job = state.ledger.retry(job_id).await.map_err(ledger_error)?;
    audit::record(
        &state.store.pool,
        scope.principal.event(
            job.tenant_id,
            "job.retried",
            ("job", job_id.to_string()),
            json!({ "kind": job.kind }),
            request_id.as_deref(),
        ),
    )
    .await?;
    Ok(Json(job.into()))
}

/// Cancel any job (audited).
#[utoipa::path(post, path = "/v1/admin/jobs/{job_id}/cancel", tag = "admin", security(("bearer" = [])),
    params(("job_id" = Uuid, Path)),
    responses((status = 200, body = JobView), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn cancel(
    State(state): State<AppState>,
    scope: SystemScope<perm::AdminOperate>,
    RequestId(request_id): RequestId,
    Path(JobPath { job_id }): Path<JobPath>,
) -> Result<Json<JobView>, ApiError> {
    let job = state
        .ledger
        .cancel(None, job_id)
        .await
        .map_err(ledger_error)?;
    audit::record(
        &state.store.pool,
        scope.principal.event(
            job.tenant_id,
            "job.cancelled",
            ("job", job_id.to_string()),
            json!({ "kind": job.kind }),
            request_id.as_deref(),
        ),
    )
    .await?;
    Ok(Json(job.into()))
}
