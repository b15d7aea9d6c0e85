//! Invitations: how members join a tenant.
//!
//! An org admin (or anyone with `users:manage`) invites an address with a
//! role; the answer carries a single-use token, shown once and stored hashed,
//! and is the same whether or not the address has an account, so inviting
//! reveals nothing about who is registered. The invitee accepts with the
//! token: a new person chooses their own password; an existing account joins
//! only when its owner accepts with their own session.

use crate::auth::{perm, Principal, TenantScope};
use crate::error::{not_found, ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery, Created, RequestId};
use crate::pagination::{Page, PageParams};
use crate::routes::members::may_grant;
use crate::state::AppState;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::Json;
use bizcontacts_domain::{Email, Role};
use bizcontacts_security::{check_password_policy, new_invitation_token, token_hash};
use bizcontacts_store::audit::{self, Actor, NewEvent};
use bizcontacts_store::invitations::{self, Invitation, NewInvitation};
use bizcontacts_store::{users, StoreError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(invite))
        .routes(routes!(list_invitations))
        .routes(routes!(revoke_invitation))
        .routes(routes!(accept))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    #[schema(format = Email)]
    email: String,
    role: Role,
}

/// An invitation as just made: the only time its token exists in clear.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InvitationCreated {
    invitation_id: Uuid,
    /// Send it to the invitee; it is not shown again.
    token: String,
    email: String,
    role: Role,
    expires_at: DateTime<Utc>,
}

/// An open invitation, without its token.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InvitationView {
    invitation_id: Uuid,
    email: String,
    role: Role,
    invited_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl From<Invitation> for InvitationView {
    fn from(i: Invitation) -> Self {
        InvitationView {
            invitation_id: i.id,
            email: i.email,
            role: i.role,
            invited_by: i.invited_by.map(|u| u.0),
            created_at: i.created_at,
            expires_at: i.expires_at,
        }
    }
}

fn users_limit(e: StoreError) -> ApiError {
    match e {
        StoreError::LimitReached { max, .. } => ApiError::LimitReached {
            limit: "users",
            detail: format!(
                "the package allows {max} users (members and open invitations); remove one or upgrade"
            ),
        },
        other => other.into(),
    }
}

