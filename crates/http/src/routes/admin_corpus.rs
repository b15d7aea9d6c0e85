//! Governing the corpus: quarantining a batch (data stewards) and sweeping
//! the whole corpus for duplicates (platform admins). Both audited.

use crate::auth::{perm, SystemScope};
use crate::enqueue::platform_job;
use crate::error::{not_found, ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery, RequestId};
use crate::pagination::{Page, PageParams};
use crate::routes::admin::reason;
use crate::routes::jobs::JobView;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bizcontacts_jobs::DedupeArgs;
use bizcontacts_queue::args::JobArgs;
use bizcontacts_store::sweeps::{self, Candidate, Sweep};
use bizcontacts_store::{audit, imports};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(quarantine))
        .routes(routes!(start_sweep))
        .routes(routes!(get_sweep))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuarantineRequest {
    /// Why, for the audit trail.
    #[schema(min_length = 1, max_length = 2000)]
    reason: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Quarantined {
    import_id: Uuid,
    /// Contacts the batch contributed to, now derived from their other sources.
    contacts_touched: usize,
    /// Contacts whose only source was this batch: out of search.
    contacts_withdrawn: u64,
}

#[derive(Deserialize)]
struct ImportPath {
    import_id: Uuid,
}

/// Withdraw a batch's contributions from the corpus.
#[utoipa::path(post, path = "/v1/admin/imports/{import_id}/quarantine", tag = "admin", security(("bearer" = [])),
    params(("import_id" = Uuid, Path)), request_body = QuarantineRequest,
    responses((status = 200, body = Quarantined), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
#[tracing::instrument(skip_all, fields(import_id = %import_id))]
async fn quarantine(
    State(state): State<AppState>,
    scope: SystemScope<perm::AdminQuarantine>,
    RequestId(request_id): RequestId,
    Path(ImportPath { import_id }): Path<ImportPath>,
    ApiJson(req): ApiJson<QuarantineRequest>,
) -> Result<Json<Quarantined>, ApiError> {
    let reason = reason(&req.reason, 2_000)?;
    let import = imports::get(&state.store.pool, None, import_id)
        .await
        .map_err(not_found("import"))?;
    let mut tx = state.store.pool.begin().await?;
    let Some((touched, withdrawn)) =
        imports::quarantine(&mut tx, import.id, Some(scope.principal.user_id), reason).await?
    else {
        return Err(ApiError::Conflict(
            "the import is already quarantined".into(),
        ));
    };
    audit::record(
        &mut *tx,
        scope.principal.event(
            Some(import.tenant_id),
            "import.quarantined",
            ("import", import.id.to_string()),
            json!({ "reason": reason, "contacts_touched": touched, "contacts_withdrawn": withdrawn }),
            request_id.as_deref(),
        ),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(touched, withdrawn, "import quarantined");
    Ok(Json(Quarantined {
        import_id,
        contacts_touched: touched,
        contacts_withdrawn: withdrawn,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SweepRequest {
    /// Merge what scores as the same contact; by default only report.
    #[serde(default)]
    apply: bool,
}

/// Start a whole-corpus dedupe sweep (a `dedupe` job of no tenant).
#[utoipa::path(post, path = "/v1/admin/dedupe/sweep", tag = "admin", security(("bearer" = [])),
    request_body = SweepRequest,
    responses((status = 202, body = JobView), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn start_sweep(
    State(state): State<AppState>,
    scope: SystemScope<perm::AdminOperate>,
    RequestId(request_id): RequestId,
    ApiJson(req): ApiJson<SweepRequest>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let mut tx = state.store.pool.begin().await?;
    let (job, pending) = platform_job(
        &state,
        &mut tx,
        &scope.principal,
        DedupeArgs::sweep(req.apply).job(),
    )
    .await?;
    audit::record(
        &mut *tx,
        scope.principal.event(
            None,
            "dedupe.sweep_started",
            ("job", job.id.to_string()),
            json!({ "apply": req.apply }),
            request_id.as_deref(),
        ),
    )
    .await?;
    tx.commit().await?;
    state.ledger.push(pending).await;
    Ok((StatusCode::ACCEPTED, Json(JobView::from(job))))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SweepReport {
    #[serde(flatten)]
    sweep: Sweep,
    /// Pairs found, best score first.
    pairs: Page<Candidate>,
}

#[derive(Deserialize)]
struct JobPath {
    job_id: Uuid,
}

/// A sweep's progress and the merge candidates it found.
#[utoipa::path(get, path = "/v1/admin/dedupe/sweeps/{job_id}", tag = "admin", security(("bearer" = [])),
    params(("job_id" = Uuid, Path), PageParams),
    responses((status = 200, body = SweepReport), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn get_sweep(
    State(state): State<AppState>,
    _scope: SystemScope<perm::AdminMonitor>,
    Path(JobPath { job_id }): Path<JobPath>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<SweepReport>, ApiError> {
    let limit = page.limit()?;
    let offset = page.offset()?;
    let sweep = sweeps::get(&state.store.pool, job_id)
        .await
        .map_err(not_found("sweep"))?;
    let pairs = sweeps::candidates(&state.store.pool, job_id, offset, limit + 1).await?;
    Ok(Json(SweepReport {
        sweep,
        pairs: Page::from_offset(pairs, offset, limit),
    }))
}
