//! Tenant jobs: submit, list, read, cancel.

use crate::auth::{perm, TenantScope};
use crate::enqueue::{charge_job, ledger_error};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery};
use crate::idempotency::{hash_parts, Keyed};
use crate::pagination::{Page, PageParams};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bizcontacts_domain::TenantId;
use bizcontacts_queue::handler::Starter;
use bizcontacts_queue::job::{Job, JobStatus, NewJob};
use bizcontacts_queue::ledger::JobFilter;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs, submit_job))
        .routes(routes!(get_job))
        .routes(routes!(cancel_job))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Progress {
    done: i64,
    total: Option<i64>,
    message: Option<String>,
}

/// A job as clients see it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct JobView {
    job_id: Uuid,
    tenant_id: Option<Uuid>,
    kind: String,
    status: JobStatus,
    #[schema(value_type = Object)]
    params: serde_json::Value,
    attempts: i32,
    max_attempts: i32,
    progress: Progress,
    last_error: Option<String>,
    /// Why a deferred (or retrying) job waits.
    waiting_reason: Option<String>,
    cancel_requested: bool,
    idempotency_key: Option<String>,
    run_after: DateTime<Utc>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    /// Last sign of life of the worker running it.
    heartbeat_at: Option<DateTime<Utc>>,
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        JobView {
            job_id: j.id,
            tenant_id: j.tenant_id.map(|t| t.0),
            kind: j.kind,
            status: j.status,
            params: j.params,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            progress: Progress {
                done: j.progress_done,
                total: j.progress_total,
                message: j.progress_message,
            },
            last_error: j.last_error,
            waiting_reason: j.waiting_reason,
            cancel_requested: j.cancel_requested,
            idempotency_key: j.idempotency_key,
            run_after: j.run_after,
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
            heartbeat_at: j.heartbeat_at,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    kind: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    params: serde_json::Value,
}

/// Start a job of a kind tenants may start. The same `Idempotency-Key` returns
/// the same job. Counts against the package's jobs per day.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/jobs", tag = "jobs", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)), request_body = SubmitJob,
    responses((status = 202, body = JobView), (status = 200, body = JobView, description = "idempotent replay"),
        (status = 403, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant_id()))]
async fn submit_job(
    State(state): State<AppState>,
    scope: TenantScope<perm::JobsRead>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SubmitJob>,
) -> Result<Response, ApiError> {
    let handler = state.registry.get(&req.kind).ok_or_else(|| {
        ApiError::field(
            "kind",
            format!(
                "job kind {:?} is not available in this deployment",
                req.kind
            ),
        )
    })?;
    let permission = match handler.starter() {
        Starter::Tenant(p) => p,
        Starter::Platform => {
            return Err(ApiError::field(
                "kind",
                format!(
                    "{} jobs are started by the platform, not by tenants",
                    req.kind
                ),
            ))
        }
        Starter::Intake(_) => {
            return Err(ApiError::field(
                "kind",
                format!(
                    "{} jobs start with the request they belong to (see /imports), not here",
                    req.kind
                ),
            ))
        }
    };
    scope.require(permission)?;
    let params = if req.params.is_null() {
        serde_json::json!({})
    } else {
        req.params
    };
    handler
        .validate(&params)
        .map_err(|reason| ApiError::field("params", reason))?;
    let key = Keyed::from_headers(&headers, "POST /v1/tenants/{tenant_id}/jobs")?;
    let tenant = scope.tenant_id();
    let hash = hash_parts([req.kind.as_bytes(), params.to_string().as_bytes()]);
    if let Some(k) = &key {
        if let Some(job) = k.replayed(&state.store.pool, tenant, &hash).await? {
            return replay(&state, tenant, job).await;
        }
    }
    let limits = scope.limits.clone();
    let mut tx = state.store.pool.begin().await?;
    let usage = charge_job(&limits, tenant, &mut tx).await?;
    let new = NewJob {
        tenant_id: Some(tenant),
        kind: req.kind,
        params,
        idempotency_key: key.as_ref().map(|k| k.key.clone()),
        max_attempts: handler.retry().max_attempts,
        run_after: None,
        created_by: Some(scope.principal.user_id.0),
    };
    let (enqueued, pending) = state
        .ledger
        .enqueue(&mut tx, new)
        .await
        .map_err(ledger_error)?;
    let recorded = match &key {
        Some(k) if enqueued.created => k.record(&mut *tx, tenant, &hash, enqueued.job.id).await?,
        _ => enqueued.created,
    };
    if !recorded {
        // A concurrent request with the same key won: answer as it did, and
        // this one costs nothing.
        tx.rollback().await?;
        let k = key.as_ref().expect("only a keyed request can lose a race");
        let job = k
            .replayed(&state.store.pool, tenant, &hash)
            .await?
            .ok_or_else(|| {
                ApiError::Conflict(
                    "a request with this Idempotency-Key is in progress; retry it".into(),
                )
            })?;
        return replay(&state, tenant, job).await;
    }
    tx.commit().await?;
    state.ledger.push(pending).await;
    Ok(usage.on((StatusCode::ACCEPTED, Json(JobView::from(enqueued.job))).into_response()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    kind: Option<String>,
    /// One of queued, deferred, running, succeeded, failed, cancelled, dead.
    status: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    cursor: Option<String>,
}

impl JobQuery {
    pub(crate) fn from_fields(
        kind: Option<String>,
        status: Option<String>,
        limit: Option<i64>,
        cursor: Option<String>,
    ) -> Self {
        JobQuery {
            kind,
            status,
            limit,
            cursor,
        }
    }

    pub(crate) fn parts(self) -> Result<(Option<String>, Option<JobStatus>, PageParams), ApiError> {
        let status = self
            .status
            .as_deref()
            .map(|s| {
                s.parse::<JobStatus>()
                    .map_err(|e| ApiError::field("status", e))
            })
            .transpose()?;
        Ok((
            self.kind,
            status,
            PageParams {
                limit: self.limit,
                cursor: self.cursor,
            },
        ))
    }
}

/// The job an earlier request with the same key created (200).
async fn replay(state: &AppState, tenant: TenantId, job_id: Uuid) -> Result<Response, ApiError> {
    let job = state
        .ledger
        .get(Some(tenant), job_id)
        .await
        .map_err(ledger_error)?;
    Ok((StatusCode::OK, Json(JobView::from(job))).into_response())
}

/// The tenant's jobs, newest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/jobs", tag = "jobs", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), JobQuery),
    responses((status = 200, body = Page<JobView>), (status = 403, body = Problem)))]
