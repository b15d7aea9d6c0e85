//! The tenant's CRM (HighLevel) connection: OAuth with a Location choice,
//! or a Private Integration key, shown without secrets, and disconnected.
//!
//! Tokens are sealed before they are stored (secrets at rest, see
//! `bizcontacts_security::sealing`) and never appear in a response, a log
//! line, an error or an audit event. The routes talk to HighLevel only to
//! exchange a consent's code and to verify a Private Integration key, and
//! hold no database connection while they do.

use crate::auth::{perm, TenantScope};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, RequestId};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bizcontacts_domain::TenantId;
use bizcontacts_highlevel::oauth::{authorize_url, Tokens};
use bizcontacts_highlevel::{Error as HlError, SCOPES};
use bizcontacts_security::token_hash;
use bizcontacts_store::audit::{self, Actor, NewEvent};
use bizcontacts_store::crm::{self, Connection, Method, NewConnection, StateCheck, Status};
use chrono::{DateTime, Utc};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

/// How long a consent may take, from Connect to the callback.
const STATE_TTL_MINUTES: i64 = 10;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(connect))
        .routes(routes!(callback))
        .routes(routes!(save_private_integration))
        .routes(routes!(get_connection, disconnect))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectRequest {
    /// Use the white-label consent page (agencies whose users sign in there).
    #[serde(default)]
    whitelabel: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ConnectStart {
    /// Send the admin's browser here; HighLevel asks them to choose the
    /// Location and approve our scopes, then returns to the callback.
    authorization_url: String,
    expires_at: DateTime<Utc>,
}

/// Start connecting HighLevel with OAuth: the consent URL, with a `state`
/// bound to this tenant and user, single use, valid for 10 minutes.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/crm/connect", tag = "crm", security(("bearer" = [])),
    params(("tenant_id" = uuid::Uuid, Path)), request_body = ConnectRequest,
    responses((status = 200, body = ConnectStart),
        (status = 503, body = Problem, description = "OAuth is not configured (highlevel.client_id); use a Private Integration key")))]
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant_id()))]
async fn connect(
    State(state): State<AppState>,
    scope: TenantScope<perm::CrmConnect>,
    body: Bytes,
) -> Result<Json<ConnectStart>, ApiError> {
    // The body is optional: no body is `{}`.
    let req: ConnectRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ConnectRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::field("whitelabel", e.to_string()))?
    };
    if state.crm.app.client_id.is_empty() {
        return Err(ApiError::Unavailable(
            "HighLevel OAuth is not configured on this platform (highlevel.client_id); \
             save a Private Integration key with PUT /crm/private-integration instead"
                .into(),
        ));
    }
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    let secret = URL_SAFE_NO_PAD.encode(raw);
    let expires_at = Utc::now() + chrono::Duration::minutes(STATE_TTL_MINUTES);
    crm::create_state(
        &state.store.pool,
        &token_hash(&secret),
        scope.tenant_id(),
        Some(scope.principal.user_id),
        req.whitelabel,
        expires_at,
    )
    .await?;
    let page = if req.whitelabel {
        &state.crm_whitelabel_authorize_url
    } else {
        &state.crm_authorize_url
    };
    Ok(Json(ConnectStart {
        authorization_url: authorize_url(page, &state.crm.app, &SCOPES, &secret),
        expires_at,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    /// Set by HighLevel when the admin declined (`access_denied`).
    error: Option<String>,
}

/// A connection as shown: never a secret.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConnectionView {
    /// `oauth` or `private_integration`.
    #[schema(value_type = String, example = "oauth")]
    method: Method,
    /// `connected`, `needs_reconnect` (an admin must connect again) or `disconnected`.
    #[schema(value_type = String, example = "connected")]
    status: Status,
    location_id: Option<String>,
    location_name: Option<String>,
    company_id: Option<String>,
    scopes: Vec<String>,
    connected_at: Option<DateTime<Utc>>,
    /// When the current access token expires (OAuth; refreshed before).
    token_expires_at: Option<DateTime<Utc>>,
    /// Why the connection stopped working, when it did.
    last_error: Option<String>,
}

impl From<Connection> for ConnectionView {
    fn from(c: Connection) -> Self {
        ConnectionView {
            method: c.method,
            status: c.status,
            location_id: c.location_id,
            location_name: c.location_name,
            company_id: c.company_id,
            scopes: c.scopes,
            connected_at: c.connected_at,
            token_expires_at: c.expires_at,
            last_error: c.last_error,
        }
    }
}

/// Where HighLevel returns the admin's browser after consent: the code is
/// exchanged for the Location's tokens, which are stored sealed. Answers
/// JSON, or a short HTML page when the browser asks for HTML.
#[utoipa::path(get, path = "/v1/crm/oauth/callback", tag = "crm",
    params(CallbackParams),
    responses((status = 200, body = ConnectionView),
        (status = 403, body = Problem, description = "the admin declined, or did not grant every scope"),
        (status = 422, body = Problem, description = "missing, unknown, reused or expired state; a code HighLevel refused"),
        (status = 503, body = Problem, description = "HighLevel could not be reached")))]
