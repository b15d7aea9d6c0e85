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

use crate::auth::{perm, SystemScope};
use crate::error::{not_found, ApiError, Problem};
use crate::extract::{ApiJson, RequestId};
use crate::routes::admin::{reason, tenant_view, TenantView};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use bizcontacts_domain::TenantId;
use bizcontacts_store::{audit, tenants};
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(suspend))
        .routes(routes!(unsuspend))
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
    let why = reason(&req.reason)?;
    let id = TenantId(tenant_id);
    let mut tx = state.store.pool.begin().await?;
    tenants::lock(&mut tx, id)
        .await
        .map_err(not_found("tenant"))?;
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
    let why = reason(&req.reason)?;
    let id = TenantId(tenant_id);
    let mut tx = state.store.pool.begin().await?;
    tenants::lock(&mut tx, id)
        .await
        .map_err(not_found("tenant"))?;
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
