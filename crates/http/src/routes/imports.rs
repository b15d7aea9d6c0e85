//! Imports in: CSV upload, API import, manual entry.
//!
//! An upload is received whole before any database work: it streams to an
//! anonymous spool file (never into memory), counting bytes against the limit
//! and deciding the encoding as they pass; binary files are refused here.
//! Only then does one short transaction create the batch, copy the spooled
//! file into Postgres, charge the day's job and enqueue the `import` job, so
//! a slow client holds no pool connection and no usage row lock, and a failed
//! or abandoned upload leaves nothing behind. A tenant has a few upload slots
//! (`imports.max_concurrent_uploads_per_tenant`); the next is a 429.

use crate::auth::{perm, Principal, TenantScope};
use crate::enqueue::tenant_job;
use crate::error::{ApiError, Problem};
use crate::extract::{media_type, ApiJson, Created};
use crate::idempotency::{hash_parts, Keyed};
use crate::json_rows::{OneRow, Rows, Table};
use crate::state::AppState;
use crate::throttle::{self, Slot};
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bizcontacts_domain::contact::FieldError;
use bizcontacts_domain::PackageLimits;
use bizcontacts_ingest::{Layout, Sniffer, Stager};
use bizcontacts_jobs::{DedupeArgs, ImportArgs};
use bizcontacts_queue::args::JobArgs;
use bizcontacts_queue::ledger::Pending;
use bizcontacts_store::imports::{
    self, Encoding, Import, ImportStatus, NewImport, Progress, Source, CHUNK_BYTES,
};
use bizcontacts_store::staged_rows::{self, CopyRows, StagedRow};
use bizcontacts_store::tenants::Tenant;
use bizcontacts_store::{packages, usage};
use chrono::Utc;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

const CSV_ENDPOINT: &str = "POST /v1/tenants/{tenant_id}/imports/csv";
const API_ENDPOINT: &str = "POST /v1/tenants/{tenant_id}/imports";
const MANUAL_ENDPOINT: &str = "POST /v1/tenants/{tenant_id}/imports/manual";

/// The CSV upload route, whose body may be as large as an upload (see `app`).
pub fn upload_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upload_csv))
}

/// The API import route, with its own (lower) body limit (see `app`).
pub fn api_import_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(api_import))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(manual_entry))
}

/// A batch was accepted; its job stages the rows.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Accepted {
    import_id: Uuid,
    job_id: Option<Uuid>,
}

fn accepted(import: &Import, status: StatusCode) -> Response {
    (
        status,
        Json(Accepted {
            import_id: import.id,
            job_id: import.job_id,
        }),
    )
        .into_response()
}

/// Upload a CSV file: the raw body (`text/csv`) or the multipart field `file`.
/// The same `Idempotency-Key` with the same file returns the same batch; with
/// another file, or a key used on another endpoint, it is a 422.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/imports/csv", tag = "imports", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body(content_type = "text/csv", content = String),
    responses((status = 202, body = Accepted), (status = 200, body = Accepted, description = "idempotent replay"),
        (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant_id()))]
async fn upload_csv(
    State(state): State<AppState>,
    scope: TenantScope<perm::ImportsWrite>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let key = Keyed::from_headers(&headers, CSV_ENDPOINT)?;
    let earlier = match &key {
        Some(k) => k.earlier(&state.store.pool, scope.tenant_id()).await?,
        None => None,
    };
    check_declared_size(&headers, state.upload_limit)?;
    let media = media_type(&headers);
    let multipart = match media.as_str() {
        "multipart/form-data" => true,
        "text/csv" | "application/csv" | "text/plain" | "application/octet-stream" => false,
        _ => {
            return Err(ApiError::UnsupportedMediaType(
                "send the file as text/csv, or as multipart/form-data with a field named file"
                    .into(),
            ))
        }
    };
    // Refuse before reading a byte what could not be staged anyway (a
    // replay is answered whatever today's usage).
    if earlier.is_none() {
        limits_with_rows_left(&state, &scope).await?;
    }
    let _slot = upload_slot(&state, &scope).await?;
    let received = tokio::time::timeout(state.upload_timeout, async {
        if multipart {
            let mut form = Multipart::from_request(request, &state)
                .await
                .map_err(|e| ApiError::BadRequest(e.body_text()))?;
            while let Some(field) = form.next_field().await.map_err(multipart_error)? {
                if field.name() == Some("file") {
                    let filename = field.file_name().map(str::to_string);
                    let body = field.map(|r| r.map_err(multipart_error));
                    return Ok(spool(body, state.upload_limit).await?.named(filename));
                }
            }
            Err(ApiError::field(
                "file",
                "is required: send the CSV in a multipart field named file",
            ))
        } else {
            let body = request
                .into_body()
                .into_data_stream()
                .map(|r| r.map_err(|e| ApiError::body(&e)));
            spool(body, state.upload_limit).await
        }
    })
    .await
    .map_err(|_| {
        ApiError::RequestTimeout(format!(
            "the upload took longer than {} s; split the file or send it faster",
            state.upload_timeout.as_secs()
        ))
    })??;
    if let (Some(k), Some(used)) = (&key, &earlier) {
        let import = k.same(used, &received.hash)?;
        return replay(&state, &scope, import).await;
    }
    create_batch(&state, &scope, Source::Csv, key, received).await
}

