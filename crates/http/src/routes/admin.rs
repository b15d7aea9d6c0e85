//! Platform administration (system roles): tenants, manual plan activation, audit.

use crate::auth::{perm, SystemScope};
use crate::enqueue::platform_job;
use crate::error::{not_found, ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery, RequestId};
use crate::pagination::{Page, PageParams};
use crate::routes::jobs::JobView;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bizcontacts_billing::{sync, BillingError, Cause};
use bizcontacts_domain::{PackageName, TenantId, UserId};
use bizcontacts_jobs::BillingReconcileArgs;
use bizcontacts_queue::args::JobArgs;
use bizcontacts_store::audit::{self, AuditEvent, Filter};
use bizcontacts_store::tenants;
use bizcontacts_store::usage::{self, DailyUsage};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tenants))
        .routes(routes!(set_package, revoke_package))
        .routes(routes!(reconcile))
        .routes(routes!(list_audit))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TenantView {
    tenant_id: Uuid,
    name: String,
    package: PackageName,
    /// `active` or `suspended`.
    status: &'static str,
    /// Why and since when, while suspended.
    suspended_reason: Option<String>,
    suspended_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    #[schema(value_type = Object)]
    usage_today: DailyUsage,
}

impl TenantView {
    pub(crate) fn new(t: tenants::Tenant, usage_today: DailyUsage) -> Self {
        TenantView {
            tenant_id: t.id.0,
            name: t.name,
            package: t.package,
            status: t.status.as_str(),
            suspended_reason: t.suspended_reason,
            suspended_at: t.suspended_at,
            created_at: t.created_at,
            usage_today,
        }
    }
}

