//! Imports out: status, staged rows, errors.csv, and the review decision.

use crate::auth::{perm, TenantScope};
use crate::enqueue::ledger_error;
use crate::error::{not_found, ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery, RequestId};
use crate::pagination::{Page, PageParams};
use crate::routes::imports::{enqueue_dedupe, queued_status};
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bizcontacts_domain::contact::FieldError;
use bizcontacts_domain::TenantId;
use bizcontacts_queue::job::{Job, JobStatus};
use bizcontacts_store::audit;
use bizcontacts_store::imports::{self, Counts, Import, ImportStatus};
use bizcontacts_store::staged_rows::{self, Approve};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_imports))
        .routes(routes!(get_import))
        .routes(routes!(list_rows))
        .routes(routes!(errors_csv))
        .routes(routes!(review))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Column {
    name: String,
    /// The contact field it maps to; none for a column kept as extra data.
    field: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ImportProgress {
    done: i64,
    total: Option<i64>,
    message: Option<String>,
}

/// An import batch.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ImportView {
    import_id: Uuid,
    source: imports::Source,
    /// queued, processing, staged, failed or cancelled.
    status: ImportStatus,
    job_id: Option<Uuid>,
    filename: Option<String>,
    byte_size: i64,
    encoding: imports::Encoding,
    delimiter: Option<String>,
    columns: Vec<Column>,
    counts: Counts,
    progress: ImportProgress,
    /// Why the batch failed, or what to know about a staged batch.
    message: Option<String>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

/// The batch as stored, reconciled with its job: a job cancelled before it
/// ran, or dead after its last attempt, never got to close the batch itself.
fn view(import: Import, job: Option<&Job>) -> ImportView {
    let mut status = import.status;
    let mut message = import.message.clone();
    if let (ImportStatus::Queued | ImportStatus::Processing, Some(j)) = (status, job) {
        match j.status {
            JobStatus::Cancelled => status = ImportStatus::Cancelled,
            JobStatus::Failed | JobStatus::Dead => {
                status = ImportStatus::Failed;
                message = j.last_error.clone();
            }
            _ => {}
        }
    }
    let progress = match job {
        Some(j) => ImportProgress {
            done: j.progress_done,
            total: j.progress_total,
            message: j.progress_message.clone(),
        },
        None => ImportProgress {
            done: import.rows_done as i64,
            total: Some(import.rows_done as i64),
            message: None,
        },
    };
    let columns = match (&import.header, &import.mapping) {
        (Some(h), Some(m)) => h
            .iter()
            .zip(m)
            .map(|(name, field)| Column {
                name: name.clone(),
                field: field.clone(),
            })
            .collect(),
        _ => Vec::new(),
    };
    ImportView {
        import_id: import.id,
        source: import.source,
        status,
        job_id: import.job_id,
        filename: import.filename,
        byte_size: import.byte_size,
        encoding: import.encoding,
        delimiter: import.delimiter,
        columns,
        counts: import.counts,
        progress,
        message,
        created_at: import.created_at,
        finished_at: import.finished_at,
    }
}

/// The tenant's imports, newest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/imports", tag = "imports", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), PageParams),
    responses((status = 200, body = Page<ImportView>), (status = 403, body = Problem)))]
async fn list_imports(
    State(state): State<AppState>,
    scope: TenantScope<perm::ImportsRead>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<ImportView>>, ApiError> {
    let limit = page.limit()?;
    let rows = imports::list(
        &state.store.pool,
        scope.tenant_id(),
        page.cursor()?,
        limit + 1,
    )
    .await?;
    let page = Page::from_rows(rows, limit, |i| i.id, |i| i);
    // One query for the jobs of the whole page.
    let job_ids: Vec<Uuid> = page.items.iter().filter_map(|i| i.job_id).collect();
    let jobs = state
        .ledger
        .get_many(&job_ids)
        .await
        .map_err(ledger_error)?;
    let items = page
        .items
        .into_iter()
        .map(|i| {
            let job = jobs.iter().find(|j| Some(j.id) == i.job_id);
            view(i, job)
        })
        .collect();
    Ok(Json(Page {
        items,
        next_cursor: page.next_cursor,
    }))
}

#[derive(Deserialize)]
struct ImportPath {
    import_id: Uuid,
}

async fn load(state: &AppState, tenant: TenantId, id: Uuid) -> Result<Import, ApiError> {
    imports::get(&state.store.pool, Some(tenant), id)
        .await
        .map_err(not_found("import"))
}

/// One import: status, counts, progress.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/imports/{import_id}", tag = "imports", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("import_id" = Uuid, Path)),
    responses((status = 200, body = ImportView), (status = 404, body = Problem)))]
