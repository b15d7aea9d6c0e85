//! Suspending a tenant (terms: "to protect the service, comply with law,
//! resolve abuse, or address security concerns"), by a platform admin,
//! audited. Nothing is deleted. While suspended:
//! - every session and API key of the tenant gets a 403 naming the
//!   suspension (`auth.rs`; platform admins still reach it);
//! - its queued and deferred jobs are held (deferred with the reason "tenant
//!   is suspended": not run, not failed, no attempt counted), a running job
//!   is released at its next checkpoint and held likewise
//!   (`queue::admission`), and all of them resume on unsuspend;
//! - nightly pulls skip it, and HighLevel webhooks for its Location are
//!   acknowledged and recorded but start no pull.
//!
//! `support` reads the state in `GET /v1/admin/tenants`.
//!
//! Deleting a tenant: scheduled after `retention.deletion_grace_days`
//! (cancellable until the `tenant_delete` job starts; what it removes:
//! `jobs/tenant_delete.rs`). The confirmation must repeat the tenant's
//! name. Audited under no tenant, so the record outlives the tenant.

use crate::auth::{perm, SystemScope};
use crate::enqueue::platform_job;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, RequestId};
use crate::routes::admin::{lock_tenant, reason, tenant_view, TenantView, REASON_MAX};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bizcontacts_domain::TenantId;
use bizcontacts_jobs::TenantDeleteArgs;
use bizcontacts_queue::args::JobArgs;
use bizcontacts_queue::ledger::Ledger;
use bizcontacts_store::{audit, tenant_deletion, tenants};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::Serialize;
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(suspend))
        .routes(routes!(unsuspend))
        .routes(routes!(schedule_delete))
        .routes(routes!(cancel_delete))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    /// Why (shown to the tenant's callers while suspended, and audited).
    reason: String,
}

/// Suspend a tenant: its callers get 403, its jobs are held.
#[utoipa::path(post, path = "/v1/admin/tenants/{tenant_id}/suspend", tag = "admin", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)), request_body = Reason,
    responses((status = 200, body = TenantView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "already suspended")))]
async fn suspend(
    State(state): State<AppState>,
    scope: SystemScope<perm::AdminOperate>,
    RequestId(request_id): RequestId,
    Path(tenant_id): Path<Uuid>,
    ApiJson(req): ApiJson<Reason>,
) -> Result<Json<TenantView>, ApiError> {
    let why = reason(&req.reason, REASON_MAX)?;
    let id = TenantId(tenant_id);
    let (mut tx, _) = lock_tenant(&state, id).await?;
    if !tenants::suspend(&mut *tx, id, why, Some(scope.principal.user_id.0)).await? {
        return Err(ApiError::Conflict("the tenant is already suspended".into()));
    }
    audit::record(
        &mut *tx,
        scope.principal.event(
            Some(id),
            "tenant.suspended",
            ("tenant", id.to_string()),
            json!({ "reason": why }),
            request_id.as_deref(),
        ),
    )
    .await?;
    let view = tenant_view(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(view))
}

/// Lift a suspension: callers are let in again and held jobs resume.
#[utoipa::path(post, path = "/v1/admin/tenants/{tenant_id}/unsuspend", tag = "admin", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)), request_body = Reason,
    responses((status = 200, body = TenantView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "not suspended")))]
async fn unsuspend(
    State(state): State<AppState>,
    scope: SystemScope<perm::AdminOperate>,
    RequestId(request_id): RequestId,
    Path(tenant_id): Path<Uuid>,
    ApiJson(req): ApiJson<Reason>,
) -> Result<Json<TenantView>, ApiError> {
    let why = reason(&req.reason, REASON_MAX)?;
    let id = TenantId(tenant_id);
    let (mut tx, _) = lock_tenant(&state, id).await?;
    if !tenants::unsuspend(&mut *tx, id).await? {
        return Err(ApiError::Conflict("the tenant is not suspended".into()));
    }
    audit::record(
        &mut *tx,
        scope.principal.event(
            Some(id),
            "tenant.unsuspended",
            ("tenant", id.to_string()),
            json!({ "reason": why }),
            request_id.as_deref(),
        ),
    )
    .await?;
    let view = tenant_view(&mut tx, id).await?;
    tx.commit().await?;
    // Held jobs go back in line at once (the relay would within its interval).
    if let Err(e) = state.ledger.promote_deferred(&[id.0]).await {
        tracing::warn!(error = %e, "promoting held jobs after unsuspend failed; the relay will");
    }
    Ok(Json(view))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    /// Why (audited).
    reason: String,
    /// The tenant's name, exactly: a guard against deleting the wrong one.
    confirm: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeleteScheduled {
    job_id: Uuid,
    /// When the deletion starts (cancellable until then).
    delete_after: DateTime<Utc>,
}

/// Schedule a tenant's deletion after the grace period.
#[utoipa::path(post, path = "/v1/admin/tenants/{tenant_id}/delete", tag = "admin", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)), request_body = DeleteRequest,
    responses((status = 202, body = DeleteScheduled), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "already scheduled"), (status = 422, body = Problem)))]
