//! Corpus contacts as a tenant sees them, and tenants' corrections.

use crate::auth::{perm, TenantScope};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, Created, RequestId};
use crate::json_rows::Table;
use crate::routes::imports::{stage_json_row, stage_single_row};
use crate::routes::search::with_corrections;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use bizcontacts_domain::batch::Source;
use bizcontacts_domain::contact::Field;
use bizcontacts_store::corpus::{self, Contact};
use bizcontacts_store::search;
use bizcontacts_store::{audit, corrections};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_contact))
        .routes(routes!(correct))
}

/// A canonical contact. `corrected_fields` names the fields whose value
/// comes from a correction: a reviewed one, or one of this tenant's own
/// still waiting for review.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ContactView {
    contact_id: Uuid,
    #[schema(value_type = Object)]
    #[serde(flatten)]
    values: serde_json::Map<String, serde_json::Value>,
    corrected_fields: Vec<String>,
    /// On this tenant's saved list.
    saved: bool,
}

#[derive(Deserialize)]
struct ContactPath {
    contact_id: Uuid,
}

/// An active contact, or 404 (unknown, quarantined away or merged).
async fn active_contact(state: &AppState, id: Uuid) -> Result<Contact, ApiError> {
    corpus::load(&state.store.pool, &[id])
        .await?
        .into_iter()
        .find(|c| c.active)
        .ok_or(ApiError::NotFound("contact"))
}

/// One contact with this tenant's corrections applied.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/contacts/{contact_id}", tag = "contacts", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("contact_id" = Uuid, Path)),
    responses((status = 200, body = ContactView), (status = 404, body = Problem)))]
async fn get_contact(
    State(state): State<AppState>,
    scope: TenantScope<perm::ContactsSearch>,
    Path(ContactPath { contact_id }): Path<ContactPath>,
) -> Result<Json<ContactView>, ApiError> {
    let contact = active_contact(&state, contact_id).await?;
    let own = corrections::overlay(&state.store.pool, scope.tenant_id().0, contact_id).await?;
    let contact = with_corrections(contact, own);
    let saved = search::is_saved(&state.store.pool, scope.tenant_id(), contact_id).await?;
    Ok(Json(ContactView {
        contact_id,
        values: contact.values.to_map(),
        corrected_fields: contact.corrected_fields,
        saved,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrectionRequest {
    /// The field to correct (category and domain follow mcc and website).
    field: Field,
    /// The right value, validated like an imported one.
    #[schema(min_length = 1)]
    value: String,
    /// Why, for the reviewer.
    #[schema(max_length = 2000)]
    note: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CorrectionCreated {
    correction_id: Uuid,
    /// The one-row batch that takes the correction to review.
    import_id: Uuid,
    row_id: Uuid,
}

/// Correct a field of a contact: this tenant sees the new value at once; the
/// correction is staged for review and, once approved, joins the corpus
/// through the same dedupe path as any import.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/contacts/{contact_id}/corrections", tag = "contacts", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("contact_id" = Uuid, Path)), request_body = CorrectionRequest,
    responses((status = 201, body = CorrectionCreated), (status = 404, body = Problem), (status = 422, body = Problem),
        (status = 429, body = Problem)))]
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant_id()))]
async fn correct(
    State(state): State<AppState>,
    scope: TenantScope<perm::ContactsSave>,
    RequestId(request_id): RequestId,
    Path(ContactPath { contact_id }): Path<ContactPath>,
    ApiJson(req): ApiJson<CorrectionRequest>,
) -> Result<Created<CorrectionCreated>, ApiError> {
    if req.note.as_ref().is_some_and(|n| n.chars().count() > 2_000) {
        return Err(ApiError::field("note", "must be at most 2000 characters"));
    }
    if req.value.trim().is_empty() {
        return Err(ApiError::field("value", "must not be empty"));
    }
    let contact = active_contact(&state, contact_id).await?;
    let field = req.field.as_str();
    let mut pairs = vec![(field.to_string(), req.value.clone())];
    // A phone number is read in the contact's country, as on import.
    if req.field == Field::Phone {
        let country = contact.values.get("country").unwrap_or_default();
        pairs.push(("country".into(), country.to_string()));
    }
    let (layout, mut staged) = stage_json_row(&Table::one(pairs), "field")?;
    // Only the corrected field matters: the rest of the row is the contact's.
    staged.errors.retain(|e| e.field == field);
    if let Some(e) = staged.errors.first() {
        return Err(ApiError::field("value", e.reason.clone()));
    }
    let mut tx = state.store.pool.begin().await?;
    let (import, row_id) = stage_single_row(
        &mut tx,
        (&scope.tenant, &scope.principal),
        Source::Correction,
        None,
        &layout,
        &staged,
    )
    .await?
    .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a batch without a key cannot conflict")))?;
    let correction_id = corrections::create(
        &mut tx,
        corrections::NewCorrection {
            tenant_id: scope.tenant_id().0,
            contact_id,
            field,
            note: req.note.as_deref(),
            row_id,
            created_by: Some(scope.principal.user_id.0),
        },
    )
    .await?;
    audit::record(
        &mut *tx,
        scope.principal.event(
            Some(scope.tenant_id()),
            "contact.corrected",
            ("contact", contact_id.to_string()),
            json!({ "field": field, "import_id": import.id }),
            request_id.as_deref(),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Created(CorrectionCreated {
        correction_id,
        import_id: import.id,
        row_id,
    }))
}