/// Tenants with their package and today's usage.
#[utoipa::path(get, path = "/v1/admin/tenants", tag = "admin", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = Page<TenantView>), (status = 403, body = Problem)))]
async fn list_tenants(
    State(state): State<AppState>,
    _scope: SystemScope<perm::AdminMonitor>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<TenantView>>, ApiError> {
    let limit = page.limit()?;
    let db = &state.store.pool;
    let rows = tenants::list(db, page.cursor()?.map(TenantId), limit + 1).await?;
    let ids: Vec<TenantId> = rows.iter().map(|t| t.id).collect();
    let today = usage::get_many(db, &ids, Utc::now().date_naive()).await?;
    Ok(Json(Page::from_rows(
        rows,
        limit,
        |t| t.id.0,
        |t| {
            let used = today.get(&t.id).cloned().unwrap_or_default();
            TenantView::new(t, used)
        },
    )))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPackage {
    package: PackageName,
    /// Why (kept in the audit event); required.
    reason: String,
    /// When the activation ends (then the subscription's package, or free);
    /// absent: until revoked.
    until: Option<DateTime<Utc>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Revoke {
    /// Why (kept in the audit event); required.
    reason: String,
}

/// A reason an operator gives (audited, and for a suspension shown to the
/// tenant): 1 to `max` characters of text, no control characters (Postgres
/// text cannot hold a NUL, and a reason is one line).
pub(crate) fn reason(r: &str, max: usize) -> Result<&str, ApiError> {
    let r = r.trim();
    if r.chars().any(char::is_control) {
        return Err(ApiError::field(
            "reason",
            "must not contain control characters",
        ));
    }
    match r.chars().count() {
        0 => Err(ApiError::field("reason", "must say why")),
        n if n > max => Err(ApiError::field(
            "reason",
            format!("must be at most {max} characters"),
        )),
        _ => Ok(r),
    }
}

/// The longest reason stored beside a tenant (suspension, deletion).
pub(crate) const REASON_MAX: usize = 500;

/// Manual plan activation (audited): the package holds until `until` or
/// until revoked, whatever Stripe says meanwhile.
#[utoipa::path(put, path = "/v1/admin/tenants/{tenant_id}/package", tag = "admin", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)), request_body = SetPackage,
    responses((status = 200, body = TenantView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn set_package(
    State(state): State<AppState>,
    scope: SystemScope<perm::AdminOperate>,
    RequestId(request_id): RequestId,
    Path(tenant_id): Path<Uuid>,
    ApiJson(req): ApiJson<SetPackage>,
) -> Result<Json<TenantView>, ApiError> {
    let why = reason(&req.reason, REASON_MAX)?;
    if req.until.is_some_and(|u| u <= Utc::now()) {
        return Err(ApiError::field("until", "must be in the future"));
    }
    let id = TenantId(tenant_id);
    let (mut tx, _) = lock_tenant(&state, id).await?;
    let cause = admin_cause(&scope, request_id.as_deref());
    sync::activate_manually(&mut tx, id, req.package, req.until, why, cause)
        .await
        .map_err(billing_error)?;
    let view = tenant_view(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(view))
}

/// End a manual activation now: the tenant gets its subscription's package,
/// or free (audited). 404 when none is in force.
#[utoipa::path(delete, path = "/v1/admin/tenants/{tenant_id}/package", tag = "admin", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)), request_body = Revoke,
    responses((status = 200, body = TenantView), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn revoke_package(
    State(state): State<AppState>,
    scope: SystemScope<perm::AdminOperate>,
    RequestId(request_id): RequestId,
    Path(tenant_id): Path<Uuid>,
    ApiJson(req): ApiJson<Revoke>,
) -> Result<Json<TenantView>, ApiError> {
    let why = reason(&req.reason, REASON_MAX)?;
    let id = TenantId(tenant_id);
    let (mut tx, _) = lock_tenant(&state, id).await?;
    let cause = admin_cause(&scope, request_id.as_deref());
    if !sync::revoke_manual(&mut tx, id, why, cause)
        .await
        .map_err(billing_error)?
    {
        return Err(ApiError::NotFound("manual activation"));
    }
    let view = tenant_view(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(view))
}

fn admin_cause<'a, P>(scope: &SystemScope<P>, request_id: Option<&'a str>) -> Cause<'a> {
    Cause {
        actor: scope.principal.actor(),
        request_id,
        via: "admin",
    }
}

fn billing_error(e: BillingError) -> ApiError {
    match e {
        BillingError::Store(e) => e.into(),
        other => ApiError::Internal(other.into()),
    }
}

/// A transaction holding the tenant's row lock (404 when there is no such
/// tenant): how every admin change to a tenant starts.
pub(crate) async fn lock_tenant(
    state: &AppState,
    id: TenantId,
) -> Result<(sqlx::Transaction<'static, sqlx::Postgres>, tenants::Tenant), ApiError> {
    let mut tx = state.store.pool.begin().await?;
    let tenant = tenants::lock(&mut tx, id)
        .await
        .map_err(not_found("tenant"))?;
    Ok((tx, tenant))
}

pub(crate) async fn tenant_view(
    tx: &mut sqlx::PgConnection,
    id: TenantId,
) -> Result<TenantView, ApiError> {
    let t = tenants::get(&mut *tx, id).await?;
    let usage_today = usage::get(&mut *tx, id, Utc::now().date_naive()).await?;
    Ok(TenantView::new(t, usage_today))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconcileRequest {}

/// Reconcile every tenant's package with Stripe now (a `billing_reconcile`
/// job; it also runs hourly).
#[utoipa::path(post, path = "/v1/admin/billing/reconcile", tag = "admin", security(("bearer" = [])),
    responses((status = 202, body = JobView), (status = 403, body = Problem)))]
async fn reconcile(
    State(state): State<AppState>,
    scope: SystemScope<perm::AdminOperate>,
    RequestId(request_id): RequestId,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let mut tx = state.store.pool.begin().await?;
    let (job, pending) = platform_job(
        &state,
        &mut tx,
        &scope.principal,
        BillingReconcileArgs { at: Utc::now() }.job(),
    )
    .await?;
    audit::record(
        &mut *tx,
        scope.principal.event(
            None,
            "billing.reconcile_started",
            ("job", job.id.to_string()),
            json!({}),
            request_id.as_deref(),
        ),
    )
    .await?;
    tx.commit().await?;
    state.ledger.push(pending).await;
    Ok((StatusCode::ACCEPTED, Json(JobView::from(job))))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    tenant_id: Option<Uuid>,
    actor_user_id: Option<Uuid>,
    action: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    cursor: Option<String>,
}

/// Audit events, newest first.
#[utoipa::path(get, path = "/v1/admin/audit", tag = "admin", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = Page<Object>), (status = 403, body = Problem)))]
async fn list_audit(
    State(state): State<AppState>,
    _scope: SystemScope<perm::AdminMonitor>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Page<AuditEvent>>, ApiError> {
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let filter = Filter {
        tenant_id: q.tenant_id.map(TenantId),
        actor_user_id: q.actor_user_id.map(UserId),
        action: q.action,
    };
    let rows = audit::list(&state.store.pool, &filter, page.cursor()?, limit + 1).await?;
    Ok(Json(Page::from_rows(rows, limit, |e| e.id, |e| e)))
}
