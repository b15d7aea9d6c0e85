//! Staged rows: what an import received, normalized, with its errors and the
//! reviewer's decision.
//!
//! Rows are written with `COPY` (the fastest way into Postgres), encoded by
//! [`CopyRows`] away from the async runtime; the `(import_id, row_number)`
//! unique key makes a row that a resumed run would stage twice an error
//! instead of a duplicate.

use crate::corpus::{columns, Values};
use crate::{Result, StoreError};
use bizcontacts_domain::contact::{Contact, FieldError, COLUMN_COUNT};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};
use std::borrow::Cow;
use uuid::Uuid;

/// One row ready to stage. Raw values borrow from the record they were read
/// from unless they had to change (a copy per cell showed in import profiles).
pub struct StagedRow<'a> {
    pub row_number: i32,
    pub raw: Vec<Cow<'a, str>>,
    pub contact: Contact,
    pub errors: Vec<FieldError>,
    pub fingerprint: [u8; 16],
}

impl StagedRow<'_> {
    /// The row, free of the record it was read from.
    pub fn into_owned(self) -> StagedRow<'static> {
        StagedRow {
            row_number: self.row_number,
            raw: self
                .raw
                .into_iter()
                .map(|v| Cow::Owned(v.into_owned()))
                .collect(),
            contact: self.contact,
            errors: self.errors,
            fingerprint: self.fingerprint,
        }
    }
}

/// The columns [`CopyRows::push`] encodes, in its order.
fn copy_columns() -> String {
    format!(
        "id, import_id, row_number, status, raw, {}, errors, fingerprint",
        columns("")
    )
}

/// Rows encoded in COPY's binary format, ready for [`copy`]. Binary rather
/// than text: Postgres takes uuids, numbers and the fingerprint as they are
/// instead of parsing their text forms (with the old `text[]` raw values,
/// about a fifth of its time per staged row).
pub struct CopyRows {
    import_id: Uuid,
    buf: Vec<u8>,
    /// Byte offset in `buf` where each row starts, so a prefix can be sent.
    starts: Vec<usize>,
    valid: Vec<bool>,
    numbers: Vec<i32>,
    fingerprints: Vec<[u8; 16]>,
}

/// Start of every binary COPY stream: signature, flags, header extension length.
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// End of the stream: a tuple of -1 fields.
const COPY_TRAILER: &[u8] = &(-1i16).to_be_bytes();
/// Fields per row: as many as [`copy_columns`] names.
const COPY_FIELDS: i16 = (COLUMN_COUNT + 7) as i16;
/// Version byte before the JSON text of a binary `jsonb`.
const JSONB_VERSION: u8 = 1;

/// One field: its length, then its bytes.
fn field(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    buf.extend_from_slice(bytes);
}

/// A text field. Postgres text cannot hold NUL; ingestion replaces it before
/// here, and any that slipped through becomes U+FFFD rather than failing the
/// whole chunk.
fn text(buf: &mut Vec<u8>, s: &str) {
    if s.as_bytes().contains(&0) {
        field(buf, s.replace('\0', "\u{FFFD}").as_bytes());
    } else {
        field(buf, s.as_bytes());
    }
}

fn opt_text(buf: &mut Vec<u8>, v: Option<&str>) {
    match v {
        Some(v) => text(buf, v),
        None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
    }
}

/// Separates a row's raw values in the stored text (U+001F, "unit separator").
const RAW_SEPARATOR: char = '\u{1f}';

/// A row's raw values as one text field: joined by [`RAW_SEPARATOR`], with
/// `\` and the separator escaped (`\\`, `\s`) inside values, written straight
/// into the COPY buffer. One text rather than a `text[]`: the array's
/// per-element headers and alignment made up a sixth of a staged row, and
/// Postgres parsed every element. NUL, which text cannot hold, becomes U+FFFD
/// (ingestion replaces it before here).
fn join_raw(buf: &mut Vec<u8>, values: &[Cow<'_, str>]) {
    let at = buf.len();
    buf.extend_from_slice(&0i32.to_be_bytes()); // length, set below
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            buf.push(RAW_SEPARATOR as u8);
        }
        let bytes = v.as_bytes();
        if !bytes.iter().any(|b| matches!(b, b'\\' | 0x1f | 0)) {
            buf.extend_from_slice(bytes);
            continue;
        }
        // All three are ASCII, so byte-wise escaping keeps the text UTF-8.
        for &b in bytes {
            match b {
                b'\\' => buf.extend_from_slice(b"\\\\"),
                0x1f => buf.extend_from_slice(b"\\s"),
                0 => buf.extend_from_slice("\u{FFFD}".as_bytes()),
                b => buf.push(b),
            }
        }
    }
    let len = (buf.len() - at - 4) as i32;
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// The values [`join_raw`] joined.
fn split_raw(joined: &str) -> Vec<String> {
    let mut values = vec![String::new()];
    let mut chars = joined.chars();
    while let Some(c) = chars.next() {
        let current = values.last_mut().expect("never empty");
        match c {
            RAW_SEPARATOR => values.push(String::new()),
            '\\' => match chars.next() {
                Some('s') => current.push(RAW_SEPARATOR),
                Some(other) => current.push(other),
                None => current.push('\\'),
            },
            c => current.push(c),
        }
    }
    values
}

