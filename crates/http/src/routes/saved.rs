//! Saved contacts: a tenant's lead list (what CRM push will send).
//!
//! Saving is idempotent and reports per id; a saved contact that later
//! leaves the corpus (its only batch quarantined, or merged away) stays on
//! the list as `withdrawn`, without values, rather than vanishing.

use crate::auth::{perm, TenantScope};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery, RequestId};
use crate::pagination::{Page, PageParams};
use crate::routes::search::with_corrections;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bizcontacts_store::search::{self, SaveOutcome};
use bizcontacts_store::{audit, corrections};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(save_contacts, list_saved))
        .routes(routes!(unsave_contact))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveRequest {
    #[schema(min_items = 1, max_items = 1000)]
    contact_ids: Vec<Uuid>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SaveResult {
    contact_id: Uuid,
    /// `saved`, `already_saved`, or `not_available` (no such contact, or it
    /// left the corpus).
    outcome: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SaveResults {
    results: Vec<SaveResult>,
}

/// Save contacts to the tenant's list. Idempotent; each id says what happened.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/saved-contacts", tag = "contacts", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)), request_body = SaveRequest,
    responses((status = 200, body = SaveResults)))]
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant_id()))]
async fn save_contacts(
    State(state): State<AppState>,
    scope: TenantScope<perm::ContactsSave>,
    RequestId(request_id): RequestId,
    ApiJson(req): ApiJson<SaveRequest>,
) -> Result<Json<SaveResults>, ApiError> {
    if req.contact_ids.is_empty() || req.contact_ids.len() > 1000 {
        return Err(ApiError::field("contact_ids", "must hold 1 to 1000 ids"));
    }
    let mut tx = state.store.pool.begin().await?;
    let outcomes = search::save(
        &mut tx,
        scope.tenant_id(),
        &req.contact_ids,
        Some(scope.principal.user_id.0),
    )
    .await?;
    let saved = outcomes
        .values()
        .filter(|o| **o == SaveOutcome::Saved)
        .count();
    if saved > 0 {
        audit::record(
            &mut *tx,
            scope.principal.event(
                Some(scope.tenant_id()),
                "contacts.saved",
                ("tenant", scope.tenant_id().to_string()),
                json!({ "saved": saved }),
                request_id.as_deref(),
            ),
        )
        .await?;
    }
    tx.commit().await?;
    let results = req
        .contact_ids
        .iter()
        .map(|id| SaveResult {
            contact_id: *id,
            outcome: match outcomes.get(id) {
                Some(SaveOutcome::Saved) => "saved",
                Some(SaveOutcome::AlreadySaved) => "already_saved",
                _ => "not_available",
            },
        })
        .collect();
    Ok(Json(SaveResults { results }))
}

/// One entry of the list: the contact with this tenant's corrections, or
/// `withdrawn` once it left the corpus.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SavedView {
    contact_id: Uuid,
    saved_at: DateTime<Utc>,
    /// `active`, or `withdrawn` (quarantined away or merged: no values).
    status: &'static str,
    #[schema(value_type = Object)]
    #[serde(flatten)]
    values: serde_json::Map<String, serde_json::Value>,
    corrected_fields: Vec<String>,
}

/// The tenant's saved contacts, oldest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/saved-contacts", tag = "contacts", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), PageParams),
    responses((status = 200, body = Page<SavedView>)))]
async fn list_saved(
    State(state): State<AppState>,
    scope: TenantScope<perm::ContactsSave>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<SavedView>>, ApiError> {
    let limit = page.limit()?;
    let tenant = scope.tenant_id();
    let rows = search::list_saved(&state.store.pool, tenant, page.cursor()?, limit + 1).await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.contact.id).collect();
    let mut own = corrections::overlay_many(&state.store.pool, tenant.0, &ids).await?;
    let views: Vec<(Uuid, SavedView)> = rows
        .into_iter()
        .map(|r| {
            let mine = own.remove(&r.contact.id).unwrap_or_default();
            let active = r.contact.active;
            let contact = with_corrections(r.contact, mine);
            let view = SavedView {
                contact_id: contact.id,
                saved_at: r.saved_at,
                status: if active { "active" } else { "withdrawn" },
                values: if active {
                    contact.values.to_map()
                } else {
                    serde_json::Map::new()
                },
                corrected_fields: if active {
                    contact.corrected_fields
                } else {
                    Vec::new()
                },
            };
            (r.id, view)
        })
        .collect();
    Ok(Json(Page::from_rows(
        views,
        limit,
        |(id, _)| *id,
        |(_, v)| v,
    )))
}

#[derive(Deserialize)]
struct SavedPath {
    contact_id: Uuid,
}

/// Take a contact off the tenant's list.
#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}/saved-contacts/{contact_id}", tag = "contacts", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("contact_id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
async fn unsave_contact(
    State(state): State<AppState>,
    scope: TenantScope<perm::ContactsSave>,
    Path(SavedPath { contact_id }): Path<SavedPath>,
) -> Result<StatusCode, ApiError> {
    if search::unsave(&state.store.pool, scope.tenant_id(), contact_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("saved contact"))
    }
}
