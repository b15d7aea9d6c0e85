//! Possible matches of a batch: rows that scored between "different" and
//! "same" against a contact, shown side by side for a reviewer, whose
//! decisions send the rows back through dedupe.

use crate::auth::{perm, TenantScope};
use crate::error::{not_found, ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery, RequestId};
use crate::pagination::{Page, PageParams};
use crate::routes::imports::{enqueue_dedupe, queued_status};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bizcontacts_store::corpus::Values;
use bizcontacts_store::{audit, erasure, imports, matches};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_matches, decide))
}

#[derive(Deserialize)]
struct ImportPath {
    import_id: Uuid,
}

/// A staged row beside the contact it may be.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MatchView {
    row_id: Uuid,
    row_number: i32,
    contact_id: Uuid,
    /// The pair's match weight in bits (log2 of the odds that row and
    /// contact are one), as compared with `dedupe.*_probability`. Pairs
    /// from before issue 17 (no `explanation`) keep the older score scale.
    score: f32,
    /// The match probability and, per field, the comparison level and its
    /// weight in bits (`{weight, probability, business, person?, fields:
    /// [{field, level, bits, term_frequency?}]}`; `term_frequency`: the
    /// bits an exact agreement on a value common in the corpus lost, already
    /// in `bits`). None for pairs from before issue 17 and for a re-import
    /// of an erased contact.
    #[schema(value_type = Option<Object>)]
    explanation: Option<serde_json::Value>,
    /// `same`, `different`, or none while waiting.
    decision: Option<String>,
    #[schema(value_type = Object)]
    row: serde_json::Map<String, serde_json::Value>,
    #[schema(value_type = Object)]
    contact: serde_json::Map<String, serde_json::Value>,
}

/// The batch's possible matches in row order.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/imports/{import_id}/matches", tag = "imports", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("import_id" = Uuid, Path), PageParams),
    responses((status = 200, body = Page<MatchView>), (status = 404, body = Problem)))]
async fn list_matches(
    State(state): State<AppState>,
    scope: TenantScope<perm::ImportsRead>,
    Path(ImportPath { import_id }): Path<ImportPath>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<MatchView>>, ApiError> {
    let limit = page.limit()?;
    let offset = page.offset()?;
    let import = imports::get(&state.store.pool, Some(scope.tenant_id()), import_id)
        .await
        .map_err(not_found("import"))?;
    let pairs = matches::list(&state.store.pool, import.id, offset, limit + 1).await?;
    let items = pairs
        .into_iter()
        .map(|p| MatchView {
            row_id: p.row_id,
            row_number: p.row_number,
            contact_id: p.contact_id,
            score: p.score,
            explanation: p.explanation,
            decision: p.decision,
            row: Values::to_map(&p.row),
            contact: Values::to_map(&p.contact),
        })
        .collect();
    Ok(Json(Page::from_offset(items, offset, limit)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Same,
    Different,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchDecision {
    row_id: Uuid,
    contact_id: Uuid,
    decision: Decision,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    #[schema(min_items = 1, max_items = 1000)]
    decisions: Vec<MatchDecision>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DecideResult {
    decided: u64,
    /// The dedupe job that places the decided rows.
    job_id: Option<Uuid>,
}

/// Decide possible matches. A row said to be the same as a contact merges
/// into it; a row different from all its candidates becomes a contact of its
/// own (or matches elsewhere). Only open pairs of this batch count.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/imports/{import_id}/matches", tag = "imports", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("import_id" = Uuid, Path)), request_body = DecideRequest,
    responses((status = 202, body = DecideResult), (status = 200, body = DecideResult, description = "nothing was open"),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant_id()))]
async fn decide(
    State(state): State<AppState>,
    scope: TenantScope<perm::ImportsReview>,
    RequestId(request_id): RequestId,
    Path(ImportPath { import_id }): Path<ImportPath>,
    ApiJson(req): ApiJson<DecideRequest>,
) -> Result<Response, ApiError> {
    if req.decisions.is_empty() || req.decisions.len() > 1_000 {
        return Err(ApiError::field(
            "decisions",
            "must hold 1 to 1000 decisions",
        ));
    }
    let import = imports::get(&state.store.pool, Some(scope.tenant_id()), import_id)
        .await
        .map_err(not_found("import"))?;
    if import.quarantined_at.is_some() {
        return Err(ApiError::Conflict("the import is quarantined".into()));
    }
    let decisions: Vec<(Uuid, Uuid, bool)> = req
        .decisions
        .iter()
        .map(|d| (d.row_id, d.contact_id, matches!(d.decision, Decision::Same)))
        .collect();
    // An erased person cannot be merged back: reject the row instead.
    let same: Vec<Uuid> = decisions.iter().filter(|d| d.2).map(|d| d.1).collect();
    let erased = erasure::erased_among(&state.store.pool, &same).await?;
    if let Some(i) = decisions.iter().position(|d| d.2 && erased.contains(&d.1)) {
        return Err(ApiError::field(
            &format!("decisions[{i}].decision"),
            "this contact was erased at the person's request; it cannot be merged back (say different, or reject the row)",
        ));
    }
    let mut tx = state.store.pool.begin().await?;
    let decided = matches::decide(
        &mut tx,
        import.id,
        &decisions,
        Some(scope.principal.user_id.0),
    )
    .await?;
    let mut queued = None;
    if decided > 0 {
        audit::record(
            &mut *tx,
            scope.principal.event(
                Some(scope.tenant_id()),
                "import.matches_decided",
                ("import", import.id.to_string()),
                json!({ "decided": decided }),
                request_id.as_deref(),
            ),
        )
        .await?;
        queued = Some(
            enqueue_dedupe(&state, &mut tx, &scope.principal, &scope.tenant, import.id).await?,
        );
    }
    tx.commit().await?;
    let job_id = queued.as_ref().map(|(id, _)| *id);
    if let Some((_, pending)) = queued {
        state.ledger.push(pending).await;
    }
    let status = queued_status(job_id);
    Ok((status, Json(DecideResult { decided, job_id })).into_response())
}