async fn get_import(
    State(state): State<AppState>,
    scope: TenantScope<perm::ImportsRead>,
    Path(ImportPath { import_id }): Path<ImportPath>,
) -> Result<Json<ImportView>, ApiError> {
    let import = load(&state, scope.tenant_id(), import_id).await?;
    let job = match import.job_id {
        Some(id) => Some(state.ledger.get(None, id).await.map_err(ledger_error)?),
        None => None,
    };
    Ok(Json(view(import, job.as_ref())))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RowQuery {
    /// valid, invalid, approved, rejected or merged.
    status: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    cursor: Option<String>,
}

const ROW_STATUSES: [&str; 5] = ["valid", "invalid", "approved", "rejected", "merged"];

/// A staged row: as received, normalized, its errors.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RowView {
    row_id: Uuid,
    row_number: i32,
    status: String,
    /// Column name to value, as received.
    #[schema(value_type = Object)]
    raw: serde_json::Map<String, serde_json::Value>,
    /// The typed values, plus `category` (from the MCC) and `extra` (unmapped columns).
    #[schema(value_type = Object)]
    normalized: serde_json::Value,
    errors: Vec<FieldError>,
    /// The earlier row of this file that this row repeats exactly.
    duplicate_of: Option<i32>,
    contact_id: Option<Uuid>,
    /// When the matcher merged the row into `contact_id`: why (see `MatchView.explanation`).
    #[schema(value_type = Option<Object>)]
    match_explanation: Option<serde_json::Value>,
}

fn row_view(import: &Import, r: staged_rows::Row) -> RowView {
    let header = import.header.as_deref().unwrap_or_default();
    let mapping = import.mapping.as_deref().unwrap_or_default();
    let name = |i: usize| {
        header
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("column_{}", i + 1))
    };
    let mut raw = serde_json::Map::new();
    let mut extra = serde_json::Map::new();
    for (i, v) in r.raw.0.iter().enumerate() {
        raw.insert(name(i), json!(v));
        if mapping.get(i).is_none_or(Option::is_none) && !v.trim().is_empty() {
            extra.insert(name(i), json!(v));
        }
    }
    RowView {
        row_id: r.id,
        row_number: r.row_number,
        status: r.status,
        raw,
        normalized: {
            let mut values = r.values.to_map();
            values.insert("extra".into(), serde_json::Value::Object(extra));
            serde_json::Value::Object(values)
        },
        errors: r.errors.unwrap_or_default(),
        duplicate_of: r.duplicate_of,
        contact_id: r.contact_id,
        match_explanation: r.match_explanation,
    }
}

/// The batch's rows in file order, optionally of one status.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/imports/{import_id}/rows", tag = "imports", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("import_id" = Uuid, Path), RowQuery),
    responses((status = 200, body = Page<RowView>), (status = 404, body = Problem)))]
async fn list_rows(
    State(state): State<AppState>,
    scope: TenantScope<perm::ImportsRead>,
    Path(ImportPath { import_id }): Path<ImportPath>,
    ApiQuery(q): ApiQuery<RowQuery>,
) -> Result<Json<Page<RowView>>, ApiError> {
    if let Some(s) = &q.status {
        if !ROW_STATUSES.contains(&s.as_str()) {
            return Err(ApiError::field(
                "status",
                format!("must be one of {}", ROW_STATUSES.join(", ")),
            ));
        }
    }
    let import = load(&state, scope.tenant_id(), import_id).await?;
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let rows = staged_rows::list(
        &state.store.pool,
        import.id,
        q.status.as_deref(),
        page.cursor()?,
        limit + 1,
    )
    .await?;
    Ok(Json(Page::from_rows(
        rows,
        limit,
        |r| r.id,
        |r| row_view(&import, r),
    )))
}

/// Spreadsheets run a cell that starts with one of these as a formula
/// (CSV injection); a leading apostrophe makes it text again.
fn defuse(value: &str) -> String {
    match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{value}"),
        _ => value.to_string(),
    }
}

const ERRORS_PER_PAGE: i64 = 1_000;

/// One line per error of every invalid row: row number, field, value, reason.
/// Streamed a page at a time, whatever the size of the batch.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/imports/{import_id}/errors.csv", tag = "imports", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("import_id" = Uuid, Path)),
    responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = Problem)))]
