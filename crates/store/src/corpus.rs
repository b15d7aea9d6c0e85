//! The governed corpus: canonical contacts, their provenance and their
//! blocking keys.
//!
//! Provenance is the staged rows themselves: a row that merged into or
//! created a contact records which (`contact_id`, `outcome`, `merged_at`),
//! and its batch says tenant and source. A contact's current values are a
//! fold of its rows in merge order ([`Values::absorb`]), so they can always
//! be derived again from what remains ([`rederive`], after a quarantine).
//!
//! Writers serialize on one advisory lock ([`lock`]) for the length of a
//! chunk's transaction: matching reads the contacts a chunk could join and
//! writes its merges under the same lock (or reads them during the hold of
//! the chunk before and checks no one else held it since, [`lock`]'s epoch), so two dedupe jobs with
//! overlapping contacts can never both create the same contact. Per-key
//! locks would need thousands of locks per chunk; one short critical section
//! per chunk is cheaper and makes the outcome independent of worker count.

use crate::{Result, StoreError};
use bizcontacts_domain::contact::{Column, COLUMN_COUNT, COLUMN_NAMES};
use bizcontacts_domain::locks::{self, AdvisoryLock};
use bizcontacts_matching::{BlockId, Explanation, Prepared, Record};
use sqlx::{PgConnection, PgExecutor, Row};
use std::collections::HashMap;
use uuid::Uuid;

/// The contact fields in storage order ([`Column::ALL`]); [`Values`] holds
/// them in this order.
pub const FIELDS: [&str; COLUMN_COUNT] = COLUMN_NAMES;

/// One value per [`FIELDS`] entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values(pub [Option<String>; COLUMN_COUNT]);

impl Values {
    pub fn get(&self, field: &str) -> Option<&str> {
        let i = FIELDS.iter().position(|f| *f == field)?;
        self.0[i].as_deref()
    }

    /// Survivorship: fold one contributing row into the current values.
    /// A reviewed correction beats any import and marks its field; otherwise
    /// the newer non-empty value wins, except over a corrected field.
    /// Returns whether anything changed (values or corrected fields).
    pub fn absorb(&mut self, row: &Values, correction: bool, corrected: &mut Vec<String>) -> bool {
        let mut changed = false;
        for (i, value) in row.0.iter().enumerate() {
            let Some(value) = value.as_deref().filter(|v| !v.is_empty()) else {
                continue;
            };
            let name = FIELDS[i];
            let partner = Column::ALL[i].partner().map(Column::index);
            if correction {
                if !corrected.iter().any(|c| c == name) {
                    corrected.push(name.to_string());
                    changed = true;
                }
            } else if corrected.iter().any(|c| c == name) {
                continue;
            }
            changed |= set(&mut self.0[i], Some(value));
            if let Some(p) = partner {
                // The partner comes from the same row, even when empty there.
                changed |= set(&mut self.0[p], row.0[p].as_deref());
            }
        }
        changed
    }

    /// What matching compares.
    pub fn record(&self) -> Record {
        let v = |c: Column| self.0[c.index()].clone();
        Record {
            company_name: v(Column::CompanyName),
            first_name: v(Column::FirstName),
            last_name: v(Column::LastName),
            email: v(Column::Email),
            phone: v(Column::Phone),
            domain: v(Column::Domain),
            address: v(Column::Address),
            city: v(Column::City),
            postcode: v(Column::Postcode),
            country: v(Column::Country),
        }
    }

    /// Column name to value, as the API shows a contact or a staged row.
    pub fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        FIELDS
            .iter()
            .zip(&self.0)
            .map(|(f, v)| (f.to_string(), serde_json::json!(v)))
            .collect()
    }

    pub(crate) fn from_row(row: &sqlx::postgres::PgRow, offset: usize) -> Result<Self> {
        let mut v = Values::default();
        for i in 0..FIELDS.len() {
            v.0[i] = row.try_get(offset + i)?;
        }
        Ok(v)
    }
}

/// Overwrite `slot` with `value`, allocating only when they differ (most
/// merges repeat what the contact holds); whether it changed.
fn set(slot: &mut Option<String>, value: Option<&str>) -> bool {
    if slot.as_deref() == value {
        return false;
    }
    *slot = value.map(str::to_string);
    true
}