#[tracing::instrument(skip_all)]
async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<CallbackParams>,
) -> Response {
    let html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    match finish_oauth(&state, p).await {
        Ok(c) if html => Html(page(
            "Connected",
            &format!(
                "Business Contacts is connected to {}. You can close this window.",
                c.location_name
                    .as_deref()
                    .or(c.location_id.as_deref())
                    .unwrap_or("HighLevel")
            ),
        ))
        .into_response(),
        Ok(c) => Json(ConnectionView::from(c)).into_response(),
        Err(e) if html => {
            let text = match &e {
                ApiError::Validation(fields) => fields
                    .iter()
                    .map(|f| format!("{} {}", f.field, f.reason))
                    .collect::<Vec<_>>()
                    .join("; "),
                other => other.to_string(),
            };
            let status = e.into_response().status();
            (status, Html(page("Not connected", &text))).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// A minimal page; `text` is ours (never a token), escaped anyway.
fn page(title: &str, text: &str) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title></head>\
         <body><h1>{}</h1><p>{}</p></body></html>",
        esc(title),
        esc(title),
        esc(text)
    )
}

async fn finish_oauth(state: &AppState, p: CallbackParams) -> Result<Connection, ApiError> {
    let secret = p
        .state
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::field("state", "is missing; start again with Connect"))?;
    // Spend the state first, in its own short transaction: single use
    // whatever happens next, and no connection held while HighLevel answers.
    let mut tx = state.store.pool.begin().await?;
    let check = crm::take_state(&mut tx, &token_hash(&secret)).await?;
    tx.commit().await?;
    let (tenant, user) = match check {
        StateCheck::Valid {
            tenant_id, user_id, ..
        } => (tenant_id, user_id),
        StateCheck::Unknown => {
            return Err(ApiError::field(
                "state",
                "is not one we issued; start again with Connect",
            ))
        }
        StateCheck::Used => {
            return Err(ApiError::field(
                "state",
                "was already used; start again with Connect",
            ))
        }
        StateCheck::Expired => {
            return Err(ApiError::field(
                "state",
                "expired (a consent must finish within 10 minutes); start again with Connect",
            ))
        }
    };
    if let Some(error) = p.error {
        let reason = if error == "access_denied" {
            "the connection was declined in HighLevel; nothing was stored".to_string()
        } else {
            format!("HighLevel answered {error:?}; nothing was stored")
        };
        return Err(ApiError::Forbidden(reason));
    }
    let code = p
        .code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::field("code", "is missing"))?;
    let tokens = state
        .crm
        .client
        .exchange_code(&state.crm.app, &code)
        .await
        .map_err(|e| match e {
            HlError::Unauthorized { .. } => ApiError::field(
                "code",
                "HighLevel refused this code (used, expired, or for another app); connect again",
            ),
            other => ApiError::Unavailable(format!("{other}; connect again in a moment")),
        })?;
    let missing: Vec<&str> = SCOPES
        .iter()
        .copied()
        .filter(|s| !tokens.scopes.iter().any(|g| g == s))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::Forbidden(format!(
            "HighLevel did not grant {}; connect again and approve every requested scope",
            missing.join(", ")
        )));
    }
    let location = tokens.location_id.clone().ok_or_else(|| {
        ApiError::field("code", "the consent was not for a Location (sub-account)")
    })?;
    // The Location's name, for people; a connection works without it.
    let name = state
        .crm
        .client
        .location(&tokens.access_token, &location)
        .await
        .ok()
        .and_then(|l| l.name);
    store_connection(
        state,
        tenant,
        Method::Oauth,
        &location,
        name.as_deref(),
        tokens,
        user.map(|u| Actor {
            user_id: Some(u),
            api_key_id: None,
        })
        .unwrap_or_default(),
        None,
    )
    .await
}