async fn errors_csv(
    State(state): State<AppState>,
    scope: TenantScope<perm::ImportsRead>,
    Path(ImportPath { import_id }): Path<ImportPath>,
) -> Result<Response, ApiError> {
    let import = load(&state, scope.tenant_id(), import_id).await?;
    let pool = state.store.pool.clone();
    // State: the last row written, or None once done.
    let pages = futures::stream::unfold(Some(0), move |after| {
        let pool = pool.clone();
        async move {
            let after = after?;
            let mut out = csv::Writer::from_writer(Vec::new());
            if after == 0 {
                let _ = out.write_record(["row_number", "field", "value", "reason"]);
            }
            let page =
                match staged_rows::errors_page(&pool, import_id, after, ERRORS_PER_PAGE).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(error = %e, "errors.csv page failed");
                        return Some((
                            Err(std::io::Error::other("errors.csv could not be read")),
                            None,
                        ));
                    }
                };
            let next = (page.len() as i64 == ERRORS_PER_PAGE)
                .then(|| page.last().map(|(n, _)| *n))
                .flatten();
            for (row, errors) in &page {
                for e in errors.iter() {
                    let _ = out.write_record([
                        row.to_string(),
                        defuse(&e.field),
                        defuse(&e.value),
                        defuse(&e.reason),
                    ]);
                }
            }
            let bytes = out.into_inner().unwrap_or_default();
            Some((Ok(Bytes::from(bytes)), next))
        }
    });
    let mut res = Body::from_stream(pages).into_response();
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"import-{}-errors.csv\"",
        import.id
    )) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    /// Row ids to approve, or "all_valid": every valid row that does not
    /// repeat an earlier row of the file.
    #[schema(schema_with = approve_schema)]
    approve: Option<serde_json::Value>,
    /// Row ids to reject.
    #[serde(default)]
    reject: Vec<Uuid>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ReviewResult {
    /// The dedupe job that takes the approved rows into the corpus; none
    /// when nothing was approved.
    job_id: Option<Uuid>,
    approved: u64,
    rejected: u64,
}

/// `approve` on the wire: a list of row ids, or the word "all_valid".
fn approve_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
    use utoipa::openapi::KnownFormat;
    OneOfBuilder::new()
        .item(
            ArrayBuilder::new().items(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
            ),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["all_valid"])),
        )
        .build()
        .into()
}

fn approve_spec(v: Option<serde_json::Value>) -> Result<Approve, ApiError> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(Approve::None),
        Some(serde_json::Value::String(s)) if s == "all_valid" => Ok(Approve::AllValid),
        Some(v @ serde_json::Value::Array(_)) => {
            serde_json::from_value(v).map(Approve::Rows).map_err(|_| {
                ApiError::field(
                    "approve",
                    "must be a list of row ids (UUIDs) or \"all_valid\"",
                )
            })
        }
        Some(_) => Err(ApiError::field(
            "approve",
            "must be a list of row ids (UUIDs) or \"all_valid\"",
        )),
    }
}

/// Approve and reject rows of a staged batch. Invalid rows cannot be
/// approved. Approval enqueues the dedupe job in the same transaction.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/imports/{import_id}/review", tag = "imports", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("import_id" = Uuid, Path)), request_body = ReviewRequest,
    responses((status = 202, body = ReviewResult), (status = 200, body = ReviewResult, description = "nothing to enqueue"),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant_id()))]
async fn review(
    State(state): State<AppState>,
    scope: TenantScope<perm::ImportsReview>,
    RequestId(request_id): RequestId,
    Path(ImportPath { import_id }): Path<ImportPath>,
    ApiJson(req): ApiJson<ReviewRequest>,
) -> Result<Response, ApiError> {
    let approve = approve_spec(req.approve)?;
    if let Approve::Rows(ids) = &approve {
        if let Some(both) = ids.iter().find(|id| req.reject.contains(id)) {
            return Err(ApiError::field(
                "reject",
                format!("row {both} is also listed in approve"),
            ));
        }
    }
    let approves = !matches!(approve, Approve::None);
    if !approves && req.reject.is_empty() {
        return Err(ApiError::field(
            "approve",
            "approve or reject at least one row",
        ));
    }
    let import = load(&state, scope.tenant_id(), import_id).await?;
    if import.status != ImportStatus::Staged {
        return Err(ApiError::Conflict(format!(
            "the import is {}; only staged imports can be reviewed",
            import.status.as_str()
        )));
    }
    if import.quarantined_at.is_some() {
        return Err(ApiError::Conflict("the import is quarantined".into()));
    }
    let how = match &approve {
        Approve::AllValid => "all_valid",
        Approve::Rows(_) => "rows",
        Approve::None => "none",
    };
    let mut tx = state.store.pool.begin().await?;
    let outcome = staged_rows::review(
        &mut tx,
        import.id,
        approve,
        &req.reject,
        Some(scope.principal.user_id.0),
    )
    .await?;
    audit::record(
        &mut *tx,
        scope.principal.event(
            Some(scope.tenant_id()),
            "import.reviewed",
            ("import", import.id.to_string()),
            json!({ "approve": how, "approved": outcome.approved, "rejected": outcome.rejected }),
            request_id.as_deref(),
        ),
    )
    .await?;
    let queued = if outcome.approved > 0 {
        Some(enqueue_dedupe(&state, &mut tx, &scope.principal, &scope.tenant, import.id).await?)
    } else {
        None
    };
    tx.commit().await?;
    let job_id = queued.as_ref().map(|(id, _)| *id);
    if let Some((_, pending)) = queued {
        state.ledger.push(pending).await;
    }
    let status = queued_status(job_id);
    let body = ReviewResult {
        job_id,
        approved: outcome.approved,
        rejected: outcome.rejected,
    };
    Ok((status, Json(body)).into_response())
}
