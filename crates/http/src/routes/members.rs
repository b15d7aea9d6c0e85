//! Tenant members: list, change role, remove. Members join by invitation
//! (`invitations.rs`). Nobody may give a role, or change or remove a member
//! whose role, carries a permission they do not hold themselves.

use crate::auth::{perm, TenantScope};
use crate::error::{not_found, ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery, RequestId};
use crate::pagination::{Page, PageParams};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bizcontacts_domain::access::PermissionSet;
use bizcontacts_domain::{Role, UserId};
use bizcontacts_store::audit;
use bizcontacts_store::users::{self, Membership};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

/// The item's id in the path (`tenant_id` is read by `TenantScope`).
#[derive(Deserialize)]
struct MemberPath {
    user_id: Uuid,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_members))
        .routes(routes!(change_role, remove_member))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Member {
    user_id: Uuid,
    email: String,
    role: Role,
    added_at: DateTime<Utc>,
}

impl From<Membership> for Member {
    fn from(m: Membership) -> Self {
        Member {
            user_id: m.user_id.0,
            email: m.email,
            role: m.role,
            added_at: m.created_at,
        }
    }
}

/// Members of the tenant.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/members", tag = "identity", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), PageParams),
    responses((status = 200, body = Page<Member>), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn list_members(
    State(state): State<AppState>,
    scope: TenantScope<perm::UsersManage>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<Member>>, ApiError> {
    let limit = page.limit()?;
    let rows = users::members(
        &state.store.pool,
        scope.tenant_id(),
        page.cursor()?.map(UserId),
        limit + 1,
    )
    .await?;
    Ok(Json(Page::from_rows(
        rows,
        limit,
        |m| m.user_id.0,
        Member::from,
    )))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    role: Role,
}

/// Change a member's role. The last org_admin cannot be demoted.
#[utoipa::path(patch, path = "/v1/tenants/{tenant_id}/members/{user_id}", tag = "identity", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = ChangeRole,
    responses((status = 200, body = Member), (status = 403, body = Problem, description = "the role exceeds the caller's permissions"),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn change_role(
    State(state): State<AppState>,
    scope: TenantScope<perm::UsersManage>,
    RequestId(request_id): RequestId,
    Path(MemberPath { user_id, .. }): Path<MemberPath>,
    ApiJson(req): ApiJson<ChangeRole>,
) -> Result<Json<Member>, ApiError> {
    let user = UserId(user_id);
    may_grant(&scope, req.role, "role")?;
    let mut tx = state.store.pool.begin().await?;
    may_manage(&scope, &mut tx, user).await?;
    let previous = users::change_role(&mut tx, scope.tenant_id(), user, req.role)
        .await
        .map_err(not_found("member"))?;
    audit::record(
        &mut *tx,
        scope.principal.event(
            Some(scope.tenant_id()),
            "member.role_changed",
            ("user", user.to_string()),
            json!({ "from": previous, "to": req.role }),
            request_id.as_deref(),
        ),
    )
    .await?;
    let member = users::membership(&mut *tx, scope.tenant_id(), user)
        .await?
        .ok_or(ApiError::NotFound("member"))?;
    tx.commit().await?;
    Ok(Json(member.into()))
}

/// Remove a member from the tenant (the user account stays).
#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}/members/{user_id}", tag = "identity", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn remove_member(
    State(state): State<AppState>,
    scope: TenantScope<perm::UsersManage>,
    RequestId(request_id): RequestId,
    Path(MemberPath { user_id, .. }): Path<MemberPath>,
) -> Result<StatusCode, ApiError> {
    let user = UserId(user_id);
    let mut tx = state.store.pool.begin().await?;
    may_manage(&scope, &mut tx, user).await?;
    let role = users::remove_member(&mut tx, scope.tenant_id(), user)
        .await
        .map_err(not_found("member"))?;
    audit::record(
        &mut *tx,
        scope.principal.event(
            Some(scope.tenant_id()),
            "member.removed",
            ("user", user.to_string()),
            json!({ "role": role }),
            request_id.as_deref(),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A caller may give only a role whose permissions it holds itself (its
/// role's, narrowed by its key's scopes): a key scoped to `users:manage`
/// cannot make an org_admin.
pub(crate) fn may_grant<P>(
    scope: &TenantScope<P>,
    role: Role,
    field: &str,
) -> Result<(), ApiError> {
    let granted = PermissionSet::of(role.permissions());
    if granted.is_subset_of(scope.permissions) {
        return Ok(());
    }
    let missing: Vec<String> = granted
        .iter()
        .filter(|p| !scope.permissions.contains(*p))
        .map(|p| p.to_string())
        .collect();
    Err(ApiError::Forbidden(format!(
        "{field} {role} carries permissions you do not hold: {}",
        missing.join(", ")
    )))
}

/// Changing or removing a member is granting in reverse: refused when the
/// member's current role carries permissions the caller does not hold.
async fn may_manage<P>(
    scope: &TenantScope<P>,
    conn: &mut sqlx::PgConnection,
    user: UserId,
) -> Result<(), ApiError> {
    let member = users::membership(&mut *conn, scope.tenant_id(), user)
        .await?
        .ok_or(ApiError::NotFound("member"))?;
    may_grant(scope, member.role, "the member's role")
}