/// One of the tenant's upload slots, held until the upload is stored.
async fn upload_slot(
    state: &AppState,
    scope: &TenantScope<perm::ImportsWrite>,
) -> Result<Slot, ApiError> {
    let cap = state.uploads_per_tenant;
    // The slot outlives a crashed intake by at most the upload timeout.
    let ttl = state.upload_timeout + std::time::Duration::from_secs(60);
    throttle::acquire_slot(
        &state.redis,
        &format!("uploads:{}", scope.tenant_id()),
        cap,
        ttl,
    )
    .await?
    .ok_or_else(|| ApiError::Throttled {
        limit: "concurrent_uploads_per_tenant",
        detail: format!(
            "this tenant already has {cap} uploads in progress; wait for one to finish"
        ),
        retry_after: 5,
    })
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge("the upload is larger than the limit".into())
    } else if matches!(ApiError::body(&e), ApiError::RequestTimeout(_)) {
        ApiError::body(&e)
    } else {
        ApiError::BadRequest(format!("malformed multipart body: {}", e.body_text()))
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the upload is larger than the limit of {limit} bytes; split the file"
    ))
}

/// Refuse at once what says it is too large, before reading a byte.
fn check_declared_size(headers: &HeaderMap, limit: usize) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit as u64 => Err(too_large(limit)),
        _ => Ok(()),
    }
}

/// The batch an earlier request with the same key created (200).
async fn replay(
    state: &AppState,
    scope: &TenantScope<perm::ImportsWrite>,
    import_id: Uuid,
) -> Result<Response, ApiError> {
    let import = imports::get(&state.store.pool, Some(scope.tenant_id()), import_id).await?;
    Ok(accepted(&import, StatusCode::OK))
}

/// After losing a race for `key` to a concurrent request: what it created,
/// if it was the same request (else the key's 422).
async fn raced(
    state: &AppState,
    scope: &TenantScope<perm::ImportsWrite>,
    key: &Keyed,
    hash: &[u8],
) -> Result<Uuid, ApiError> {
    key.replayed(&state.store.pool, scope.tenant_id(), hash)
        .await?
        .ok_or_else(|| {
            ApiError::Conflict(
                "a request with this Idempotency-Key is in progress; retry it".into(),
            )
        })
}

/// The tenant's limits; a 429 up front when the day's import rows are already
/// used up: the upload would only produce a batch with nothing staged.
async fn limits_with_rows_left(
    state: &AppState,
    scope: &TenantScope<perm::ImportsWrite>,
) -> Result<PackageLimits, ApiError> {
    let limits = scope.limits.clone();
    let used = usage::get(
        &state.store.pool,
        scope.tenant_id(),
        Utc::now().date_naive(),
    )
    .await?;
    if used.import_rows >= limits.import_rows_per_day {
        return Err(rows_used_up(&limits));
    }
    Ok(limits)
}