pub(crate) fn columns(prefix: &str) -> String {
    FIELDS
        .iter()
        .map(|f| format!("{prefix}{f}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A batch taking in millions of rows grows `contacts` and `contact_keys`
/// faster than autovacuum re-analyzes them (on the 5,000,000-contact seed,
/// `contact_keys` reached 33M rows never analyzed, and each chunk's key
/// look-up, planned for 46 rows per key, took a minute); the dedupe job
/// refreshes their statistics after every this many rows. About 2 s.
pub const ANALYZE_EVERY_ROWS: i64 = 500_000;

/// Whether the dedupe job refreshes the corpus statistics after a chunk of
/// `chunk` rows, `done` rows of `total` in all: after the first chunk when
/// more follow (a new corpus has no statistics, and without them the key
/// look-up was planned as a bitmap heap scan for 20,000 rows per key, 2x
/// slower than the index-only scan), then every [`ANALYZE_EVERY_ROWS`].
pub fn analyze_due(done: i64, chunk: i64, total: i64) -> bool {
    (done == chunk && total > done)
        || done / ANALYZE_EVERY_ROWS != (done - chunk) / ANALYZE_EVERY_ROWS
}

pub async fn analyze(db: impl PgExecutor<'_>) -> Result<()> {
    sqlx::raw_sql("ANALYZE contacts; ANALYZE contact_keys; ANALYZE contact_keys_recent")
        .execute(db)
        .await?;
    Ok(())
}

/// Take the corpus writers' lock until the transaction ends (with
/// [`read_settings`]); returns the lock's epoch, one more than the previous
/// holder's. A chunk planned ahead by the dedupe job, while the chunk before
/// it held the lock, still holds when its own epoch follows that chunk's:
/// no other writer came in between.
pub async fn lock(tx: &mut PgConnection) -> Result<i64> {
    read_settings(tx).await?;
    sqlx::query(locks::SQL)
        .bind(AdvisoryLock::Corpus.class())
        .bind("")
        .execute(&mut *tx)
        .await?;
    // A sequence: it counts rolled-back holders too (harmless: the plan
    // ahead is only read again), and never waits.
    Ok(sqlx::query_scalar("SELECT nextval('corpus_epoch')")
        .fetch_one(tx)
        .await?)
}

/// Keep the transaction's look-ups on their indexes, uncompiled.
///
/// A chunk looks up tens of thousands of blocking keys at once; past a few
/// million contacts the planner priced that as a parallel sequential scan
/// of `contact_keys` (29M rows while seeding 5,000,000 contacts: minutes per
/// chunk, against 0.8 s through the index). The same high estimates made
/// Postgres JIT-compile the chunk's statements: 70 ms per key look-up,
/// for statements that each run once per chunk.
pub async fn read_settings(tx: &mut PgConnection) -> Result<()> {
    sqlx::query("SELECT set_config('enable_seqscan', 'off', true), set_config('jit', 'off', true)")
        .execute(tx)
        .await?;
    Ok(())
}

/// A canonical contact as matching and the API see it.
#[derive(Debug, Clone)]
pub struct Contact {
    pub id: Uuid,
    pub values: Values,
    pub corrected_fields: Vec<String>,
    pub active: bool,
}

impl Contact {
    /// A contact with no values yet, before its first row is absorbed.
    pub fn new(id: Uuid) -> Self {
        Contact {
            id,
            values: Values::default(),
            corrected_fields: vec![],
            active: true,
        }
    }
}

pub async fn load(db: impl PgExecutor<'_>, ids: &[Uuid]) -> Result<Vec<Contact>> {
    let rows = sqlx::query(&format!(
        "SELECT id, corrected_fields, active, {} FROM contacts WHERE id = ANY($1)",
        columns("")
    ))
    .bind(ids)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Contact {
                id: r.try_get(0)?,
                corrected_fields: r.try_get(1)?,
                active: r.try_get(2)?,
                values: Values::from_row(r, 3)?,
            })
        })
        .collect()
}