async fn list_jobs(
    State(state): State<AppState>,
    scope: TenantScope<perm::JobsRead>,
    ApiQuery(q): ApiQuery<JobQuery>,
) -> Result<Json<Page<JobView>>, ApiError> {
    let (kind, status, page) = q.parts()?;
    let limit = page.limit()?;
    let filter = JobFilter {
        tenant_id: Some(Some(scope.tenant_id())),
        kind,
        status,
        ..JobFilter::default()
    };
    let rows = state
        .ledger
        .list(&filter, page.cursor()?, limit + 1)
        .await
        .map_err(ledger_error)?;
    Ok(Json(Page::from_rows(rows, limit, |j| j.id, JobView::from)))
}

#[derive(Deserialize)]
struct JobPath {
    job_id: Uuid,
}

/// One job: status, attempts, progress, last error, and why it waits.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/jobs/{job_id}", tag = "jobs", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("job_id" = Uuid, Path)),
    responses((status = 200, body = JobView), (status = 404, body = Problem)))]
async fn get_job(
    State(state): State<AppState>,
    scope: TenantScope<perm::JobsRead>,
    Path(JobPath { job_id }): Path<JobPath>,
) -> Result<Json<JobView>, ApiError> {
    let job = state
        .ledger
        .get(Some(scope.tenant_id()), job_id)
        .await
        .map_err(ledger_error)?;
    Ok(Json(job.into()))
}

/// Cancel: queued and deferred jobs stop at once; a running job stops at its
/// next checkpoint. Needs the permission that starts the job's kind.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/jobs/{job_id}/cancel", tag = "jobs", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("job_id" = Uuid, Path)),
    responses((status = 200, body = JobView), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn cancel_job(
    State(state): State<AppState>,
    scope: TenantScope<perm::JobsRead>,
    Path(JobPath { job_id }): Path<JobPath>,
) -> Result<Json<JobView>, ApiError> {
    let tenant = Some(scope.tenant_id());
    let job = state
        .ledger
        .get(tenant, job_id)
        .await
        .map_err(ledger_error)?;
    if let Some(Starter::Tenant(p) | Starter::Intake(p)) =
        state.registry.get(&job.kind).map(|h| h.starter())
    {
        scope.require(p)?;
    }
    let job = state
        .ledger
        .cancel(tenant, job_id)
        .await
        .map_err(ledger_error)?;
    Ok(Json(job.into()))
}