/// Seal and store a connection, replacing the tenant's previous one, and
/// audit it (ids and scopes only).
#[allow(clippy::too_many_arguments)]
async fn store_connection(
    state: &AppState,
    tenant: TenantId,
    method: Method,
    location: &str,
    name: Option<&str>,
    tokens: Tokens,
    actor: Actor,
    request_id: Option<&str>,
) -> Result<Connection, ApiError> {
    let keyring = &state.crm.keyring;
    let token = keyring.seal(
        tokens.access_token.expose_secret(),
        &crm::secret_place(tenant, "token"),
    );
    let refresh = tokens
        .refresh_token
        .as_ref()
        .map(|r| keyring.seal(r.expose_secret(), &crm::secret_place(tenant, "refresh")));
    let expires_at = tokens
        .expires_in
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .map(|d| Utc::now() + d);
    let mut tx = state.store.pool.begin().await?;
    let replaced = crm::get(&mut *tx, tenant)
        .await?
        .is_some_and(|c| c.status != Status::Disconnected);
    let connection = crm::connect(
        &mut *tx,
        NewConnection {
            tenant_id: tenant,
            method,
            location_id: location,
            location_name: name,
            company_id: tokens.company_id.as_deref(),
            scopes: &tokens.scopes,
            token,
            refresh,
            expires_at,
            connected_by: actor.user_id,
        },
    )
    .await?;
    audit::record(
        &mut *tx,
        NewEvent {
            tenant_id: Some(tenant),
            actor,
            action: "crm.connected",
            target_type: Some("crm_connection"),
            target_id: Some(location.to_string()),
            details: json!({
                "method": method.as_str(),
                "location_id": location,
                "scopes": tokens.scopes,
                "replaced": replaced,
            }),
            request_id,
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(tenant_id = %tenant.0, method = method.as_str(), location_id = location, "CRM connected");
    Ok(connection)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivateIntegration {
    /// The Private Integration key made in HighLevel for this sub-account.
    #[schema(format = Password)]
    token: String,
    /// The HighLevel Location (sub-account) id it is for.
    location_id: String,
}

/// Save (or replace) a Private Integration key: verified with HighLevel
/// first (`GET /locations/{id}`), then stored sealed. Org admins only.
#[utoipa::path(put, path = "/v1/tenants/{tenant_id}/crm/private-integration", tag = "crm", security(("bearer" = [])),
    params(("tenant_id" = uuid::Uuid, Path)), request_body = PrivateIntegration,
    responses((status = 200, body = ConnectionView),
        (status = 422, body = Problem, description = "HighLevel refused the key, or the Location is unknown"),
        (status = 503, body = Problem, description = "HighLevel could not be reached")))]
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant_id()))]
async fn save_private_integration(
    State(state): State<AppState>,
    scope: TenantScope<perm::CrmConnect>,
    RequestId(request_id): RequestId,
    ApiJson(req): ApiJson<PrivateIntegration>,
) -> Result<Json<ConnectionView>, ApiError> {
    let token = req.token.trim();
    if token.is_empty() || token.len() > 1024 || token.chars().any(char::is_whitespace) {
        return Err(ApiError::field(
            "token",
            "must be the Private Integration key as HighLevel shows it",
        ));
    }
    let location = req.location_id.trim();
    if location.is_empty()
        || location.len() > 64
        || !location
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ApiError::field(
            "location_id",
            "must be a HighLevel Location id (letters, digits, - and _)",
        ));
    }
    let secret = SecretString::from(token.to_string());
    let found = state
        .crm
        .client
        .location(&secret, location)
        .await
        .map_err(|e| match e {
            HlError::Unauthorized { .. } => ApiError::field(
                "token",
                format!("HighLevel refused this key for Location {location}; check the key and its scopes"),
            ),
            HlError::Status { status: 400 | 404 | 422, .. } => {
                ApiError::field("location_id", format!("HighLevel has no Location {location}"))
            }
            other => ApiError::Unavailable(format!("{other}; try again in a moment")),
        })?;
    let tokens = Tokens {
        access_token: secret,
        refresh_token: None,
        expires_in: None,
        scopes: Vec::new(),
        location_id: Some(location.to_string()),
        company_id: found.company_id.clone(),
    };
    let c = store_connection(
        &state,
        scope.tenant_id(),
        Method::PrivateIntegration,
        location,
        found.name.as_deref(),
        tokens,
        scope.principal.actor(),
        request_id.as_deref(),
    )
    .await?;
    Ok(Json(c.into()))
}

/// The tenant's CRM connection: how, which Location, scopes, status; never
/// a secret.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/crm/connection", tag = "crm", security(("bearer" = [])),
    params(("tenant_id" = uuid::Uuid, Path)),
    responses((status = 200, body = ConnectionView), (status = 404, body = Problem)))]
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant_id()))]
async fn get_connection(
    State(state): State<AppState>,
    scope: TenantScope<perm::CrmRead>,
) -> Result<Json<ConnectionView>, ApiError> {
    crm::get(&state.store.pool, scope.tenant_id())
        .await?
        .map(|c| Json(c.into()))
        .ok_or(ApiError::NotFound("CRM connection"))
}

/// Disconnect: the stored tokens or key are destroyed; connecting again
/// starts over.
#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}/crm/connection", tag = "crm", security(("bearer" = [])),
    params(("tenant_id" = uuid::Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant_id()))]
async fn disconnect(
    State(state): State<AppState>,
    scope: TenantScope<perm::CrmConnect>,
    RequestId(request_id): RequestId,
) -> Result<StatusCode, ApiError> {
    let tenant = scope.tenant_id();
    let mut tx = state.store.pool.begin().await?;
    if !crm::disconnect(&mut *tx, tenant, "disconnected by an admin").await? {
        return Err(ApiError::NotFound("CRM connection"));
    }
    audit::record(
        &mut *tx,
        scope.principal.event(
            Some(tenant),
            "crm.disconnected",
            ("crm_connection", tenant.0.to_string()),
            json!({}),
            request_id.as_deref(),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