/// The contacts filed under any of `keys`, as (key, contact) pairs, and
/// the keys filed under more than `cap` contacts, which are left out: each
/// key reads at most `cap + 1` index entries per level, so a key every
/// contact shares costs no more than a rare one.
///
/// A pair may be in both levels, or twice in the recent one (see
/// [`add_keys`]); it counts once. A key over the cap in all shows `cap + 1`
/// distinct contacts in one level or the other (`DISTINCT` in the recent
/// one, which has no uniqueness: copies of one pair cannot fill its limit).
pub async fn by_keys(
    db: impl PgExecutor<'_>,
    keys: &[BlockId],
    cap: usize,
) -> Result<(Vec<(BlockId, Uuid)>, Vec<BlockId>)> {
    let hits: Vec<(BlockId, Uuid)> = sqlx::query_as(
        "SELECT k.key, c.contact_id FROM UNNEST($1::bigint[]) AS k(key)
         CROSS JOIN LATERAL (
             (SELECT contact_id FROM contact_keys WHERE key = k.key LIMIT $2)
             UNION ALL
             (SELECT DISTINCT contact_id FROM contact_keys_recent WHERE key = k.key LIMIT $2)
         ) c",
    )
    .bind(keys)
    .bind(cap as i64 + 1)
    .fetch_all(db)
    .await?;
    Ok(cap_hits(hits, vec![], cap))
}

/// (key, contact) pairs counted once, and the keys with more than `cap`
/// contacts added to `capped` and left out of the pairs, both sorted.
pub fn cap_hits(
    mut hits: Vec<(BlockId, Uuid)>,
    mut capped: Vec<BlockId>,
    cap: usize,
) -> (Vec<(BlockId, Uuid)>, Vec<BlockId>) {
    hits.sort_unstable();
    hits.dedup();
    let mut per_key: HashMap<BlockId, usize> = HashMap::new();
    for (k, _) in &hits {
        *per_key.entry(*k).or_default() += 1;
    }
    capped.extend(
        per_key
            .into_iter()
            .filter(|(_, n)| *n > cap)
            .map(|(k, _)| k),
    );
    capped.sort_unstable();
    capped.dedup();
    hits.retain(|(k, _)| capped.binary_search(k).is_err());
    (hits, capped)
}

/// The open match candidates of row `s`, as a subquery per row: `OFFSET 0`
/// keeps the planner from turning it into an anti-join, which it did by
/// materializing every open candidate of every tenant and comparing each
/// row with all of them (with 430 open: 98 ms a chunk of 2,500 rows, 1.1M
/// comparisons; as a probe of `match_candidates_open_idx` per row, 5.5 ms,
/// whatever the number open).
const WAITING: &str =
    "SELECT 1 FROM match_candidates m WHERE m.row_id = s.id AND m.decision IS NULL OFFSET 0";

/// An approved row waiting for dedupe.
#[derive(Debug, Clone)]
pub struct PendingRow {
    pub id: Uuid,
    pub row_number: i32,
    pub values: Values,
    /// Set on corrections: the contact the row corrects.
    pub target: Option<Uuid>,
    /// The row version (`xmin`) read: [`relock_rows`] tells a row changed since.
    pub version: i64,
}

/// How [`pending_rows`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// `FOR UPDATE` until the caller's transaction ends, so a review cannot
    /// reject a row while its chunk is being merged: it waits, then finds
    /// the row in the corpus.
    Lock,
    /// As they are, without locks: a chunk planned ahead, taken only after
    /// [`relock_rows`] finds the same rows at the same versions.
    Ahead,
}

/// Approved rows of a batch after `after_row`, in row order, leaving out
/// rows that wait for a reviewer's match decision.
pub async fn pending_rows(
    db: impl PgExecutor<'_>,
    import_id: Uuid,
    after_row: i32,
    limit: i64,
    read: Read,
) -> Result<Vec<PendingRow>> {
    let lock = if read == Read::Lock {
        "FOR UPDATE OF s"
    } else {
        ""
    };
    let rows = sqlx::query(&format!(
        "SELECT s.id, s.row_number, s.target_contact_id, s.xmin::text::bigint, {}
         FROM staged_rows s
         WHERE s.import_id = $1 AND s.status = 'approved' AND s.row_number > $2
           AND NOT EXISTS ({WAITING})
         ORDER BY s.row_number LIMIT $3 {lock}",
        columns("s.")
    ))
    .bind(import_id)
    .bind(after_row)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(PendingRow {
                id: r.try_get(0)?,
                row_number: r.try_get(1)?,
                target: r.try_get(2)?,
                version: r.try_get(3)?,
                values: Values::from_row(r, 4)?,
            })
        })
        .collect()
}

