//! Sign-in, sign-out and "who am I".

use crate::auth::{Credential, Principal};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ClientAddr, RequestId};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bizcontacts_domain::access::tenant_permissions;
use bizcontacts_domain::{Email, Permission, Role, SystemRole};
use bizcontacts_security::{new_session_token, token_hash};
use bizcontacts_store::audit::{self, Actor, NewEvent};
use bizcontacts_store::{sessions, users};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    #[schema(min_length = 1)]
    email: String,
    password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    /// Opaque session token for `Authorization: Bearer`.
    token: String,
    expires_at: DateTime<Utc>,
}

/// Exchange email and password for a session token.
///
/// Wrong passwords back off: after a few for one account (or many from one
/// address), attempts get a 429 with `Retry-After`, doubling per further
/// failure, whether or not the password would have been right.
#[utoipa::path(post, path = "/v1/auth/login", tag = "identity", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = Problem), (status = 422, body = Problem),
        (status = 429, body = Problem, description = "too many failed attempts; see Retry-After"),
        (status = 503, body = Problem)))]
#[tracing::instrument(skip_all)]
async fn login(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    ClientAddr(address): ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let (token, expires_at, _) = sign_in(
        &state,
        &req.email,
        req.password,
        address,
        request_id.as_deref(),
    )
    .await?;
    Ok(Json(LoginResponse { token, expires_at }))
}

/// Email and password to a new session: throttled, timing-blind to unknown
/// accounts, audited. The API's login and the admin dashboard's sign-in.
/// Returns the token, when it expires and whose it is.
pub(crate) async fn sign_in(
    state: &AppState,
    email: &str,
    password: String,
    address: Option<std::net::IpAddr>,
    request_id: Option<&str>,
) -> Result<(String, DateTime<Utc>, bizcontacts_domain::UserId), ApiError> {
    if email.trim().is_empty() {
        return Err(ApiError::field("email", "must not be empty"));
    }
    // Before anything costly: a locked account or address hashes nothing,
    // reads nothing and writes nothing.
    state.sign_in.check(email, address).await?;
    let db = &state.store.pool;
    let user = users::find_by_email(db, email).await?;
    // Verify even for an unknown user (against a dummy hash) so timing does
    // not tell which addresses have accounts.
    let passwords = state.passwords.clone();
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    let ok = state
        .sign_in
        .hash(move || passwords.verify(&password, stored.as_deref()))
        .await?;

    let Some(user) = user.filter(|_| ok) else {
        let failure = state.sign_in.failed(email, address).await?;
        // Only heard attempts get here, so the back-off bounds these rows;
        // the moment an account locks is recorded once.
        audit::record(
            db,
            NewEvent {
                tenant_id: None,
                actor: Actor::system(),
                action: if failure.locked_now {
                    "auth.login_locked"
                } else {
                    "auth.login_failed"
                },
                target_type: Some("user"),
                target_id: None,
                // People type passwords into the email field: keep the
                // attempted identifier only when it is an address.
                details: match Email::parse(email) {
                    Ok(email) => json!({ "email": email.as_str() }),
                    Err(_) => {
                        json!({ "email": null, "note": "identifier was not an email address" })
                    }
                },
                request_id,
            },
        )
        .await?;
        return Err(ApiError::Unauthorized("invalid email or password".into()));
    };
    state.sign_in.succeeded(email).await?;

    let token = new_session_token();
    let expires_at = Utc::now() + state.session_ttl;
    let mut tx = db.begin().await?;
    let session = sessions::create(&mut *tx, user.id, &token_hash(&token), expires_at).await?;
    audit::record(
        &mut *tx,
        NewEvent {
            tenant_id: None,
            actor: Actor {
                user_id: Some(user.id),
                api_key_id: None,
            },
            action: "auth.login",
            target_type: Some("session"),
            target_id: Some(session.to_string()),
            details: json!({}),
            request_id,
        },
    )
    .await?;
    tx.commit().await?;
    Ok((token, expires_at, user.id))
}

/// Revoke the session used for this request.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "identity", security(("bearer" = [])),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem)))]
async fn logout(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<StatusCode, ApiError> {
    match principal.credential {
        Credential::Session(id) => {
            sessions::revoke(&state.store.pool, id).await?;
            Ok(StatusCode::NO_CONTENT)
        }
        Credential::ApiKey { .. } => Err(ApiError::BadRequest(
            "logout ends a session; API keys are revoked with DELETE /v1/tenants/{tenant_id}/api-keys/{id}".into(),
        )),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    user: MeUser,
    system_roles: Vec<SystemRole>,
    memberships: Vec<MeMembership>,
    credential: MeCredential,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MeUser {
    id: Uuid,
    email: String,
    created_at: DateTime<Utc>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MeMembership {
    tenant_id: Uuid,
    tenant_name: String,
    role: Role,
    /// What this caller may do in the tenant (narrowed by the key's scopes).
    permissions: Vec<Permission>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MeCredential {
    /// `session` or `api_key`.
    #[serde(rename = "type")]
    kind: &'static str,
    api_key_id: Option<Uuid>,
    tenant_id: Option<Uuid>,
    scopes: Option<Vec<Permission>>,
}

/// The caller: user, system roles, memberships, and the credential in use.
#[utoipa::path(get, path = "/v1/me", tag = "identity", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = Problem)))]
async fn me(State(state): State<AppState>, principal: Principal) -> Result<Json<Me>, ApiError> {
    let db = &state.store.pool;
    let user = users::get(db, principal.user_id).await?;
    let (key_tenant, scopes) = match &principal.credential {
        Credential::ApiKey { tenant, scopes, .. } => (*tenant, Some(*scopes)),
        Credential::Session(_) => (None, None),
    };
    let memberships = users::memberships_of_user(db, user.id)
        .await?
        .into_iter()
        // A tenant key sees only its own tenant.
        .filter(|m| key_tenant.is_none_or(|t| t == m.tenant_id))
        .map(|m| {
            let held = tenant_permissions(Some(m.role), &principal.system_roles);
            let effective = scopes.map_or(held, |s| held.intersect(s));
            MeMembership {
                tenant_id: m.tenant_id.0,
                tenant_name: m.tenant_name,
                role: m.role,
                permissions: effective.iter().collect(),
            }
        })
        .collect();
    let credential = match &principal.credential {
        Credential::Session(_) => MeCredential {
            kind: "session",
            api_key_id: None,
            tenant_id: None,
            scopes: None,
        },
        Credential::ApiKey { id, tenant, scopes } => MeCredential {
            kind: "api_key",
            api_key_id: Some(id.0),
            tenant_id: tenant.map(|t| t.0),
            scopes: Some(scopes.iter().collect()),
        },
    };
    Ok(Json(Me {
        user: MeUser {
            id: user.id.0,
            email: user.email,
            created_at: user.created_at,
        },
        system_roles: principal.system_roles.clone(),
        memberships,
        credential,
    }))
}
