//! Contact search, facets and saved contacts.
//!
//! A search reads the canonical values of active contacts (quarantined-away
//! and merged contacts are inactive), filtered as [`SearchFilter`] says, in
//! id order (ids are time-ordered UUIDv7): the keyset cursor is the last id
//! of a page, so a page never repeats or skips a contact however many are
//! created meanwhile. Free text keeps the id order and filters by trigram
//! word similarity over company and person names (see the migration for why
//! trigrams).

use crate::corpus::{columns, Contact, Values};
use crate::search_pool::SearchPool;
use crate::Result;
use bizcontacts_domain::contact::Mcc;
use bizcontacts_domain::search::SearchFilter;
use bizcontacts_domain::TenantId;
use sqlx::{PgConnection, PgExecutor, Postgres, Row};
use std::collections::HashMap;
use uuid::Uuid;

/// A statement's bound value.
#[derive(Debug, Clone)]
enum Param {
    Text(String),
    Texts(Vec<String>),
    Uuid(Uuid),
    Int(i64),
}

/// A search statement as it runs (`$n` placeholders and their values) and
/// as text with the values inlined, which the benchmark hands to `pgbench`
/// and docs/benchmarks.md to `EXPLAIN`: one builder, so what is measured is
/// what runs.
pub struct Statement {
    sql: String,
    inlined: String,
    params: Vec<Param>,
}

impl Statement {
    fn new(sql: &str) -> Self {
        Statement {
            sql: sql.to_string(),
            inlined: sql.to_string(),
            params: Vec::new(),
        }
    }

    fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self.inlined.push_str(sql);
        self
    }

    fn bind(&mut self, p: Param) -> &mut Self {
        let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let literal = match &p {
            Param::Text(t) => quote(t),
            Param::Texts(v) => format!(
                "ARRAY[{}]::text[]",
                v.iter().map(|t| quote(t)).collect::<Vec<_>>().join(",")
            ),
            Param::Uuid(u) => format!("'{u}'::uuid"),
            Param::Int(i) => i.to_string(),
        };
        self.params.push(p);
        self.sql.push_str(&format!("${}", self.params.len()));
        self.inlined.push_str(&literal);
        self
    }

    /// The statement with its values as SQL literals (quotes doubled), for
    /// `EXPLAIN` and `pgbench`; the product only runs [`Self::query`].
    pub fn inlined(&self) -> &str {
        &self.inlined
    }

    fn query(&self) -> sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments> {
        self.params
            .iter()
            .fold(sqlx::query(&self.sql), |q, p| match p {
                Param::Text(t) => q.bind(t),
                Param::Texts(v) => q.bind(v),
                Param::Uuid(u) => q.bind(u),
                Param::Int(i) => q.bind(i),
            })
    }

    /// `AND column = value`, or `= ANY(values)`; nothing when none.
    fn values(&mut self, column: &str, values: Vec<&str>) {
        match values.as_slice() {
            [] => {}
            [one] => {
                self.push(&format!(" AND c.{column} = "))
                    .bind(Param::Text(one.to_string()));
            }
            _ => {
                self.push(&format!(" AND c.{column} = ANY("))
                    .bind(Param::Texts(values.iter().map(|v| v.to_string()).collect()))
                    .push(")");
            }
        }
    }

    /// Append the conditions of `f` on `contacts c` (after `c.active`).
    /// Only the filters given appear, a single value as `=` and several as
    /// `= ANY`: the planner then sees each shape for what it is and can read
    /// a single value's index in id order. Category and MCC arrive as one
    /// set of codes ([`SearchFilter::mcc_codes`]).
    fn filter(&mut self, f: &SearchFilter) -> &mut Self {
        self.push("c.active");
        self.values("country", f.countries.iter().map(|c| c.as_str()).collect());
        self.values("segment", f.segments.iter().map(|s| s.as_str()).collect());
        self.values("type", f.types.iter().map(|t| t.as_str()).collect());
        if let Some(codes) = f.mcc_codes() {
            if codes.is_empty() {
                // The MCC and category filters exclude each other.
                self.push(" AND false");
            }
            self.values("mcc", codes);
        }
        if let Some(q) = &f.q {
            self.push(" AND ")
                .bind(Param::Text(q.clone()))
                .push(" <% contact_search_text(c.company_name, c.first_name, c.last_name)");
        }
        self
    }
}