/// Lock the rows [`pending_rows`] would read now from `after_row` up to
/// `last_row`, and return them as (id, version) in row order: the rows of
/// a chunk read with [`Read::Ahead`] when nothing changed in between.
pub async fn relock_rows(
    db: impl PgExecutor<'_>,
    import_id: Uuid,
    after_row: i32,
    last_row: i32,
) -> Result<Vec<(Uuid, i64)>> {
    Ok(sqlx::query_as(&format!(
        "SELECT s.id, s.xmin::text::bigint FROM staged_rows s
         WHERE s.import_id = $1 AND s.status = 'approved'
           AND s.row_number > $2 AND s.row_number <= $3
           AND NOT EXISTS ({WAITING})
         ORDER BY s.row_number FOR UPDATE OF s"
    ))
    .bind(import_id)
    .bind(after_row)
    .bind(last_row)
    .fetch_all(db)
    .await?)
}

/// How many rows [`pending_rows`] would return in all.
pub async fn count_pending(db: impl PgExecutor<'_>, import_id: Uuid) -> Result<i64> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT count(*) FROM staged_rows s WHERE s.import_id = $1 AND s.status = 'approved'
           AND NOT EXISTS ({WAITING})"
    ))
    .bind(import_id)
    .fetch_one(db)
    .await?)
}

/// Reviewers' match decisions for these rows: row -> [(contact, same?)].
pub async fn decisions(
    db: impl PgExecutor<'_>,
    rows: &[Uuid],
) -> Result<HashMap<Uuid, Vec<(Uuid, bool)>>> {
    let found: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
        "SELECT row_id, contact_id, decision FROM match_candidates
         WHERE row_id = ANY($1) AND decision IS NOT NULL ORDER BY row_id, contact_id",
    )
    .bind(rows)
    .fetch_all(db)
    .await?;
    let mut out: HashMap<Uuid, Vec<(Uuid, bool)>> = HashMap::new();
    for (row, contact, decision) in found {
        out.entry(row)
            .or_default()
            .push((contact, decision == "same"));
    }
    Ok(out)
}

/// The contact a merged-away contact now lives in (sweeps merge contacts).
pub async fn resolve(db: &mut PgConnection, id: Uuid) -> Result<Option<Uuid>> {
    let mut current = id;
    for _ in 0..32 {
        let next: Option<(Option<Uuid>,)> =
            sqlx::query_as("SELECT merged_into FROM contacts WHERE id = $1")
                .bind(current)
                .fetch_optional(&mut *db)
                .await?;
        match next {
            None => return Ok(None),
            Some((None,)) => return Ok(Some(current)),
            Some((Some(n),)) => current = n,
        }
    }
    Ok(None)
}

/// Everything one dedupe chunk writes, in one transaction.
#[derive(Default)]
pub struct ChunkWrites {
    pub created: Vec<Contact>,
    pub updated: Vec<Contact>,
    pub keys: Vec<(BlockId, Uuid)>,
    pub links: Vec<Link>,
    /// Pairs for a reviewer.
    pub possible: Vec<Possible>,
}

/// A row's place in the corpus: the contact it created or merged into.
#[derive(Debug, Clone)]
pub struct Link {
    pub row: Uuid,
    pub contact: Uuid,
    pub created: bool,
    /// Why the matcher merged it (none for creations, corrections and
    /// reviewers' decisions), kept as the row's provenance.
    pub why: Option<Explanation>,
}

/// A row and a contact it may be, for a reviewer.
#[derive(Debug, Clone)]
pub struct Possible {
    pub row: Uuid,
    pub contact: Uuid,
    pub score: f32,
    pub why: Option<Explanation>,
}

/// Serialized straight into the statement (a `serde_json::Value` on the
/// way built a map per field, a tenth of the worker's time in a dedupe).
fn explanation_json(why: &Option<Explanation>) -> Option<sqlx::types::Json<&Explanation>> {
    why.as_ref().map(sqlx::types::Json)
}

