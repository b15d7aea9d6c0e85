//! Erasing one contact from the shared corpus at the person's request
//! (`data_steward`; audited without the contact's values). What goes and
//! what stays: `bizcontacts_store::erasure`.

use crate::auth::{perm, SystemScope};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, RequestId};
use crate::routes::admin::{reason, REASON_MAX};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use bizcontacts_store::{audit, erasure};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(erase))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    /// Why (audited): the request it answers.
    reason: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Erased {
    contact_id: Uuid,
    erased: bool,
}

/// Erase a contact: its values and its rows' values go, a tombstone of its
/// key hashes stays so a later import of the same person waits for review.
#[utoipa::path(post, path = "/v1/admin/contacts/{contact_id}/erase", tag = "admin", security(("bearer" = [])),
    params(("contact_id" = Uuid, Path)), request_body = EraseRequest,
    responses((status = 200, body = Erased), (status = 403, body = Problem),
        (status = 404, body = Problem, description = "no such contact, or erased before")))]
async fn erase(
    State(state): State<AppState>,
    scope: SystemScope<perm::AdminQuarantine>,
    RequestId(request_id): RequestId,
    Path(contact_id): Path<Uuid>,
    ApiJson(req): ApiJson<EraseRequest>,
) -> Result<Json<Erased>, ApiError> {
    let why = reason(&req.reason, REASON_MAX)?;
    let mut tx = state.store.pool.begin().await?;
    if !erasure::erase(&mut tx, contact_id).await? {
        return Err(ApiError::NotFound("contact"));
    }
    audit::record(
        &mut *tx,
        scope.principal.event(
            None,
            "contact.erased",
            ("contact", contact_id.to_string()),
            json!({ "reason": why }),
            request_id.as_deref(),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(Erased {
        contact_id,
        erased: true,
    }))
}
