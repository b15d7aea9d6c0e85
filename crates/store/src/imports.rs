//! Import batches and their uploaded bytes.
//!
//! A batch is created together with its job (one transaction); the upload is
//! appended in chunks inside that same transaction, so a failed upload leaves
//! nothing behind. The job then records its progress here: `rows_done` is the
//! checkpoint a resumed run starts after, written in the same transaction as
//! the rows it covers (see [`crate::staged_rows`]).

use crate::error::parse_stored;
use crate::{Result, StoreError};
use bizcontacts_domain::{TenantId, UserId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// Largest piece of an upload kept in one row.
pub const CHUNK_BYTES: usize = 1 << 20;

pub use bizcontacts_domain::batch::{Encoding, ImportStatus, Source};

#[derive(Debug, Clone, Serialize)]
pub struct Import {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub source: Source,
    pub status: ImportStatus,
    pub job_id: Option<Uuid>,
    pub filename: Option<String>,
    pub byte_size: i64,
    pub encoding: Encoding,
    pub delimiter: Option<String>,
    pub header: Option<Vec<String>>,
    pub mapping: Option<Vec<Option<String>>>,
    pub rows_done: i32,
    pub counts: Counts,
    pub message: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Set when a data steward withdrew the batch's contributions.
    pub quarantined_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct Counts {
    #[sqlx(rename = "total_rows")]
    pub total: i32,
    #[sqlx(rename = "valid_rows")]
    pub valid: i32,
    #[sqlx(rename = "invalid_rows")]
    pub invalid: i32,
    #[sqlx(rename = "duplicate_rows")]
    pub duplicate_in_batch: i32,
    /// Rows read but not staged: the package's import rows per day ran out.
    #[sqlx(rename = "not_staged_rows")]
    pub not_staged: i32,
    #[sqlx(rename = "approved_rows")]
    pub approved: i32,
    #[sqlx(rename = "rejected_rows")]
    pub rejected: i32,
    #[sqlx(rename = "merged_rows")]
    pub merged: i32,
    #[sqlx(rename = "created_rows")]
    pub created: i32,
    /// Approved rows waiting for a reviewer's match decision.
    #[sqlx(rename = "possible_rows")]
    pub possible_match: i32,
}

#[derive(sqlx::FromRow)]
struct ImportRow {
    id: Uuid,
    tenant_id: Uuid,
    source: String,
    status: String,
    job_id: Option<Uuid>,
    filename: Option<String>,
    byte_size: i64,
    encoding: String,
    delimiter: Option<String>,
    header: Option<Vec<String>>,
    mapping: Option<Vec<Option<String>>>,
    rows_done: i32,
    #[sqlx(flatten)]
    counts: Counts,
    message: Option<String>,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    quarantined_at: Option<DateTime<Utc>>,
}

impl TryFrom<ImportRow> for Import {
    type Error = StoreError;
    fn try_from(r: ImportRow) -> Result<Self> {
        Ok(Import {
            id: r.id,
            tenant_id: TenantId(r.tenant_id),
            source: parse_stored("source", &r.source)?,
            status: parse_stored("status", &r.status)?,
            job_id: r.job_id,
            filename: r.filename,
            byte_size: r.byte_size,
            encoding: parse_stored("encoding", &r.encoding)?,
            delimiter: r.delimiter,
            header: r.header,
            mapping: r.mapping,
            rows_done: r.rows_done,
            counts: r.counts,
            message: r.message,
            created_by: r.created_by,
            created_at: r.created_at,
            finished_at: r.finished_at,
            quarantined_at: r.quarantined_at,
        })
    }
}

const COLUMNS: &str = "id, tenant_id, source, status, job_id, filename, byte_size, encoding, delimiter,
    header, mapping, rows_done, total_rows, valid_rows, invalid_rows, duplicate_rows, not_staged_rows,
    approved_rows, rejected_rows, merged_rows, created_rows, message, created_by, created_at, finished_at,
    quarantined_at,
    (SELECT count(DISTINCT m.row_id)::int FROM match_candidates m JOIN staged_rows s ON s.id = m.row_id
      WHERE s.import_id = imports.id AND m.decision IS NULL AND s.status = 'approved') AS possible_rows";

pub struct NewImport {
    pub tenant_id: TenantId,
    pub source: Source,
    pub status: ImportStatus,
    pub idempotency_key: Option<String>,
    pub filename: Option<String>,
    pub created_by: Option<UserId>,
}

/// Create a batch; `None` when the tenant already has one with this idempotency key.
pub async fn create(db: &mut PgConnection, new: NewImport) -> Result<Option<Import>> {
    let row = sqlx::query_as::<_, ImportRow>(&format!(
        "INSERT INTO imports (id, tenant_id, source, status, idempotency_key, filename, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
         RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(new.tenant_id.0)
    .bind(new.source.as_str())
    .bind(new.status.as_str())
    .bind(&new.idempotency_key)
    .bind(&new.filename)
    .bind(new.created_by.map(|u| u.0))
    .fetch_optional(db)
    .await?;
    row.map(TryInto::try_into).transpose()
}

pub async fn find_by_key(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    key: &str,
) -> Result<Option<Import>> {
    sqlx::query_as::<_, ImportRow>(&format!(
        "SELECT {COLUMNS} FROM imports WHERE tenant_id = $1 AND idempotency_key = $2"
    ))
    .bind(tenant.0)
    .bind(key)
    .fetch_optional(db)
    .await?
    .map(TryInto::try_into)
    .transpose()
}

/// A batch of `tenant` (`None`: any tenant, for jobs and data stewards).
pub async fn get(db: impl PgExecutor<'_>, tenant: Option<TenantId>, id: Uuid) -> Result<Import> {
    sqlx::query_as::<_, ImportRow>(&format!(
        "SELECT {COLUMNS} FROM imports WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)"
    ))
    .bind(id)
    .bind(tenant.map(|t| t.0))
    .fetch_optional(db)
    .await?
    .ok_or(StoreError::NotFound)?
    .try_into()
}

/// The tenant's batches, newest first, after `cursor`.
pub async fn list(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    cursor: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Import>> {
    sqlx::query_as::<_, ImportRow>(&format!(
        "SELECT {COLUMNS} FROM imports WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3"
    ))
    .bind(tenant.0)
    .bind(cursor)
    .bind(limit)
    .fetch_all(db)
    .await?
    .into_iter()
    .map(TryInto::try_into)
    .collect()
}

/// Store piece `seq` of the upload (in the transaction that creates the batch).
pub async fn append_chunk(db: impl PgExecutor<'_>, id: Uuid, seq: i32, data: &[u8]) -> Result<()> {
    sqlx::query("INSERT INTO import_uploads (import_id, seq, data) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(seq)
        .bind(data)
        .execute(db)
        .await?;
    Ok(())
}

/// Piece `seq` of the upload, or `None` past the end.
pub async fn chunk(db: impl PgExecutor<'_>, id: Uuid, seq: i32) -> Result<Option<Vec<u8>>> {
    Ok(
        sqlx::query_scalar("SELECT data FROM import_uploads WHERE import_id = $1 AND seq = $2")
            .bind(id)
            .bind(seq)
            .fetch_optional(db)
            .await?,
    )
}

/// Record the upload's size and detected encoding, and the job that stages it.
pub async fn set_upload(
    db: impl PgExecutor<'_>,
    id: Uuid,
    byte_size: i64,
    encoding: Encoding,
    job_id: Option<Uuid>,
) -> Result<()> {
    sqlx::query("UPDATE imports SET byte_size = $2, encoding = $3, job_id = $4 WHERE id = $1")
        .bind(id)
        .bind(byte_size)
        .bind(encoding.as_str())
        .bind(job_id)
        .execute(db)
        .await?;
    Ok(())
}

/// The layout the job detected; written again, identically, by a resumed run.
pub async fn set_layout(
    db: impl PgExecutor<'_>,
    id: Uuid,
    delimiter: &str,
    header: &[String],
    mapping: &[Option<String>],
) -> Result<()> {
    sqlx::query(
        "UPDATE imports SET status = 'processing', delimiter = $2, header = $3, mapping = $4
         WHERE id = $1 AND status IN ('queued', 'processing')",
    )
    .bind(id)
    .bind(delimiter)
    .bind(header)
    .bind(mapping)
    .execute(db)
    .await?;
    Ok(())
}

/// What one staged chunk adds to the batch's counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// The checkpoint this chunk follows (the last row of the chunk before).
    pub after_row: i32,
    /// Row number of the last row this chunk read (the new checkpoint).
    pub last_row: i32,
    pub valid: i32,
    pub invalid: i32,
    pub not_staged: i32,
}

/// Advance the checkpoint; call in the transaction that staged the rows.
/// Fails with `Conflict` unless the batch stands at `after_row`, the
/// checkpoint the chunk before committed: a chunk whose predecessor did not
/// commit cannot commit either.
pub async fn advance(db: impl PgExecutor<'_>, id: Uuid, p: Progress) -> Result<()> {
    let moved = sqlx::query(
        "UPDATE imports SET rows_done = $3, valid_rows = valid_rows + $4,
             invalid_rows = invalid_rows + $5, not_staged_rows = not_staged_rows + $6,
             total_rows = total_rows + $4 + $5
         WHERE id = $1 AND rows_done = $2",
    )
    .bind(id)
    .bind(p.after_row)
    .bind(p.last_row)
    .bind(p.valid)
    .bind(p.invalid)
    .bind(p.not_staged)
    .execute(db)
    .await?
    .rows_affected();
    if moved == 0 {
        return Err(StoreError::Conflict(format!(
            "import {id} is no longer at row {}: an earlier chunk did not commit",
            p.after_row
        )));
    }
    Ok(())
}

/// Record how many rows repeat an earlier row (see `staged_rows::flag_duplicates`).
pub async fn set_duplicates(db: impl PgExecutor<'_>, id: Uuid, n: i32) -> Result<()> {
    sqlx::query("UPDATE imports SET duplicate_rows = $2 WHERE id = $1")
        .bind(id)
        .bind(n)
        .execute(db)
        .await?;
    Ok(())
}

/// Close a batch: staged (ready for review), failed or cancelled, with a
/// message for the user. The upload is no longer needed either way.
pub async fn finish(
    db: &mut PgConnection,
    id: Uuid,
    status: ImportStatus,
    message: Option<&str>,
) -> Result<()> {
    sqlx::query("UPDATE imports SET status = $2, message = $3, finished_at = now() WHERE id = $1")
        .bind(id)
        .bind(status.as_str())
        .bind(message)
        .execute(&mut *db)
        .await?;
    sqlx::query("DELETE FROM import_uploads WHERE import_id = $1")
        .bind(id)
        .execute(&mut *db)
        .await?;
    Ok(())
}

/// True once the batch was quarantined (or when it no longer exists).
pub async fn is_quarantined(db: impl PgExecutor<'_>, id: Uuid) -> Result<bool> {
    let at: Option<Option<DateTime<Utc>>> =
        sqlx::query_scalar("SELECT quarantined_at FROM imports WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await?;
    Ok(at.is_none_or(|a| a.is_some()))
}

/// Withdraw a batch from the corpus: mark it, then derive every contact it
/// contributed to again from its other rows (a contact left with none goes
/// out of search). Returns (contacts touched, contacts withdrawn); `None`
/// when the batch was already quarantined.
pub async fn quarantine(
    tx: &mut PgConnection,
    id: Uuid,
    by: Option<UserId>,
    reason: &str,
) -> Result<Option<(usize, u64)>> {
    // The corpus lock first, as dedupe takes it: the other order could deadlock.
    crate::corpus::lock(tx).await?;
    let marked = sqlx::query(
        "UPDATE imports SET quarantined_at = now(), quarantined_by = $2, quarantine_reason = $3
         WHERE id = $1 AND quarantined_at IS NULL",
    )
    .bind(id)
    .bind(by.map(|b| b.0))
    .bind(reason)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if marked == 0 {
        return Ok(None);
    }
    let touched: Vec<Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT contact_id FROM staged_rows WHERE import_id = $1 AND contact_id IS NOT NULL ORDER BY 1",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    let mut withdrawn = 0;
    for chunk in touched.chunks(5_000) {
        withdrawn += crate::corpus::rederive(tx, chunk).await?;
    }
    // Its rows waiting for a match decision wait no more.
    sqlx::query(
        "DELETE FROM match_candidates m USING staged_rows s
         WHERE s.id = m.row_id AND s.import_id = $1 AND m.decision IS NULL",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    Ok(Some((touched.len(), withdrawn)))
}

/// Where a CRM pull's paging stands (committed with the page's rows).
pub async fn pull_cursor(
    db: impl PgExecutor<'_>,
    import_id: Uuid,
) -> Result<Option<serde_json::Value>> {
    Ok(
        sqlx::query_scalar("SELECT pull_cursor FROM imports WHERE id = $1")
            .bind(import_id)
            .fetch_one(db)
            .await?,
    )
}

pub async fn set_pull_cursor(
    db: impl PgExecutor<'_>,
    import_id: Uuid,
    cursor: &serde_json::Value,
) -> Result<()> {
    sqlx::query("UPDATE imports SET pull_cursor = $2 WHERE id = $1")
        .bind(import_id)
        .bind(cursor)
        .execute(db)
        .await?;
    Ok(())
}

/// The job that stages the batch (a CRM pull's, which has no upload).
pub async fn set_job(db: impl PgExecutor<'_>, id: Uuid, job_id: Uuid) -> Result<()> {
    sqlx::query("UPDATE imports SET job_id = $2 WHERE id = $1")
        .bind(id)
        .bind(job_id)
        .execute(db)
        .await?;
    Ok(())
}
