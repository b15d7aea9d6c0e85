//! Syncing with the tenant's CRM: pulling its contacts into a batch for
//! review, pushing saved contacts to it, and the push history.
//!
//! The routes check and record; the `crm_pull` and `crm_push` jobs talk to
//! HighLevel (`jobs/crm_push.rs` says how a push never makes a duplicate).

use crate::auth::{perm, TenantScope};
use crate::enqueue::tenant_job;
use crate::error::{ApiError, Problem};
use crate::extract::ApiJson;
use crate::pagination::{Page, PageParams};
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bizcontacts_domain::batch::{ImportStatus, Source};
use bizcontacts_jobs::{CrmPullArgs, CrmPushArgs, MAX_PUSH};
use bizcontacts_queue::args::JobArgs;
use bizcontacts_store::crm::{self, Status};
use bizcontacts_store::crm_pushes::{self, Push};
use bizcontacts_store::imports::{self, NewImport};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(pull))
        .routes(routes!(push))
        .routes(routes!(list_pushes))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PullAccepted {
    job_id: Uuid,
    /// The batch the pulled contacts are staged in, for review like any import.
    import_id: Uuid,
}

/// The connected tenant's CRM, or a 409 saying to connect it.
async fn connected_location(
    tx: &mut sqlx::PgConnection,
    tenant: bizcontacts_domain::TenantId,
) -> Result<String, ApiError> {
    crm::get(&mut *tx, tenant)
        .await?
        .filter(|c| c.status == Status::Connected)
        .and_then(|c| c.location_id)
        .ok_or_else(|| {
            ApiError::Conflict(
                "the CRM is not connected (or needs reconnecting); connect it first".into(),
            )
        })
}

/// Pull the connected Location's contacts into a new batch (source
/// `crm_pull`), staged and reviewed like a CSV (a `crm_pull` job).
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/crm/pull", tag = "crm", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)),
    responses((status = 202, body = PullAccepted),
        (status = 409, body = Problem, description = "the CRM is not connected"),
        (status = 429, body = Problem, description = "the day's jobs are used up")))]
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant_id()))]
async fn pull(
    State(state): State<AppState>,
    scope: TenantScope<perm::CrmSync>,
) -> Result<Response, ApiError> {
    let tenant = scope.tenant_id();
    let mut tx = state.store.pool.begin().await?;
    let location = connected_location(&mut tx, tenant).await?;
    let batch = imports::create(
        &mut tx,
        NewImport {
            tenant_id: tenant,
            source: Source::CrmPull,
            status: ImportStatus::Queued,
            idempotency_key: None,
            filename: Some(format!("HighLevel Location {location}")),
            created_by: Some(scope.principal.user_id),
        },
    )
    .await?
    .ok_or_else(|| ApiError::Conflict("a batch without a key cannot conflict".into()))?;
    let job = CrmPullArgs {
        import_id: Some(batch.id),
    }
    .job();
    let (enqueued, pending, usage) =
        tenant_job(&state, &mut tx, &scope.tenant, &scope.principal, job).await?;
    imports::set_job(&mut *tx, batch.id, enqueued.job.id).await?;
    tx.commit().await?;
    state.ledger.push(pending).await;
    let body = PullAccepted {
        job_id: enqueued.job.id,
        import_id: batch.id,
    };
    Ok(usage.on((StatusCode::ACCEPTED, Json(body)).into_response()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// Saved contacts to push (at most 10,000).
    contact_ids: Vec<Uuid>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PushAccepted {
    job_id: Uuid,
    /// How many of the ids will be pushed.
    accepted: usize,
    /// Ids left out: not on the tenant's saved contacts.
    not_saved: Vec<Uuid>,
}

/// Push saved contacts to the connected HighLevel Location (a `crm_push`
/// job). Unchanged contacts already pushed are skipped by the job.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/crm/push", tag = "crm", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)), request_body = PushRequest,
    responses((status = 202, body = PushAccepted),
        (status = 409, body = Problem, description = "the CRM is not connected"),
        (status = 422, body = Problem, description = "no id is a saved contact, or too many ids"),
        (status = 429, body = Problem, description = "the day's jobs are used up")))]
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant_id()))]
async fn push(
    State(state): State<AppState>,
    scope: TenantScope<perm::CrmSync>,
    ApiJson(req): ApiJson<PushRequest>,
) -> Result<Response, ApiError> {
    if req.contact_ids.is_empty() || req.contact_ids.len() > MAX_PUSH {
        return Err(ApiError::field(
            "contact_ids",
            format!("must list 1 to {MAX_PUSH} saved contacts"),
        ));
    }
    let tenant = scope.tenant_id();
    let mut tx = state.store.pool.begin().await?;
    connected_location(&mut tx, tenant).await?;
    let saved: Vec<Uuid> = sqlx::query_scalar(
        "SELECT contact_id FROM saved_contacts WHERE tenant_id = $1 AND contact_id = ANY($2)",
    )
    .bind(tenant.0)
    .bind(&req.contact_ids)
    .fetch_all(&mut *tx)
    .await?;
    let mut ids = Vec::new();
    let mut not_saved = Vec::new();
    for id in req.contact_ids {
        if saved.contains(&id) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        } else if !not_saved.contains(&id) {
            not_saved.push(id);
        }
    }
    if ids.is_empty() {
        return Err(ApiError::field(
            "contact_ids",
            "none of these is a saved contact of this tenant",
        ));
    }
    let accepted = ids.len();
    let job = CrmPushArgs { contact_ids: ids }.job();
    let (enqueued, pending, usage) =
        tenant_job(&state, &mut tx, &scope.tenant, &scope.principal, job).await?;
    tx.commit().await?;
    state.ledger.push(pending).await;
    let body = PushAccepted {
        job_id: enqueued.job.id,
        accepted,
        not_saved,
    };
    Ok(usage.on((StatusCode::ACCEPTED, Json(body)).into_response()))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct PushFilter {
    /// Only this contact's record.
    contact_id: Option<Uuid>,
    /// Only this outcome: pending, pushed, failed, skipped.
    result: Option<String>,
}