async fn schedule_delete(
    State(state): State<AppState>,
    scope: SystemScope<perm::AdminOperate>,
    RequestId(request_id): RequestId,
    Path(tenant_id): Path<Uuid>,
    ApiJson(req): ApiJson<DeleteRequest>,
) -> Result<(StatusCode, Json<DeleteScheduled>), ApiError> {
    let why = reason(&req.reason, REASON_MAX)?;
    let id = TenantId(tenant_id);
    let (mut tx, tenant) = lock_tenant(&state, id).await?;
    if req.confirm != tenant.name {
        return Err(ApiError::field(
            "confirm",
            "must be the tenant's name, exactly",
        ));
    }
    let scheduled = tenant_deletion::get(&mut *tx, id).await?;
    if scheduled.and_then(|s| s.delete_after).is_some() {
        return Err(ApiError::Conflict(
            "the tenant's deletion is already scheduled".into(),
        ));
    }
    let after = Utc::now() + state.deletion_grace;
    let job = TenantDeleteArgs { tenant_id: id }.job().after(after);
    let (job, pending) = platform_job(&state, &mut tx, &scope.principal, job).await?;
    tenant_deletion::schedule(&mut tx, id, after, why, scope.principal.user_id.0, job.id).await?;
    audit::record(
        &mut *tx,
        scope.principal.event(
            None,
            "tenant.deletion_scheduled",
            ("tenant", id.to_string()),
            json!({ "tenant_name": tenant.name, "reason": why, "delete_after": after }),
            request_id.as_deref(),
        ),
    )
    .await?;
    tx.commit().await?;
    state.ledger.push(pending).await;
    Ok((
        StatusCode::ACCEPTED,
        Json(DeleteScheduled {
            job_id: job.id,
            delete_after: after,
        }),
    ))
}

/// Cancel a scheduled deletion (before its job has started).
#[utoipa::path(post, path = "/v1/admin/tenants/{tenant_id}/delete/cancel", tag = "admin", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)), request_body = Reason,
    responses((status = 200, body = TenantView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "none scheduled, or already under way")))]
async fn cancel_delete(
    State(state): State<AppState>,
    scope: SystemScope<perm::AdminOperate>,
    RequestId(request_id): RequestId,
    Path(tenant_id): Path<Uuid>,
    ApiJson(req): ApiJson<Reason>,
) -> Result<Json<TenantView>, ApiError> {
    let why = reason(&req.reason, REASON_MAX)?;
    let id = TenantId(tenant_id);
    let (mut tx, _) = lock_tenant(&state, id).await?;
    let Some(job) = tenant_deletion::get(&mut *tx, id)
        .await?
        .and_then(|s| s.delete_job_id)
    else {
        return Err(ApiError::Conflict("no deletion is scheduled".into()));
    };
    // Only a job that has not started can be called off.
    let cancelled = Ledger::cancel_waiting(&mut tx, job)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    if !cancelled {
        return Err(ApiError::Conflict(
            "the deletion is already under way".into(),
        ));
    }
    tenant_deletion::unschedule(&mut tx, id).await?;
    audit::record(
        &mut *tx,
        scope.principal.event(
            None,
            "tenant.deletion_cancelled",
            ("tenant", id.to_string()),
            json!({ "reason": why }),
            request_id.as_deref(),
        ),
    )
    .await?;
    let view = tenant_view(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(view))
}