/// Create the batch, store the upload, charge and enqueue its job: one short
/// transaction, all or nothing, once the whole upload has arrived. The usage
/// row is locked last, for the few statements after it.
async fn create_batch(
    state: &AppState,
    scope: &TenantScope<perm::ImportsWrite>,
    source: Source,
    key: Option<Keyed>,
    mut received: Received,
) -> Result<Response, ApiError> {
    limits_with_rows_left(state, scope).await?;
    let mut tx = state.store.pool.begin().await?;
    let new = NewImport {
        tenant_id: scope.tenant_id(),
        source,
        status: ImportStatus::Queued,
        idempotency_key: key.as_ref().map(|k| k.key.clone()),
        filename: received.filename.take(),
        created_by: Some(scope.principal.user_id),
    };
    let created = imports::create(&mut tx, new).await?;
    let recorded = match (&created, &key) {
        (Some(import), Some(k)) => {
            k.record(&mut *tx, scope.tenant_id(), &received.hash, import.id)
                .await?
        }
        (created, _) => created.is_some(),
    };
    let (Some(import), true) = (created, recorded) else {
        // A concurrent request with the same key won: answer as it did.
        tx.rollback().await?;
        let k = key.as_ref().expect("only a keyed request can lose a race");
        let import = raced(state, scope, k, &received.hash).await?;
        return replay(state, scope, import).await;
    };
    received.copy_into(&mut tx, import.id).await?;
    let (job, pending, usage) = tenant_job(
        state,
        &mut tx,
        &scope.tenant,
        &scope.principal,
        ImportArgs {
            import_id: import.id,
        }
        .job(),
    )
    .await?;
    let job_id = job.job.id;
    imports::set_upload(
        &mut *tx,
        import.id,
        received.size,
        received.encoding,
        Some(job_id),
    )
    .await?;
    tx.commit().await?;
    state.ledger.push(pending).await;
    tracing::info!(import_id = %import.id, bytes = received.size, encoding = received.encoding.as_str(), "import accepted");
    let body = Accepted {
        import_id: import.id,
        job_id: Some(job_id),
    };
    Ok(usage.on((StatusCode::ACCEPTED, Json(body)).into_response()))
}

/// Hand a batch's approved rows to its `dedupe` job (a review and a
/// reviewer's match decisions both do). The job counts against the tenant's
/// jobs per day like any other: over the limit, the whole request is a 429
/// and its decisions are not written.
pub(crate) async fn enqueue_dedupe(
    state: &AppState,
    tx: &mut PgConnection,
    by: &Principal,
    tenant: &Tenant,
    import_id: Uuid,
) -> Result<(Uuid, Pending), ApiError> {
    let (job, pending, _) =
        tenant_job(state, tx, tenant, by, DedupeArgs::batch(import_id).job()).await?;
    Ok((job.job.id, pending))
}

/// 202 when a job was queued for the request's work, 200 when nothing was.
pub(crate) fn queued_status(job: Option<Uuid>) -> StatusCode {
    if job.is_some() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    }
}

/// The 429 once the day's import rows are used up.
fn rows_used_up(limits: &PackageLimits) -> ApiError {
    ApiError::DailyLimit {
        limit: "import_rows_per_day",
        max: limits.import_rows_per_day,
        detail: format!(
            "the package allows {} import rows per day; the limit resets at 00:00 UTC",
            limits.import_rows_per_day
        ),
    }
}

/// An upload received whole: where its bytes wait, how many, which encoding.
struct Received {
    data: Box<dyn AsyncRead + Send + Unpin>,
    size: i64,
    encoding: Encoding,
    filename: Option<String>,
    /// SHA-256 of the bytes, for the idempotency key's "same request" check.
    hash: Vec<u8>,
}

impl Received {
    /// Bytes already in memory (an API import's CSV).
    fn in_memory(bytes: Vec<u8>) -> Result<Self, ApiError> {
        let mut sniffer = Sniffer::default();
        sniffer.push(&bytes);
        let encoding = sniffer.finish().map_err(|e| ApiError::field("file", e.0))?;
        Ok(Received {
            size: bytes.len() as i64,
            hash: Sha256::digest(&bytes).to_vec(),
            data: Box::new(std::io::Cursor::new(bytes)),
            encoding,
            filename: None,
        })
    }

    fn named(self, filename: Option<String>) -> Self {
        Received { filename, ..self }
    }

    /// Copy the bytes into the batch's upload chunks, in the caller's
    /// transaction. They come from local disk or memory: no client can slow
    /// this down.
    async fn copy_into(&mut self, tx: &mut PgConnection, import_id: Uuid) -> Result<(), ApiError> {
        let mut chunk = vec![0u8; CHUNK_BYTES];
        let mut seq = 0i32;
        loop {
            let mut filled = 0;
            while filled < CHUNK_BYTES {
                let n = self.data.read(&mut chunk[filled..]).await.map_err(|e| {
                    ApiError::Internal(anyhow::anyhow!("reading the spooled upload: {e}"))
                })?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                return Ok(());
            }
            imports::append_chunk(&mut *tx, import_id, seq, &chunk[..filled]).await?;
            seq += 1;
            if filled < CHUNK_BYTES {
                return Ok(());
            }
        }
    }
}