/// A contact's push record (its last attempt).
#[derive(Serialize, utoipa::ToSchema)]
pub struct PushView {
    contact_id: Uuid,
    /// The contact's id in HighLevel, once pushed.
    crm_contact_id: Option<String>,
    location_id: String,
    /// `pending` (outcome not known yet), `pushed`, `failed` or `skipped`.
    result: String,
    error: Option<String>,
    job_id: Option<Uuid>,
    attempted_at: DateTime<Utc>,
    pushed_at: Option<DateTime<Utc>>,
}

impl From<Push> for PushView {
    fn from(p: Push) -> Self {
        PushView {
            contact_id: p.contact_id,
            crm_contact_id: p.crm_contact_id,
            location_id: p.location_id,
            result: p.status,
            error: p.error,
            job_id: p.job_id,
            attempted_at: p.attempted_at,
            pushed_at: p.pushed_at,
        }
    }
}

/// What was pushed to the CRM, latest attempt first.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/crm/pushes", tag = "crm", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), PushFilter, PageParams),
    responses((status = 200, body = Page<PushView>)))]
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant_id()))]
async fn list_pushes(
    State(state): State<AppState>,
    scope: TenantScope<perm::CrmSync>,
    Query(filter): Query<PushFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<PushView>>, ApiError> {
    let result = match filter.result.as_deref() {
        None => None,
        Some(r @ ("pending" | "pushed" | "failed" | "skipped")) => Some(r),
        Some(_) => {
            return Err(ApiError::field(
                "result",
                "must be pending, pushed, failed or skipped",
            ))
        }
    };
    let limit = page.limit()?;
    let rows = crm_pushes::list(
        &state.store.pool,
        scope.tenant_id(),
        filter.contact_id,
        result,
        page.cursor()?,
        limit + 1,
    )
    .await?;
    Ok(Json(Page::from_rows(rows, limit, |p| p.id, PushView::from)))
}