/// The statement of a search page: the ids first, from the filter columns
/// alone (so, without `q`, an index-only scan of a covering index, see the
/// migration `search_covering`), then those few contacts' values.
pub fn search_statement(
    tenant: TenantId,
    f: &SearchFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Statement {
    let mut st = Statement::new("SELECT c.id, c.corrected_fields, EXISTS (SELECT 1 FROM saved_contacts s WHERE s.tenant_id = ");
    st.bind(Param::Uuid(tenant.0))
        .push(" AND s.contact_id = c.id), EXISTS (SELECT 1 FROM corrections o WHERE o.tenant_id = ")
        .bind(Param::Uuid(tenant.0))
        .push(&format!(
            " AND o.contact_id = c.id), {} FROM (SELECT c.id FROM contacts c WHERE ",
            columns("c.")
        ));
    st.filter(f);
    if let Some(after) = after {
        st.push(" AND c.id > ").bind(Param::Uuid(after));
    }
    st.push(" ORDER BY c.id LIMIT ")
        .bind(Param::Int(limit))
        .push(") page JOIN contacts c ON c.id = page.id ORDER BY c.id");
    st
}

/// The statement counting a facet: values of `col` (category facets count
/// MCCs, see [`facets`]) among the matches in `from`, scaled by `scale`.
fn facet_statement(f: &SearchFilter, col: &str, from: &str, scale: f64) -> Statement {
    let mut st = Statement::new(&format!(
        "SELECT c.{col}, round(count(*) * {scale})::bigint FROM {from} WHERE "
    ));
    st.filter(f)
        .push(&format!(" AND c.{col} IS NOT NULL GROUP BY 1"));
    st
}

/// One result: the canonical contact and whether `tenant` saved it.
pub struct Found {
    pub contact: Contact,
    pub saved: bool,
    /// The tenant has corrections of its own to this contact (then its
    /// values need [`crate::corrections::overlay_many`]; most have none).
    pub own_corrections: bool,
}

/// Up to `limit` active contacts matching `f` after the contact `after`.
/// One statement on a search connection (its settings: [`SearchPool`]).
pub async fn search(
    db: &SearchPool,
    tenant: TenantId,
    f: &SearchFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Found>> {
    let rows = search_statement(tenant, f, after, limit)
        .query()
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Found {
                contact: Contact {
                    id: r.try_get(0)?,
                    corrected_fields: r.try_get(1)?,
                    active: true,
                    values: Values::from_row(r, 4)?,
                },
                saved: r.try_get(2)?,
                own_corrections: r.try_get(3)?,
            })
        })
        .collect()
}

/// A facet dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FacetBy {
    Country,
    Category,
    Segment,
    Type,
}

impl FacetBy {
    fn column(self) -> &'static str {
        match self {
            FacetBy::Country => "country",
            FacetBy::Category => "category",
            FacetBy::Segment => "segment",
            FacetBy::Type => "type",
        }
    }

    /// The column counted: categories are counted by MCC and summed by
    /// [`top_values`], as the covering indexes carry the code, not the
    /// category derived from it.
    fn counted_column(self) -> &'static str {
        match self {
            FacetBy::Category => "mcc",
            other => other.column(),
        }
    }
}

/// Top values of a dimension among the contacts matching a filter.
pub struct Facets {
    pub values: Vec<(String, i64)>,
    /// True when counted on a sample (too many matches to count each).
    pub estimated: bool,
}

/// Matches the planner expects above which facets are counted on a sample:
/// counting is about 3 µs a match off a covering index, so this bounds an
/// exact answer to about 150 ms.
const EXACT_FACETS_MAX_ROWS: f64 = 50_000.0;
/// And a bound on the exact count's time, should the estimate be wrong.
const EXACT_FACETS_MS: u32 = 250;
/// Rows a sample should read: about 1% of 5,000,000 contacts.
const SAMPLE_ROWS: f64 = 50_000.0;
/// Values returned per dimension.
const FACET_VALUES: usize = 25;

