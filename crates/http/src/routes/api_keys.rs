//! API keys: create (shown once), list (never the secret), revoke.

use crate::auth::{perm, TenantScope};
use crate::error::{not_found, ApiError, FieldError, Problem};
use crate::extract::{ApiJson, ApiQuery, Created, RequestId};
use crate::identity::{check_scopes, issue_api_key, KeyKind};
use crate::pagination::{Page, PageParams};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bizcontacts_domain::{ApiKeyId, Permission};
use bizcontacts_store::api_keys::{self, ApiKey};
use bizcontacts_store::audit;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

/// The item's id in the path (`tenant_id` is read by `TenantScope`).
#[derive(Deserialize)]
struct KeyPath {
    key_id: Uuid,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
}

/// A key as listed: its recognisable prefix, never the secret or its hash.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiKeyView {
    id: Uuid,
    name: String,
    /// First characters of the key, to recognise it.
    prefix: String,
    scopes: Vec<Permission>,
    owner_user_id: Uuid,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        ApiKeyView {
            id: k.id.0,
            name: k.name,
            prefix: k.prefix,
            scopes: k.scopes,
            owner_user_id: k.user_id.0,
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
        }
    }
}

/// The tenant's API keys, revoked ones included.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/api-keys", tag = "identity", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), PageParams),
    responses((status = 200, body = Page<ApiKeyView>), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn list_keys(
    State(state): State<AppState>,
    scope: TenantScope<perm::KeysManage>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<ApiKeyView>>, ApiError> {
    let limit = page.limit()?;
    let rows = api_keys::list(
        &state.store.pool,
        scope.tenant_id(),
        page.cursor()?.map(ApiKeyId),
        limit + 1,
    )
    .await?;
    Ok(Json(Page::from_rows(
        rows,
        limit,
        |k| k.id.0,
        ApiKeyView::from,
    )))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    /// Permissions the key carries; each must be one the creator holds.
    #[schema(value_type = Vec<Permission>, min_items = 1)]
    scopes: Vec<String>,
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    id: Uuid,
    /// The key itself. Shown this once; only its hash is kept.
    key: String,
    prefix: String,
    name: String,
    scopes: Vec<Permission>,
    expires_at: Option<DateTime<Utc>>,
}

fn validate(
    req: &CreateKey,
    holds: impl Fn(Permission) -> bool,
) -> Result<Vec<Permission>, ApiError> {
    let mut errors = Vec::new();
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        errors.push(FieldError::new("name", "must be 1 to 200 characters"));
    }
    if req.expires_at.is_some_and(|e| e <= Utc::now()) {
        errors.push(FieldError::new("expires_at", "must be in the future"));
    }
    match check_scopes(&req.scopes, KeyKind::Tenant, holds) {
        Ok(scopes) if errors.is_empty() => Ok(scopes),
        Ok(_) => Err(ApiError::Validation(errors)),
        Err(more) => {
            errors.extend(more);
            Err(ApiError::Validation(errors))
        }
    }
}

/// Create a key. The response holds the key once; it cannot be shown again.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/api-keys", tag = "identity", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)), request_body = CreateKey,
    responses((status = 201, body = CreatedKey), (status = 403, body = Problem, description = "no keys:manage, or the package has no API access"),
        (status = 422, body = Problem)))]
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant_id()))]
async fn create_key(
    State(state): State<AppState>,
    scope: TenantScope<perm::KeysManage>,
    RequestId(request_id): RequestId,
    ApiJson(req): ApiJson<CreateKey>,
) -> Result<Created<CreatedKey>, ApiError> {
    let package = &scope.limits;
    if !package.api_access {
        return Err(ApiError::Forbidden(format!(
            "the tenant's package ({}) does not include API access; upgrade to create API keys",
            package.package
        )));
    }
    let scopes = validate(&req, |p| scope.permissions.contains(p))?;
    let mut tx = state.store.pool.begin().await?;
    let issued = issue_api_key(
        &mut tx,
        Some(scope.tenant_id()),
        scope.principal.user_id,
        req.name.trim(),
        &scopes,
        req.expires_at,
    )
    .await?;
    audit::record(
        &mut *tx,
        scope.principal.event(
            Some(scope.tenant_id()),
            "api_key.created",
            ("api_key", issued.key.id.to_string()),
            json!({ "name": issued.key.name, "prefix": issued.key.prefix, "scopes": scopes }),
            request_id.as_deref(),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Created(CreatedKey {
        id: issued.key.id.0,
        key: issued.secret,
        prefix: issued.key.prefix,
        name: issued.key.name,
        scopes: issued.key.scopes,
        expires_at: issued.key.expires_at,
    }))
}

/// Revoke a key; it stops working at once. Revoking twice is harmless.
#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}/api-keys/{key_id}", tag = "identity", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("key_id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
async fn revoke_key(
    State(state): State<AppState>,
    scope: TenantScope<perm::KeysManage>,
    RequestId(request_id): RequestId,
    Path(KeyPath { key_id, .. }): Path<KeyPath>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.store.pool.begin().await?;
    api_keys::revoke(&mut *tx, scope.tenant_id(), ApiKeyId(key_id))
        .await
        .map_err(not_found("API key"))?;
    audit::record(
        &mut *tx,
        scope.principal.event(
            Some(scope.tenant_id()),
            "api_key.revoked",
            ("api_key", key_id.to_string()),
            json!({}),
            request_id.as_deref(),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