/// Receive the body into an anonymous spool file (removed by the OS however
/// the process ends), counting bytes against `limit` and deciding the
/// encoding as they pass. Holds no database connection.
async fn spool(
    body: impl Stream<Item = Result<Bytes, ApiError>>,
    limit: usize,
) -> Result<Received, ApiError> {
    let spool_error = |e: std::io::Error| ApiError::Internal(anyhow::anyhow!("upload spool: {e}"));
    let file = tokio::task::spawn_blocking(tempfile::tempfile)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(spool_error)?;
    let mut file =
        tokio::io::BufWriter::with_capacity(CHUNK_BYTES, tokio::fs::File::from_std(file));
    let mut body = std::pin::pin!(body);
    let mut sniffer = Sniffer::default();
    let mut hash = Sha256::new();
    let mut total = 0usize;
    while let Some(piece) = body.next().await {
        let piece = piece?;
        total += piece.len();
        if total > limit {
            return Err(too_large(limit));
        }
        sniffer.push(&piece);
        hash.update(&piece);
        file.write_all(&piece).await.map_err(spool_error)?;
    }
    let encoding = sniffer.finish().map_err(|e| ApiError::field("file", e.0))?;
    file.flush().await.map_err(spool_error)?;
    let mut file = file.into_inner();
    file.seek(std::io::SeekFrom::Start(0))
        .await
        .map_err(spool_error)?;
    Ok(Received {
        data: Box::new(tokio::io::BufReader::with_capacity(CHUNK_BYTES, file)),
        size: total as i64,
        encoding,
        filename: None,
        hash: hash.finalize().to_vec(),
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiImport {
    /// Contacts as objects of field name to value (`company_name`, `email`,
    /// ...; the same names and synonyms as CSV headers). Other fields are kept
    /// as extra data.
    #[schema(value_type = Vec<Object>, min_items = 1, max_items = 10000)]
    rows: Rows,
}

/// Import rows sent as JSON; they are staged by an `import` job exactly like
/// the rows of a CSV file.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/imports", tag = "imports", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)), request_body = ApiImport,
    responses((status = 202, body = Accepted), (status = 200, body = Accepted, description = "idempotent replay"),
        (status = 413, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant_id()))]
async fn api_import(
    State(state): State<AppState>,
    scope: TenantScope<perm::ImportsWrite>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ApiImport>,
) -> Result<Response, ApiError> {
    let key = Keyed::from_headers(&headers, API_ENDPOINT)?;
    let max = state.api_import_max_rows;
    let Rows(table) = req.rows;
    if table.rows.is_empty() || table.rows.len() > max {
        return Err(ApiError::field(
            "rows",
            format!("must hold 1 to {max} rows (got {}); send larger sets as several imports or a CSV upload", table.rows.len()),
        ));
    }
    if !table.errors.is_empty() {
        return Err(ApiError::Validation(table.errors));
    }
    let _slot = upload_slot(&state, &scope).await?;
    let Table { columns, rows, .. } = table.padded();
    // The rows become a CSV upload, so one reader and one job serve both paths.
    let mut csv = csv::Writer::from_writer(Vec::new());
    let write = |w: &mut csv::Writer<Vec<u8>>| -> csv::Result<()> {
        w.write_record(&columns)?;
        for row in &rows {
            w.write_record(row)?;
        }
        w.flush()?;
        Ok(())
    };
    write(&mut csv).map_err(|e| ApiError::Internal(e.into()))?;
    let bytes = csv
        .into_inner()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))?;
    create_batch(
        &state,
        &scope,
        Source::Api,
        key,
        Received::in_memory(bytes)?,
    )
    .await
}

/// A manually entered contact, validated at once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ManualEntry {
    import_id: Uuid,
    row_id: Uuid,
    /// `valid` or `invalid`.
    status: &'static str,
    errors: Vec<FieldError>,
}