/// In a transaction of its own on a search connection: a planning round
/// trip, then the exact count or the sample.
pub async fn facets(db: &SearchPool, f: &SearchFilter, by: FacetBy) -> Result<Facets> {
    let mut txn = db.pool().begin().await?;
    let tx = &mut *txn;
    let col = by.counted_column();
    let (rows, estimated) = match facets_statement(tx, f, by).await? {
        (exact, false) => match exact_counts(tx, &exact).await? {
            Some(rows) => (rows, false),
            None => (
                sampled(tx, f, col)
                    .await?
                    .query()
                    .fetch_all(&mut *tx)
                    .await?,
                true,
            ),
        },
        (sample, true) => (sample.query().fetch_all(&mut *tx).await?, true),
    };
    let rows = rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_>>()?;
    txn.commit().await?;
    Ok(Facets {
        values: top_values(by, rows),
        estimated,
    })
}

/// How many contacts the planner expects `f` to match (its statistics; a
/// planning round trip, no execution).
async fn expected_matches(tx: &mut PgConnection, f: &SearchFilter) -> Result<f64> {
    let mut st = Statement::new("EXPLAIN (FORMAT JSON) SELECT 1 FROM contacts c WHERE ");
    st.filter(f);
    let plan: serde_json::Value = st.query().fetch_one(&mut *tx).await?.try_get(0)?;
    Ok(plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(f64::MAX))
}

/// The statement a facet count runs, and whether it counts a sample: exact
/// when the planner expects few matches, else a sample (the benchmark runs
/// the same statement through pgbench).
pub async fn facets_statement(
    tx: &mut PgConnection,
    f: &SearchFilter,
    by: FacetBy,
) -> Result<(Statement, bool)> {
    let col = by.counted_column();
    Ok(if expected_matches(tx, f).await? <= EXACT_FACETS_MAX_ROWS {
        (facet_statement(f, col, "contacts c", 1.0), false)
    } else {
        (sampled(tx, f, col).await?, true)
    })
}