/// Column arrays for UNNEST: one `text[]` per field.
fn field_arrays(contacts: &[Contact]) -> Vec<Vec<Option<String>>> {
    (0..FIELDS.len())
        .map(|i| contacts.iter().map(|c| c.values.0[i].clone()).collect())
        .collect()
}

fn unnest_fields(first_param: usize) -> String {
    (0..FIELDS.len())
        .map(|i| format!("${}::text[]", first_param + i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Insert new contacts or overwrite the values of existing ones.
async fn save_contacts(tx: &mut PgConnection, contacts: &[Contact], insert: bool) -> Result<()> {
    if contacts.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = contacts.iter().map(|c| c.id).collect();
    // Postgres arrays cannot be ragged: corrected fields travel as one joined text.
    let corrected: Vec<String> = contacts
        .iter()
        .map(|c| c.corrected_fields.join(","))
        .collect();
    let (cols, arrays) = (columns(""), unnest_fields(3));
    let sql = if insert {
        format!(
            "INSERT INTO contacts (id, corrected_fields, {cols})
             SELECT id, coalesce(string_to_array(nullif(cf, ''), ','), '{{}}'), {cols}
             FROM UNNEST($1::uuid[], $2::text[], {arrays}) AS t(id, cf, {cols})"
        )
    } else {
        let sets = FIELDS
            .iter()
            .map(|f| format!("{f} = t.{f}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "UPDATE contacts c SET {sets}, updated_at = now(),
                    corrected_fields = coalesce(string_to_array(nullif(t.cf, ''), ','), '{{}}')
             FROM UNNEST($1::uuid[], $2::text[], {arrays}) AS t(id, cf, {cols})
             WHERE c.id = t.id"
        )
    };
    let mut q = sqlx::query(&sql).bind(&ids).bind(&corrected);
    for column in field_arrays(contacts) {
        q = q.bind(column);
    }
    q.execute(&mut *tx).await?;
    Ok(())
}

/// Write a chunk's merges, with the rows' links and the batch's counters.
/// The rows must have been locked in the same transaction, by
/// [`pending_rows`] with [`Read::Lock`] or by [`relock_rows`].
pub async fn write(tx: &mut PgConnection, import_id: Uuid, w: &ChunkWrites) -> Result<()> {
    save_contacts(tx, &w.created, true).await?;
    save_contacts(tx, &w.updated, false).await?;
    add_keys(tx, &w.keys).await?;
    let rows: Vec<Uuid> = w.links.iter().map(|l| l.row).collect();
    let contacts: Vec<Uuid> = w.links.iter().map(|l| l.contact).collect();
    let created: Vec<bool> = w.links.iter().map(|l| l.created).collect();
    let why: Vec<_> = w.links.iter().map(|l| explanation_json(&l.why)).collect();
    let linked = sqlx::query(
        "UPDATE staged_rows s SET status = 'merged', contact_id = t.contact, merged_at = now(),
                outcome = CASE WHEN t.created THEN 'created' ELSE 'merged' END,
                match_explanation = t.why
         FROM UNNEST($1::uuid[], $2::uuid[], $3::bool[], $4::jsonb[]) AS t(row_id, contact, created, why)
         WHERE s.id = t.row_id AND s.status = 'approved'",
    )
    .bind(&rows)
    .bind(&contacts)
    .bind(&created)
    .bind(&why)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    // Every value written above came from one of these rows; a row that is
    // no longer approved would leave values in the corpus with no provenance.
    // The rows are locked (see above), so this is a guard, not a path.
    if linked != rows.len() as u64 {
        return Err(StoreError::Conflict(format!(
            "{} of {} rows changed status while their chunk was planned",
            rows.len() as u64 - linked,
            rows.len()
        )));
    }
    if !w.possible.is_empty() {
        let r: Vec<Uuid> = w.possible.iter().map(|p| p.row).collect();
        let c: Vec<Uuid> = w.possible.iter().map(|p| p.contact).collect();
        let s: Vec<f32> = w.possible.iter().map(|p| p.score).collect();
        let why: Vec<_> = w
            .possible
            .iter()
            .map(|p| explanation_json(&p.why))
            .collect();
        sqlx::query(
            "INSERT INTO match_candidates (row_id, contact_id, score, explanation)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::real[], $4::jsonb[]) ON CONFLICT DO NOTHING",
        )
        .bind(&r)
        .bind(&c)
        .bind(&s)
        .bind(&why)
        .execute(&mut *tx)
        .await?;
    }
    let new = created.iter().filter(|c| **c).count() as i32;
    let merged = created.len() as i32 - new;
    sqlx::query(
        "UPDATE imports SET merged_rows = merged_rows + $2, created_rows = created_rows + $3 WHERE id = $1",
    )
    .bind(import_id)
    .bind(merged)
    .bind(new)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// File contacts under keys (those they have already are left alone): how
/// a sweep brings contacts filed before a key was added up to date.
///
/// New keys go to `contact_keys_recent` (see its migrations for why);
/// [`move_recent_keys`] moves them on. A pair either level already holds
/// is not looked for (a probe per key, what the recent level saves): it is
/// filed twice until the move, which keeps one, and [`by_keys`] counts it
/// once.
pub async fn add_keys(tx: &mut PgConnection, keys: &[(BlockId, Uuid)]) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let (k, c): (Vec<BlockId>, Vec<Uuid>) = keys.iter().copied().unzip();
    let added = sqlx::query(
        "INSERT INTO contact_keys_recent (key, contact_id)
         SELECT * FROM UNNEST($1::bigint[], $2::uuid[])",
    )
    .bind(&k)
    .bind(&c)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if added > 0 {
        sqlx::query("UPDATE contact_keys_recent_count SET keys = keys + $1")
            .bind(added as i64)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Once `contact_keys_recent` has taken `max` keys, move them all into
/// `contact_keys` in key order, in the caller's transaction (under the
/// corpus lock; every read of the recent level happens within a hold of
/// it, a dedupe read ahead within the hold of the chunk before, and ends
/// before that chunk commits, so the `TRUNCATE` waits for no one).
/// Returns how many keys moved.
///
/// The move touches each leaf of the big index once, however many keys
/// land in it; filing the same keys one chunk at a time touched a leaf per
/// key, and after each checkpoint wrote it whole to the WAL.
pub async fn move_recent_keys(tx: &mut PgConnection, max: i64) -> Result<u64> {
    let taken: i64 = sqlx::query_scalar("SELECT keys FROM contact_keys_recent_count")
        .fetch_one(&mut *tx)
        .await?;
    if taken < max.max(1) {
        return Ok(0);
    }
    let moved = sqlx::query(
        "INSERT INTO contact_keys (key, contact_id)
         SELECT key, contact_id FROM contact_keys_recent ORDER BY key, contact_id
         ON CONFLICT DO NOTHING",
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    for sql in [
        "TRUNCATE contact_keys_recent",
        "UPDATE contact_keys_recent_count SET keys = 0",
    ] {
        sqlx::query(sql).execute(&mut *tx).await?;
    }
    Ok(moved)
}

/// Mark the pages of keys just moved into `contact_keys` all-visible (run
/// outside a transaction, after the move commits). The look-up is an
/// index-only scan, but for a page the visibility map does not vouch for it
/// reads the heap too: one random heap page per hit in a table only ever
/// appended to, which autovacuum reaches late. Measured on 10M keys,
/// 15,000 keys looked up: 206 ms before, 136 ms after, the vacuum 0.8 s
/// (it reads only pages not yet all-visible). `SKIP_LOCKED`: when
/// autovacuum is on the table already, it is doing this.
pub async fn vacuum_keys(db: impl PgExecutor<'_>) -> Result<()> {
    sqlx::raw_sql("VACUUM (SKIP_LOCKED) contact_keys")
        .execute(db)
        .await?;
    Ok(())
}

/// A row merged into a contact, as rederiving reads it.
pub(crate) struct Contribution {
    contact: Uuid,
    correction: bool,
    /// Its batch is quarantined: it no longer counts.
    withdrawn: bool,
    values: Values,
}

/// Every row merged into these contacts, in merge order.
pub(crate) async fn contributions(
    tx: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<Contribution>> {
    let rows = sqlx::query(&format!(
        "SELECT s.contact_id, i.source = 'correction', i.quarantined_at IS NOT NULL, {}
         FROM staged_rows s JOIN imports i ON i.id = s.import_id
         WHERE s.contact_id = ANY($1) AND s.status = 'merged'
         ORDER BY s.contact_id, s.merged_at, s.id",
        columns("s.")
    ))
    .bind(ids)
    .fetch_all(&mut *tx)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Contribution {
                contact: r.try_get(0)?,
                correction: r.try_get(1)?,
                withdrawn: r.try_get(2)?,
                values: Values::from_row(r, 3)?,
            })
        })
        .collect()
}

/// The keys these rows filed (or would file) for their contact; corrections file none.
pub(crate) fn keys_of<'a>(rows: impl Iterator<Item = &'a Contribution>) -> Vec<(BlockId, Uuid)> {
    rows.filter(|r| !r.correction)
        .flat_map(|r| {
            Prepared::new(&r.values.record())
                .block_ids()
                .into_iter()
                .map(move |k| (k, r.contact))
        })
        .collect()
}

/// `contact_keys` has no index by contact (it would double the cost of
/// filing keys at millions of contacts): keys are removed by recomputing
/// them from the rows that filed them, from both levels.
pub(crate) async fn remove_keys(tx: &mut PgConnection, keys: &[(BlockId, Uuid)]) -> Result<()> {
    let (k, c): (Vec<BlockId>, Vec<Uuid>) = keys.iter().copied().unzip();
    sqlx::query(
        "WITH t AS (SELECT * FROM UNNEST($1::bigint[], $2::uuid[]) AS t(key, contact_id)),
              settled AS (DELETE FROM contact_keys c USING t
                          WHERE c.key = t.key AND c.contact_id = t.contact_id)
         DELETE FROM contact_keys_recent c USING t
         WHERE c.key = t.key AND c.contact_id = t.contact_id",
    )
    .bind(&k)
    .bind(&c)
    .execute(tx)
    .await?;
    Ok(())
}

/// Derive contacts again from their remaining rows (those of batches not
/// quarantined), rebuilding their keys; a contact with no row left becomes
/// inactive. Returns how many were deactivated.
pub async fn rederive(tx: &mut PgConnection, ids: &[Uuid]) -> Result<u64> {
    let rows = contributions(tx, ids).await?;
    remove_keys(tx, &keys_of(rows.iter())).await?;
    let mut derived: HashMap<Uuid, Contact> = HashMap::new();
    for r in rows.iter().filter(|r| !r.withdrawn) {
        let c = derived
            .entry(r.contact)
            .or_insert_with(|| Contact::new(r.contact));
        c.values
            .absorb(&r.values, r.correction, &mut c.corrected_fields);
    }
    let gone: Vec<Uuid> = ids
        .iter()
        .filter(|id| !derived.contains_key(id))
        .copied()
        .collect();
    let deactivated = sqlx::query(
        "UPDATE contacts SET active = false, updated_at = now() WHERE id = ANY($1) AND active",
    )
    .bind(&gone)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let updated: Vec<Contact> = derived.into_values().collect();
    save_contacts(tx, &updated, false).await?;
    add_keys(tx, &keys_of(rows.iter().filter(|r| !r.withdrawn))).await?;
    Ok(deactivated)
}

/// Merge contacts into others (`(from, into)`, `into` never itself merged
/// away): the rows and keys of `from` move, `from` is retired, and each
/// `into` is derived again from all its rows.
pub async fn merge_contacts(tx: &mut PgConnection, merges: &[(Uuid, Uuid)]) -> Result<()> {
    let (from, into): (Vec<Uuid>, Vec<Uuid>) = merges.iter().copied().unzip();
    let moving = contributions(tx, &from).await?;
    remove_keys(tx, &keys_of(moving.iter())).await?;
    sqlx::query(
        "UPDATE staged_rows s SET contact_id = t.into_id
         FROM UNNEST($1::uuid[], $2::uuid[]) AS t(from_id, into_id) WHERE s.contact_id = t.from_id",
    )
    .bind(&from)
    .bind(&into)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE contacts c SET active = false, merged_into = t.into_id, updated_at = now()
         FROM UNNEST($1::uuid[], $2::uuid[]) AS t(from_id, into_id) WHERE c.id = t.from_id",
    )
    .bind(&from)
    .bind(&into)
    .execute(&mut *tx)
    .await?;
    let mut targets = into;
    targets.sort_unstable();
    targets.dedup();
    rederive(tx, &targets).await?;
    Ok(())
}
