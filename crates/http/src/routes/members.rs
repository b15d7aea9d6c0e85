//! Tenant members: list, add (within the package's `users` limit), change role, remove.

use crate::auth::{perm, TenantScope};
use crate::error::{not_found, ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery, Created, RequestId};
use crate::identity::hash_password;
use crate::pagination::{Page, PageParams};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bizcontacts_domain::{Email, Role, UserId};
use bizcontacts_store::users::{self, Membership};
use bizcontacts_store::{audit, StoreError};
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
        .routes(routes!(list_members, add_member))
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
pub struct AddMember {
    email: String,
    role: Role,
    /// Needed only when no user with this email exists yet: their first password.
    password: Option<String>,
}

/// Add a user to the tenant with a role; creates the user when the email is new.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/members", tag = "identity", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)), request_body = AddMember,
    responses((status = 201, body = Member), (status = 409, body = Problem, description = "already a member, or the package's users limit is reached"),
        (status = 422, body = Problem)))]
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant_id()))]
async fn add_member(
    State(state): State<AppState>,
    scope: TenantScope<perm::UsersManage>,
    RequestId(request_id): RequestId,
    ApiJson(req): ApiJson<AddMember>,
) -> Result<Created<Member>, ApiError> {
    let email = Email::parse(&req.email).map_err(|e| ApiError::field("email", e.reason))?;
    let existing = users::find_by_email(&state.store.pool, email.as_str()).await?;
    let new_hash = match (&existing, &req.password) {
        (Some(_), _) => None,
        (None, None) => {
            return Err(ApiError::field(
                "password",
                "required: no user with this email exists yet",
            ));
        }
        (None, Some(p)) => Some(hash_password(&state.passwords, p).await?),
    };
    let mut tx = state.store.pool.begin().await?;
    let user_id = match existing {
        Some(u) => u.id,
        None => {
            users::create(&mut *tx, &email, new_hash.as_deref())
                .await?
                .id
        }
    };
    let member = users::add_member(&mut tx, scope.tenant_id(), user_id, req.role)
        .await
        .map_err(|e| match e {
            StoreError::LimitReached { max, .. } => ApiError::LimitReached {
                limit: "users",
                detail: format!(
                    "the package allows {max} users (members); remove a member or upgrade"
                ),
            },
            other => other.into(),
        })?;
    audit::record(
        &mut *tx,
        scope.principal.event(
            Some(scope.tenant_id()),
            "member.added",
            ("user", user_id.to_string()),
            json!({ "role": req.role, "email": email.as_str() }),
            request_id.as_deref(),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Created(member.into()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    role: Role,
}

/// Change a member's role. The last org_admin cannot be demoted.
#[utoipa::path(patch, path = "/v1/tenants/{tenant_id}/members/{user_id}", tag = "identity", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = ChangeRole,
    responses((status = 200, body = Member), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn change_role(
    State(state): State<AppState>,
    scope: TenantScope<perm::UsersManage>,
    RequestId(request_id): RequestId,
    Path(MemberPath { user_id, .. }): Path<MemberPath>,
    ApiJson(req): ApiJson<ChangeRole>,
) -> Result<Json<Member>, ApiError> {
    let user = UserId(user_id);
    let mut tx = state.store.pool.begin().await?;
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
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn remove_member(
    State(state): State<AppState>,
    scope: TenantScope<perm::UsersManage>,
    RequestId(request_id): RequestId,
    Path(MemberPath { user_id, .. }): Path<MemberPath>,
) -> Result<StatusCode, ApiError> {
    let user = UserId(user_id);
    let mut tx = state.store.pool.begin().await?;
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