/// Exact counts within [`EXACT_FACETS_MS`], or None when that was not enough.
async fn exact_counts(
    tx: &mut PgConnection,
    exact: &Statement,
) -> Result<Option<Vec<sqlx::postgres::PgRow>>> {
    sqlx::query("SAVEPOINT exact_facets")
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("SET LOCAL statement_timeout = {EXACT_FACETS_MS}"))
        .execute(&mut *tx)
        .await?;
    match exact.query().fetch_all(&mut *tx).await {
        Ok(rows) => {
            sqlx::query("RELEASE SAVEPOINT exact_facets")
                .execute(&mut *tx)
                .await?;
            Ok(Some(rows))
        }
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("57014") => {
            // Cancelled by the timeout; the rollback restores the
            // connection's own timeout for the sample.
            sqlx::query("ROLLBACK TO SAVEPOINT exact_facets")
                .execute(&mut *tx)
                .await?;
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Counts on a block sample of about [`SAMPLE_ROWS`] contacts, scaled up
/// (repeatable: the same request gets the same estimate).
async fn sampled(tx: &mut PgConnection, f: &SearchFilter, col: &str) -> Result<Statement> {
    let total: f32 =
        sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = 'contacts'::regclass")
            .fetch_one(&mut *tx)
            .await?;
    let percent = (SAMPLE_ROWS / f64::from(total.max(1.0)) * 100.0).clamp(0.01, 100.0);
    let from = format!("contacts c TABLESAMPLE SYSTEM ({percent:.4}) REPEATABLE (1)");
    Ok(facet_statement(f, col, &from, 100.0 / percent))
}

/// The [`FACET_VALUES`] largest counts, ties by value; MCC counts summed
/// into their categories first when faceting by category.
fn top_values(by: FacetBy, rows: Vec<(String, i64)>) -> Vec<(String, i64)> {
    let mut values: Vec<(String, i64)> = if by == FacetBy::Category {
        let mut sums: HashMap<&'static str, i64> = HashMap::new();
        for (code, n) in &rows {
            let category = Mcc::parse(code).map(|m| m.category()).unwrap_or("Other");
            *sums.entry(category).or_default() += n;
        }
        sums.into_iter().map(|(c, n)| (c.to_string(), n)).collect()
    } else {
        rows
    };
    values.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    values.truncate(FACET_VALUES);
    values
}

/// Vacuum and analyze the corpus after a bulk load. Searches read pages
/// off covering indexes without visiting the table only where the
/// visibility map says a page is all-visible, and plan with the value
/// counts of the statistics; autovacuum gets there eventually, but after
/// millions of fresh contacts the first searches would otherwise pay for
/// it. Not in a transaction (VACUUM refuses one).
pub async fn vacuum_corpus(db: impl PgExecutor<'_>) -> Result<()> {
    sqlx::raw_sql("VACUUM (ANALYZE) contacts")
        .execute(db)
        .await?;
    Ok(())
}

/// What saving one id did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    Saved,
    AlreadySaved,
    /// No such contact, or it left the corpus (quarantined away, merged).
    NotAvailable,
}

/// Save contacts to the tenant's list; idempotent per id.
pub async fn save(
    tx: &mut PgConnection,
    tenant: TenantId,
    ids: &[Uuid],
    by: Option<Uuid>,
) -> Result<HashMap<Uuid, SaveOutcome>> {
    let active: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM contacts WHERE id = ANY($1) AND active")
            .bind(ids)
            .fetch_all(&mut *tx)
            .await?;
    let new_ids: Vec<Uuid> = active.iter().map(|_| Uuid::now_v7()).collect();
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO saved_contacts (id, tenant_id, contact_id, saved_by)
         SELECT t.id, $1, t.contact_id, $4 FROM unnest($2::uuid[], $3::uuid[]) AS t(id, contact_id)
         ON CONFLICT (tenant_id, contact_id) DO NOTHING RETURNING contact_id",
    )
    .bind(tenant.0)
    .bind(&new_ids)
    .bind(&active)
    .bind(by)
    .fetch_all(&mut *tx)
    .await?;
    Ok(ids
        .iter()
        .map(|id| {
            let outcome = if inserted.contains(id) {
                SaveOutcome::Saved
            } else if active.contains(id) {
                SaveOutcome::AlreadySaved
            } else {
                SaveOutcome::NotAvailable
            };
            (*id, outcome)
        })
        .collect())
}

/// One entry of a tenant's list.
pub struct Saved {
    pub id: Uuid,
    pub saved_at: chrono::DateTime<chrono::Utc>,
    /// Its current state: `active` false once it left the corpus.
    pub contact: Contact,
}

/// The tenant's saved contacts, oldest first, after the entry `after`.
pub async fn list_saved(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Saved>> {
    let rows = sqlx::query(&format!(
        "SELECT s.id, s.saved_at, c.id, c.corrected_fields, c.active, {}
         FROM saved_contacts s JOIN contacts c ON c.id = s.contact_id
         WHERE s.tenant_id = $1 AND ($2::uuid IS NULL OR s.id > $2)
         ORDER BY s.id LIMIT $3",
        columns("c.")
    ))
    .bind(tenant.0)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Saved {
                id: r.try_get(0)?,
                saved_at: r.try_get(1)?,
                contact: Contact {
                    id: r.try_get(2)?,
                    corrected_fields: r.try_get(3)?,
                    active: r.try_get(4)?,
                    values: Values::from_row(r, 5)?,
                },
            })
        })
        .collect()
}

/// Take a contact off the tenant's list; false when it was not on it.
pub async fn unsave(db: impl PgExecutor<'_>, tenant: TenantId, contact: Uuid) -> Result<bool> {
    Ok(
        sqlx::query("DELETE FROM saved_contacts WHERE tenant_id = $1 AND contact_id = $2")
            .bind(tenant.0)
            .bind(contact)
            .execute(db)
            .await?
            .rows_affected()
            == 1,
    )
}

/// Whether `tenant` has `contact` on its list.
pub async fn is_saved(db: impl PgExecutor<'_>, tenant: TenantId, contact: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM saved_contacts WHERE tenant_id = $1 AND contact_id = $2)",
    )
    .bind(tenant.0)
    .bind(contact)
    .fetch_one(db)
    .await?)
}