/// Enter one contact by hand. It is validated synchronously and staged for
/// review in a batch of its own; errors come back in the 201, not as a 4xx,
/// because the row is staged either way.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/imports/manual", tag = "imports", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body(content = Object, description = "field name to value, as in an API import row"),
    responses((status = 201, body = ManualEntry), (status = 200, body = ManualEntry, description = "idempotent replay"),
        (status = 422, body = Problem), (status = 429, body = Problem)))]
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant_id()))]
async fn manual_entry(
    State(state): State<AppState>,
    scope: TenantScope<perm::ImportsWrite>,
    headers: HeaderMap,
    ApiJson(OneRow(row)): ApiJson<OneRow>,
) -> Result<Response, ApiError> {
    let key = Keyed::from_headers(&headers, MANUAL_ENDPOINT)?;
    let hash = hash_parts(
        row.columns
            .iter()
            .chain(row.rows.iter().flatten())
            .map(String::as_bytes),
    );
    if let Some(k) = &key {
        if let Some(import) = k
            .replayed(&state.store.pool, scope.tenant_id(), &hash)
            .await?
        {
            return manual_replay(&state, import).await;
        }
    }
    let (layout, staged) = stage_json_row(&row, "body")?;
    let errors = staged.errors.clone();
    let mut tx = state.store.pool.begin().await?;
    let staged_row = stage_single_row(
        &mut tx,
        (&scope.tenant, &scope.principal),
        Source::Manual,
        key.as_ref().map(|k| k.key.clone()),
        &layout,
        &staged,
    )
    .await?;
    let recorded = match (&staged_row, &key) {
        (Some((import, _)), Some(k)) => {
            k.record(&mut *tx, scope.tenant_id(), &hash, import.id)
                .await?
        }
        (staged_row, _) => staged_row.is_some(),
    };
    let (Some((import, row_id)), true) = (staged_row, recorded) else {
        tx.rollback().await?;
        let k = key.as_ref().expect("only a keyed request can lose a race");
        let import = raced(&state, &scope, k, &hash).await?;
        return manual_replay(&state, import).await;
    };
    tx.commit().await?;
    Ok(Created(manual_view(import.id, row_id, errors)).into_response())
}

/// The entry an earlier request with the same key made (200).
async fn manual_replay(state: &AppState, import_id: Uuid) -> Result<Response, ApiError> {
    let rows = staged_rows::list(&state.store.pool, import_id, None, None, 1).await?;
    let first = rows.first().ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!("manual batch {import_id} has no row"))
    })?;
    let errors = first.errors.clone().unwrap_or_default();
    Ok((
        StatusCode::OK,
        Json(manual_view(import_id, first.id, errors)),
    )
        .into_response())
}

/// Validate one JSON row as a one-line CSV file would be; `path` names the
/// request field when it names no contact field.
pub(crate) fn stage_json_row(
    row: &Table,
    path: &str,
) -> Result<(Layout, StagedRow<'static>), ApiError> {
    if !row.errors.is_empty() {
        return Err(ApiError::Validation(row.errors.clone()));
    }
    let layout =
        Layout::from_header(b',', row.columns.iter().map(String::as_str)).map_err(|_| {
            ApiError::field(
                path,
                "names no contact field; use company_name, email, phone, website, ...",
            )
        })?;
    let record = csv::StringRecord::from(row.rows[0].clone());
    let staged = Stager::new(&layout).stage(1, &record).into_owned();
    Ok((layout, staged))
}

/// Stage one validated row as a batch of its own, ready for review, in the
/// caller's transaction; it counts against the day's import rows. `None`
/// when another batch of the tenant has the idempotency key `key`.
pub(crate) async fn stage_single_row(
    tx: &mut PgConnection,
    (tenant, by): (&Tenant, &Principal),
    source: Source,
    key: Option<String>,
    layout: &Layout,
    staged: &StagedRow<'_>,
) -> Result<Option<(Import, Uuid)>, ApiError> {
    // Through the caller's transaction: a second pool connection taken while
    // this one is held can wait forever once the pool is busy.
    let limits = packages::get(&mut *tx, tenant.package).await?;
    let new = NewImport {
        tenant_id: tenant.id,
        source,
        status: ImportStatus::Processing,
        idempotency_key: key,
        filename: None,
        created_by: Some(by.user_id),
    };
    let Some(import) = imports::create(&mut *tx, new).await? else {
        return Ok(None);
    };
    let granted = usage::consume_import_rows(
        &mut *tx,
        tenant.id,
        Utc::now().date_naive(),
        1,
        limits.import_rows_per_day,
    )
    .await?;
    if granted == 0 {
        return Err(rows_used_up(&limits));
    }
    imports::set_layout(
        &mut *tx,
        import.id,
        ",",
        &layout.header,
        &layout.mapping_names(),
    )
    .await?;
    let mut rows = CopyRows::new(import.id);
    let row_id = rows.push(staged);
    staged_rows::copy(&mut *tx, &rows, 1).await?;
    let valid = staged.errors.is_empty() as i32;
    imports::advance(
        &mut *tx,
        import.id,
        Progress {
            after_row: 0,
            last_row: 1,
            valid,
            invalid: 1 - valid,
            not_staged: 0,
        },
    )
    .await?;
    imports::finish(&mut *tx, import.id, ImportStatus::Staged, None).await?;
    Ok(Some((import, row_id)))
}

fn manual_view(import_id: Uuid, row_id: Uuid, errors: Vec<FieldError>) -> ManualEntry {
    ManualEntry {
        import_id,
        row_id,
        status: if errors.is_empty() {
            "valid"
        } else {
            "invalid"
        },
        errors,
    }
}