/// A row's values as received, in the order of its batch's columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RawValues(pub Vec<String>);

impl From<String> for RawValues {
    fn from(joined: String) -> Self {
        Self(split_raw(&joined))
    }
}

impl CopyRows {
    pub fn new(import_id: Uuid) -> Self {
        Self {
            import_id,
            buf: Vec::with_capacity(1 << 20),
            starts: Vec::new(),
            valid: Vec::new(),
            numbers: Vec::new(),
            fingerprints: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Move `other`'s rows after these (rows encoded on several threads).
    pub fn append(&mut self, other: CopyRows) {
        let offset = self.buf.len();
        self.buf.extend_from_slice(&other.buf);
        self.starts.extend(other.starts.iter().map(|s| s + offset));
        self.valid.extend(other.valid);
        self.numbers.extend(other.numbers);
        self.fingerprints.extend(other.fingerprints);
    }

    /// Rows among the first `n` that are valid.
    pub fn valid_in_first(&self, n: usize) -> usize {
        self.valid[..n].iter().filter(|v| **v).count()
    }

    /// Each row's fingerprint, in order.
    pub fn fingerprints(&self) -> &[[u8; 16]] {
        &self.fingerprints
    }

    /// The row number of the `n`th row (from 0), if there are that many.
    pub fn row_number(&self, n: usize) -> Option<i32> {
        self.numbers.get(n).copied()
    }

    /// Encode a row; returns the id it will have.
    pub fn push(&mut self, row: &StagedRow<'_>) -> Uuid {
        let id = Uuid::now_v7();
        self.starts.push(self.buf.len());
        self.valid.push(row.errors.is_empty());
        self.numbers.push(row.row_number);
        self.fingerprints.push(row.fingerprint);
        let b = &mut self.buf;
        b.extend_from_slice(&COPY_FIELDS.to_be_bytes());
        field(b, id.as_bytes());
        field(b, self.import_id.as_bytes());
        field(b, &row.row_number.to_be_bytes());
        text(
            b,
            if row.errors.is_empty() {
                "valid"
            } else {
                "invalid"
            },
        );
        join_raw(b, &row.raw);
        for value in row.contact.columns() {
            opt_text(b, value);
        }
        if row.errors.is_empty() {
            b.extend_from_slice(&(-1i32).to_be_bytes());
        } else {
            let mut json = vec![JSONB_VERSION];
            serde_json::to_writer(&mut json, &row.errors).expect("errors serialize");
            field(b, &json);
        }
        field(b, &row.fingerprint);
        id
    }

    /// The encoded rows among the first `n`.
    fn prefix(&self, n: usize) -> &[u8] {
        let end = self.starts.get(n).copied().unwrap_or(self.buf.len());
        &self.buf[..end]
    }
}

/// Stage the first `n` rows of `rows`; returns how many were written.
pub async fn copy(db: &mut PgConnection, rows: &CopyRows, n: usize) -> Result<u64> {
    if n == 0 {
        return Ok(0);
    }
    let mut copy = db
        .copy_in_raw(&format!(
            "COPY staged_rows ({}) FROM STDIN (FORMAT binary)",
            copy_columns()
        ))
        .await?;
    copy.send(COPY_HEADER).await?;
    // Sent in pieces: one COPY message must stay well under Postgres's 1 GB.
    for piece in rows.prefix(n).chunks(1 << 20) {
        copy.send(piece).await?;
    }
    copy.send(COPY_TRAILER).await?;
    Ok(copy.finish().await?)
}

/// Flag rows that repeat an earlier row of the same batch exactly; returns
/// how many. Runs once, after every row is staged.
pub async fn flag_duplicates(db: impl PgExecutor<'_>, import_id: Uuid) -> Result<i64> {
    let n = sqlx::query(
        "UPDATE staged_rows s SET duplicate_of = d.first
         FROM (SELECT id, row_number, min(row_number) OVER (PARTITION BY fingerprint) AS first
               FROM staged_rows WHERE import_id = $1) d
         WHERE s.id = d.id AND d.first <> d.row_number",
    )
    .bind(import_id)
    .execute(db)
    .await?
    .rows_affected();
    Ok(n as i64)
}

/// Remove the rows of a batch from `row_number` on (rows a chunk staged
/// beyond what the package allows, before the chunk commits).
pub async fn delete_from(db: impl PgExecutor<'_>, import_id: Uuid, row_number: i32) -> Result<u64> {
    Ok(
        sqlx::query("DELETE FROM staged_rows WHERE import_id = $1 AND row_number >= $2")
            .bind(import_id)
            .bind(row_number)
            .execute(db)
            .await?
            .rows_affected(),
    )
}

/// Remove what a cancelled run staged.
pub async fn delete_all(db: impl PgExecutor<'_>, import_id: Uuid) -> Result<u64> {
    // Row numbers start at 1 (a CHECK says so).
    delete_from(db, import_id, 1).await
}

/// A staged row as reviewers see it.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: Uuid,
    pub row_number: i32,
    pub status: String,
    pub raw: RawValues,
    /// The normalized values, in [`Column`] order.
    pub values: Values,
    pub errors: Option<Vec<FieldError>>,
    pub duplicate_of: Option<i32>,
    pub contact_id: Option<Uuid>,
    /// Why the matcher merged it into `contact_id` (`matching::Explanation`).
    pub match_explanation: Option<serde_json::Value>,
}

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for Row {
    fn from_row(r: &'r sqlx::postgres::PgRow) -> sqlx::Result<Self> {
        use sqlx::Row as _;
        let raw: String = r.try_get("raw")?;
        let errors: Option<sqlx::types::Json<Vec<FieldError>>> = r.try_get("errors")?;
        Ok(Row {
            id: r.try_get("id")?,
            row_number: r.try_get("row_number")?,
            status: r.try_get("status")?,
            raw: RawValues::from(raw),
            values: Values::from_row(r, ROW_VALUES_AT)
                .map_err(|e| sqlx::Error::Decode(e.into()))?,
            errors: errors.map(|e| e.0),
            duplicate_of: r.try_get("duplicate_of")?,
            contact_id: r.try_get("contact_id")?,
            match_explanation: r.try_get("match_explanation")?,
        })
    }
}

/// Where [`list`]'s select puts the first value column.
const ROW_VALUES_AT: usize = 8;

/// Rows of a batch in row order, after the row `cursor`, optionally of one status.
pub async fn list(
    db: impl PgExecutor<'_>,
    import_id: Uuid,
    status: Option<&str>,
    cursor: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Row>> {
    Ok(sqlx::query_as::<_, Row>(&format!(
        "SELECT id, row_number, status, raw, errors, duplicate_of, contact_id, match_explanation, {}
         FROM staged_rows
         WHERE import_id = $1 AND ($2::text IS NULL OR status = $2)
           AND row_number > COALESCE((SELECT row_number FROM staged_rows
                                      WHERE import_id = $1 AND id = $3), 0)
         ORDER BY row_number LIMIT $4",
        columns("")
    ))
    .bind(import_id)
    .bind(status)
    .bind(cursor)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// The errors of rows `after_row + 1 ..`, a page at a time, for errors.csv.
pub async fn errors_page(
    db: impl PgExecutor<'_>,
    import_id: Uuid,
    after_row: i32,
    limit: i64,
) -> Result<Vec<(i32, sqlx::types::Json<Vec<FieldError>>)>> {
    Ok(sqlx::query_as(
        "SELECT row_number, errors FROM staged_rows
         WHERE import_id = $1 AND row_number > $2 AND errors IS NOT NULL
         ORDER BY row_number LIMIT $3",
    )
    .bind(import_id)
    .bind(after_row)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Which rows a review approves.
pub enum Approve {
    None,
    /// Every valid row that does not repeat an earlier row of the batch.
    AllValid,
    Rows(Vec<Uuid>),
}

#[derive(Debug, Default, Serialize)]
pub struct ReviewOutcome {
    pub approved: u64,
    pub rejected: u64,
}

/// Apply a review decision to a staged batch. Every listed row must belong to
/// it, invalid rows cannot be approved, and rows already in the corpus cannot
/// change. All or nothing: the caller's transaction rolls back on error.
pub async fn review(
    db: &mut PgConnection,
    import_id: Uuid,
    approve: Approve,
    reject: &[Uuid],
    user: Option<Uuid>,
) -> Result<ReviewOutcome> {
    let listed: Vec<Uuid> = match &approve {
        Approve::Rows(ids) => ids.iter().chain(reject).copied().collect(),
        _ => reject.to_vec(),
    };
    // (id, row number, status, has errors): validity, not status, decides
    // approval, since a rejected row may be valid or not.
    let found: Vec<(Uuid, i32, String, bool)> = sqlx::query_as(
        "SELECT id, row_number, status, errors IS NOT NULL FROM staged_rows
         WHERE import_id = $1 AND id = ANY($2) FOR UPDATE",
    )
    .bind(import_id)
    .bind(&listed)
    .fetch_all(&mut *db)
    .await?;
    if let Some(missing) = listed
        .iter()
        .find(|id| !found.iter().any(|(f, ..)| f == *id))
    {
        return Err(StoreError::Invalid {
            field: "rows",
            reason: format!("row {missing} is not in this import"),
        });
    }
    if let Some((_, n, ..)) = found.iter().find(|(_, _, s, _)| s == "merged") {
        return Err(StoreError::Invalid {
            field: "rows",
            reason: format!("row {n} is already in the corpus and cannot change"),
        });
    }
    let approved_ids: &[Uuid] = match &approve {
        Approve::Rows(ids) => ids,
        _ => &[],
    };
    if let Some((_, n, ..)) = found
        .iter()
        .find(|(id, _, _, has_errors)| *has_errors && approved_ids.contains(id))
    {
        return Err(StoreError::Invalid {
            field: "approve",
            reason: format!("row {n} has errors and cannot be approved"),
        });
    }
    let mut out = ReviewOutcome::default();
    if let Approve::AllValid = approve {
        out.approved = sqlx::query(
            "UPDATE staged_rows SET status = 'approved', decided_by = $2, decided_at = now()
             WHERE import_id = $1 AND status = 'valid' AND duplicate_of IS NULL",
        )
        .bind(import_id)
        .bind(user)
        .execute(&mut *db)
        .await?
        .rows_affected();
    }
    if !approved_ids.is_empty() {
        out.approved += sqlx::query(
            "UPDATE staged_rows SET status = 'approved', decided_by = $3, decided_at = now()
             WHERE import_id = $1 AND id = ANY($2)",
        )
        .bind(import_id)
        .bind(approved_ids)
        .bind(user)
        .execute(&mut *db)
        .await?
        .rows_affected();
    }
    if !reject.is_empty() {
        out.rejected = sqlx::query(
            "UPDATE staged_rows SET status = 'rejected', decided_by = $3, decided_at = now()
             WHERE import_id = $1 AND id = ANY($2)",
        )
        .bind(import_id)
        .bind(reject)
        .bind(user)
        .execute(&mut *db)
        .await?
        .rows_affected();
    }
    // Counters recounted, not incremented: a row can move between decisions.
    sqlx::query(
        "UPDATE imports SET
             approved_rows = (SELECT count(*) FROM staged_rows WHERE import_id = $1 AND status = 'approved'),
             rejected_rows = (SELECT count(*) FROM staged_rows WHERE import_id = $1 AND status = 'rejected')
         WHERE id = $1",
    )
    .bind(import_id)
    .execute(&mut *db)
    .await?;
    Ok(out)
}

/// Refresh the planner's statistics of `staged_rows` after a large batch.
///
/// The dedupe job reads a batch a chunk at a time in row order; with
/// statistics from before a batch of millions of rows, Postgres estimates a
/// few thousand rows per batch and reads the whole rest of the batch for
/// every chunk (a bitmap scan and a sort) instead of the next rows off the
/// index: measured on a 5,000,000-row seed, 6 s per 5,000-row chunk before
/// an ANALYZE, 0.7 s after. Autovacuum would analyze eventually, too late
/// for a review that follows at once; the dedupe job analyzes again, as the
/// review changed every row's status. About a second, sampling.
pub async fn analyze(db: impl PgExecutor<'_>) -> Result<()> {
    sqlx::query("ANALYZE staged_rows").execute(db).await?;
    Ok(())
}

/// Batches at least this large refresh the statistics when staged.
pub const ANALYZE_AFTER_ROWS: i64 = 100_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_values_survive_joining_whatever_they_hold() {
        let values: Vec<Cow<'_, str>> =
            ["a", "", "back\\slash\\s", "sep\u{1f}arated", "\\", "Zürich"]
                .into_iter()
                .map(Cow::Borrowed)
                .collect();
        let mut buf = Vec::new();
        join_raw(&mut buf, &values);
        let len = i32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
        assert_eq!(len, buf.len() - 4, "length prefix");
        let joined = std::str::from_utf8(&buf[4..]).unwrap();
        assert_eq!(joined.matches(RAW_SEPARATOR).count(), values.len() - 1);
        assert_eq!(split_raw(joined), values);
        assert_eq!(split_raw(""), [""]);

        buf.clear();
        join_raw(&mut buf, &[Cow::Borrowed("a\0b")]);
        assert_eq!(
            split_raw(std::str::from_utf8(&buf[4..]).unwrap()),
            ["a\u{FFFD}b"]
        );
    }
}