/// Invite an address to the tenant with a role (within the package's users
/// limit, counting open invitations). Inviting the same address again
/// replaces its open invitation. The role may carry only permissions the
/// caller holds.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/members", tag = "identity", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)), request_body = Invite,
    responses((status = 201, body = InvitationCreated),
        (status = 403, body = Problem, description = "the role exceeds the caller's permissions"),
        (status = 409, body = Problem, description = "already a member, or the package's users limit is reached"),
        (status = 422, body = Problem)))]
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant_id()))]
async fn invite(
    State(state): State<AppState>,
    scope: TenantScope<perm::UsersManage>,
    RequestId(request_id): RequestId,
    ApiJson(req): ApiJson<Invite>,
) -> Result<Created<InvitationCreated>, ApiError> {
    let email = Email::parse(&req.email).map_err(|e| ApiError::field("email", e.reason))?;
    may_grant(&scope, req.role, "role")?;
    let token = new_invitation_token();
    let mut tx = state.store.pool.begin().await?;
    let invitation = invitations::create(
        &mut tx,
        NewInvitation {
            tenant_id: scope.tenant_id(),
            email: &email,
            role: req.role,
            token_hash: &token_hash(&token),
            invited_by: scope.principal.user_id,
            expires_at: Utc::now() + state.invitation_ttl,
        },
    )
    .await
    .map_err(users_limit)?;
    audit::record(
        &mut *tx,
        scope.principal.event(
            Some(scope.tenant_id()),
            "invitation.created",
            ("invitation", invitation.id.to_string()),
            json!({ "role": req.role, "email": email.as_str() }),
            request_id.as_deref(),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Created(InvitationCreated {
        invitation_id: invitation.id,
        token,
        email: invitation.email,
        role: invitation.role,
        expires_at: invitation.expires_at,
    }))
}

/// Open invitations of the tenant (tokens are never shown again).
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/invitations", tag = "identity", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), PageParams),
    responses((status = 200, body = Page<InvitationView>), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn list_invitations(
    State(state): State<AppState>,
    scope: TenantScope<perm::UsersManage>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<InvitationView>>, ApiError> {
    let limit = page.limit()?;
    let rows = invitations::list_open(
        &state.store.pool,
        scope.tenant_id(),
        page.cursor()?,
        limit + 1,
    )
    .await?;
    Ok(Json(Page::from_rows(
        rows,
        limit,
        |i| i.id,
        InvitationView::from,
    )))
}

#[derive(Deserialize)]
struct InvitationPath {
    invitation_id: Uuid,
}

/// Revoke an open invitation; its token stops working at once.
#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}/invitations/{invitation_id}", tag = "identity", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("invitation_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn revoke_invitation(
    State(state): State<AppState>,
    scope: TenantScope<perm::UsersManage>,
    RequestId(request_id): RequestId,
    Path(InvitationPath { invitation_id }): Path<InvitationPath>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.store.pool.begin().await?;
    let invitation = invitations::revoke(&mut *tx, scope.tenant_id(), invitation_id)
        .await
        .map_err(not_found("invitation"))?;
    audit::record(
        &mut *tx,
        scope.principal.event(
            Some(scope.tenant_id()),
            "invitation.revoked",
            ("invitation", invitation.id.to_string()),
            json!({ "email": invitation.email }),
            request_id.as_deref(),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Accept {
    /// The new account's password (10 to 1024 characters), when the invited
    /// address has no account yet. An existing account accepts with its own
    /// session instead.
    #[schema(min_length = 10, max_length = 1024)]
    password: Option<String>,
}

/// The membership an accepted invitation made.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InvitationAccepted {
    tenant_id: Uuid,
    user_id: Uuid,
    role: Role,
    /// Whether this accept created the account (sign in with the password).
    account_created: bool,
}

#[derive(Deserialize)]
struct TokenPath {
    token: String,
}

/// The caller when a bearer token is sent, `None` when none is. Unlike
/// `Option<Principal>`, a token that is sent but invalid is still a 401:
/// here the difference between "anonymous" and "signed in" decides whose
/// account joins, so a bad token must never pass as anonymous.
struct MaybeSignedIn(Option<Principal>);

impl FromRequestParts<AppState> for MaybeSignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Ok(MaybeSignedIn(None));
        }
        Ok(MaybeSignedIn(Some(
            Principal::from_request_parts(parts, state).await?,
        )))
    }
}

/// Accept an invitation. For an address without an account, send the new
/// account's `password`; for an existing account, send the request with that
/// account's session (`Authorization: Bearer`). The token works once.
#[utoipa::path(post, path = "/v1/invitations/{token}/accept", tag = "identity",
    params(("token" = String, Path, description = "the token from the invitation")),
    request_body(content = Option<Accept>, content_type = "application/json"),
    responses((status = 201, body = InvitationAccepted),
        (status = 401, body = Problem, description = "the address has an account: sign in as it and accept with its session"),
        (status = 403, body = Problem, description = "signed in as another account than the one invited"),
        (status = 404, body = Problem, description = "no open invitation has this token (used, revoked or expired)"),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
#[tracing::instrument(skip_all)]
async fn accept(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    MaybeSignedIn(principal): MaybeSignedIn,
    Path(TokenPath { token }): Path<TokenPath>,
    request: Request,
) -> Result<Created<InvitationAccepted>, ApiError> {
    // The body is optional: an existing account accepts with its session alone.
    let req = if request.headers().contains_key(header::CONTENT_TYPE) {
        ApiJson::<Accept>::from_request(request, &state).await?.0
    } else {
        Accept::default()
    };
    // A token that opens nothing costs one indexed read, never a hash.
    let hash = token_hash(&token);
    invitations::open(&state.store.pool, &hash)
        .await
        .map_err(not_found("invitation"))?;
    // Hash a new password before any row is locked, within the intake's
    // bound on concurrent hashing.
    let new_hash = match req.password {
        Some(password) => {
            check_password_policy(&password).map_err(|r| ApiError::field("password", r))?;
            let hasher = state.passwords.clone();
            let hashed = state.sign_in.hash(move || hasher.hash(&password)).await?;
            Some(hashed.map_err(|e| ApiError::Internal(e.into()))?)
        }
        None => None,
    };
    let mut tx = state.store.pool.begin().await?;
    let invitation = invitations::open_for_update(&mut tx, &hash)
        .await
        .map_err(not_found("invitation"))?;
    let existing = users::find_by_email(&mut *tx, &invitation.email).await?;
    let (user_id, created) = match (existing, principal) {
        (Some(user), Some(p)) if p.user_id == user.id => (user.id, false),
        (_, Some(_)) => {
            return Err(ApiError::Forbidden(
                "this invitation is for another address than the signed-in account's".into(),
            ))
        }
        (Some(_), None) => {
            return Err(ApiError::Unauthorized(
                "the invited address has an account: sign in as it and accept with its session"
                    .into(),
            ))
        }
        (None, None) => {
            let hash = new_hash.ok_or_else(|| {
                ApiError::field("password", "required: choose the new account's password")
            })?;
            let email = Email::parse(&invitation.email).map_err(|e| {
                ApiError::Internal(anyhow::anyhow!("stored invitation email: {}", e.reason))
            })?;
            (users::create(&mut *tx, &email, Some(&hash)).await?.id, true)
        }
    };
    let member = users::add_member(&mut tx, invitation.tenant_id, user_id, invitation.role)
        .await
        .map_err(users_limit)?;
    invitations::mark_accepted(&mut tx, invitation.id, user_id).await?;
    audit::record(
        &mut *tx,
        NewEvent {
            tenant_id: Some(invitation.tenant_id),
            actor: Actor {
                user_id: Some(user_id),
                api_key_id: None,
            },
            action: "invitation.accepted",
            target_type: Some("invitation"),
            target_id: Some(invitation.id.to_string()),
            details: json!({ "role": invitation.role, "account_created": created }),
            request_id: request_id.as_deref(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Created(InvitationAccepted {
        tenant_id: member.tenant_id.0,
        user_id: user_id.0,
        role: member.role,
        account_created: created,
    }))
}
