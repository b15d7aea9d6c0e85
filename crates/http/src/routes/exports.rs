//! A tenant's export of its own data (privacy policy: "access ...
//! export"): start one (an `export` job builds the ZIP), then fetch it.
//! `users:manage`, as it holds every member's address. What goes in, and
//! what never does: `jobs/export.rs`.

use crate::auth::{perm, TenantScope};
use crate::enqueue::tenant_job;
use crate::error::{ApiError, Problem};
use crate::extract::RequestId;
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bizcontacts_jobs::ExportArgs;
use bizcontacts_queue::args::JobArgs;
use bizcontacts_store::audit;
use bizcontacts_store::exports::{self, Export};
use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_export))
        .routes(routes!(get_export))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ExportAccepted {
    export_id: Uuid,
    job_id: Uuid,
}

/// Export the tenant's data: 202, then `GET .../exports/{export_id}` gives
/// the ZIP once the job has made it. Counts as a job of the day.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/exports", tag = "privacy", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)),
    responses((status = 202, body = ExportAccepted), (status = 403, body = Problem), (status = 429, body = Problem)))]
async fn start_export(
    State(state): State<AppState>,
    scope: TenantScope<perm::UsersManage>,
    RequestId(request_id): RequestId,
) -> Result<Response, ApiError> {
    let tenant = scope.tenant_id();
    let mut tx = state.store.pool.begin().await?;
    let expires = Utc::now() + state.export_ttl;
    let export =
        exports::create(&mut *tx, tenant, Some(scope.principal.user_id.0), expires).await?;
    let job = ExportArgs {
        export_id: export.id,
    }
    .job();
    let (enqueued, pending, usage) =
        tenant_job(&state, &mut tx, &scope.tenant, &scope.principal, job).await?;
    exports::set_job(&mut *tx, export.id, enqueued.job.id).await?;
    audit::record(
        &mut *tx,
        scope.principal.event(
            Some(tenant),
            "tenant.export_started",
            ("export", export.id.to_string()),
            json!({}),
            request_id.as_deref(),
        ),
    )
    .await?;
    tx.commit().await?;
    state.ledger.push(pending).await;
    let body = ExportAccepted {
        export_id: export.id,
        job_id: enqueued.job.id,
    };
    Ok(usage.on((StatusCode::ACCEPTED, Json(body)).into_response()))
}

/// The export: the ZIP once ready (`application/zip`); before that 202 with
/// its status; 409 if it failed; 410 once expired.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/exports/{export_id}", tag = "privacy", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("export_id" = Uuid, Path)),
    responses((status = 200, content_type = "application/zip", description = "the ZIP"),
        (status = 202, body = Object, description = "not ready yet: its status"),
        (status = 404, body = Problem), (status = 409, body = Problem, description = "the export failed"),
        (status = 410, body = Problem, description = "expired")))]
async fn get_export(
    State(state): State<AppState>,
    scope: TenantScope<perm::UsersManage>,
    Path(path): Path<(Uuid, Uuid)>,
) -> Result<Response, ApiError> {
    let export_id = path.1;
    let export: Export = exports::get(&state.store.pool, scope.tenant_id(), export_id)
        .await?
        .ok_or(ApiError::NotFound("export"))?;
    if export.expires_at <= Utc::now() {
        return Err(ApiError::Gone(
            "this export has expired; start a new one".into(),
        ));
    }
    match export.status.as_str() {
        "ready" => {}
        "failed" => {
            return Err(ApiError::Conflict(format!(
                "the export failed ({}); start a new one",
                export.error.as_deref().unwrap_or("no detail")
            )))
        }
        _ => return Ok((StatusCode::ACCEPTED, Json(export)).into_response()),
    }
    // One chunk per query: a slow download holds no connection between reads.
    let pool = state.store.pool.clone();
    let stream = futures::stream::unfold(0i32, move |seq| {
        let pool = pool.clone();
        async move {
            match exports::chunk(&pool, export_id, seq).await {
                Ok(Some(data)) => Some((Ok::<_, std::io::Error>(Bytes::from(data)), seq + 1)),
                Ok(None) => None,
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), i32::MAX)),
            }
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (header::CONTENT_LENGTH, export.byte_size.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"bizcontacts-export-{export_id}.zip\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
