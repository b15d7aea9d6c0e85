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
use crate::Result;
use bizcontacts_domain::search::{MccFilter, SearchFilter};
use bizcontacts_domain::TenantId;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgConnection, PgExecutor, Postgres, Row};
use std::collections::HashMap;
use uuid::Uuid;

/// How similar `q` must be to a word run of the names: 0.5 lets one typo in
/// a word of five letters or more through ("brightwatr" finds
/// "Brightwater"), where pg_trgm's default of 0.6 does not.
const WORD_SIMILARITY: f32 = 0.5;

/// The WHERE clause of a filter over `contacts c`, with its arguments bound
/// from `$first` on, in order: countries, categories, segments, types, MCC
/// codes, range starts, range ends, q.
fn where_clause(first: usize) -> String {
    let p = |i: usize| format!("${}", first + i);
    format!(
        "c.active
         AND (cardinality({0}::text[]) = 0 OR c.country = ANY({0}))
         AND (cardinality({1}::text[]) = 0 OR c.category = ANY({1}))
         AND (cardinality({2}::text[]) = 0 OR c.segment = ANY({2}))
         AND (cardinality({3}::text[]) = 0 OR c.type = ANY({3}))
         AND ((cardinality({4}::text[]) = 0 AND cardinality({5}::text[]) = 0)
              OR c.mcc = ANY({4})
              OR EXISTS (SELECT 1 FROM unnest({5}::text[], {6}::text[]) AS r(lo, hi)
                         WHERE c.mcc BETWEEN r.lo AND r.hi))
         AND ({7}::text IS NULL OR {7} <% contact_search_text(c.company_name, c.first_name, c.last_name))",
        p(0),
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6),
        p(7)
    )
}

fn bind_filter<'q>(
    q: Query<'q, Postgres, PgArguments>,
    f: &'q SearchFilter,
) -> Query<'q, Postgres, PgArguments> {
    let strs = |v: Vec<&'q str>| v.into_iter().map(str::to_string).collect::<Vec<String>>();
    let mut codes = Vec::new();
    let (mut lo, mut hi) = (Vec::new(), Vec::new());
    for m in &f.mccs {
        match m {
            MccFilter::Code(c) => codes.push(c.as_str().to_string()),
            MccFilter::Range(a, b) => {
                lo.push(a.clone());
                hi.push(b.clone());
            }
        }
    }
    q.bind(strs(f.countries.iter().map(|c| c.as_str()).collect()))
        .bind(strs(f.categories.clone()))
        .bind(strs(f.segments.iter().map(|s| s.as_str()).collect()))
        .bind(strs(f.types.iter().map(|t| t.as_str()).collect()))
        .bind(codes)
        .bind(lo)
        .bind(hi)
        .bind(f.q.clone())
}

/// Settings of a search transaction: the similarity threshold of `<%`, and
/// a plan made for the values at hand. The statement is prepared and cached
/// per connection, and a generic plan cannot see that an empty filter's
/// `cardinality($1) = 0 OR ...` is simply true, so it would scan every
/// contact instead of using the filter's index.
///
/// And a bound on its time ([`SEARCH_TIMEOUT_MS`]): combinations of dense
/// filters still take seconds on millions of contacts (docs/benchmarks.md),
/// and no request may hold a connection that long.
async fn set_threshold(tx: &mut PgConnection) -> Result<()> {
    sqlx::query(
        "SELECT set_config('pg_trgm.word_similarity_threshold', $1, true),
                set_config('plan_cache_mode', 'force_custom_plan', true),
                set_config('statement_timeout', $2, true)",
    )
    .bind(WORD_SIMILARITY.to_string())
    .bind(SEARCH_TIMEOUT_MS.to_string())
    .execute(tx)
    .await?;
    Ok(())
}

/// Longest a search statement may run; past it Postgres cancels it and the
/// request is told to narrow the search.
pub const SEARCH_TIMEOUT_MS: u32 = 3_000;

/// One result: the canonical contact and whether `tenant` saved it.
pub struct Found {
    pub contact: Contact,
    pub saved: bool,
}

/// Up to `limit` active contacts matching `f` after the contact `after`.
pub async fn search(
    tx: &mut PgConnection,
    tenant: TenantId,
    f: &SearchFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Found>> {
    set_threshold(tx).await?;
    let sql = format!(
        "SELECT c.id, c.corrected_fields,
                EXISTS (SELECT 1 FROM saved_contacts s WHERE s.tenant_id = $1 AND s.contact_id = c.id),
                {}
         FROM contacts c
         WHERE {} AND ($2::uuid IS NULL OR c.id > $2)
         ORDER BY c.id LIMIT $3",
        columns("c."),
        where_clause(4)
    );
    let q = sqlx::query(&sql).bind(tenant.0).bind(after).bind(limit);
    let rows = bind_filter(q, f).fetch_all(&mut *tx).await?;
    rows.iter()
        .map(|r| {
            Ok(Found {
                contact: Contact {
                    id: r.try_get(0)?,
                    corrected_fields: r.try_get(1)?,
                    active: true,
                    values: Values::from_row(r, 3)?,
                },
                saved: r.try_get(2)?,
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
}

/// Top values of a dimension among the contacts matching a filter.
pub struct Facets {
    pub values: Vec<(String, i64)>,
    /// True when counted on a sample because the exact count took too long.
    pub estimated: bool,
}

/// The exact count gets this long; past it, a 1% block sample is counted and
/// scaled, and the answer says it is an estimate.
const EXACT_FACETS_MS: u32 = 250;
/// Values returned per dimension.
const FACET_VALUES: i64 = 25;

pub async fn facets(tx: &mut PgConnection, f: &SearchFilter, by: FacetBy) -> Result<Facets> {
    set_threshold(tx).await?;
    let col = by.column();
    let sql = |from: &str, scale: &str| {
        format!(
            "SELECT c.{col}, (count(*) * {scale})::bigint FROM {from}
             WHERE {} AND c.{col} IS NOT NULL
             GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {FACET_VALUES}",
            where_clause(1)
        )
    };
    sqlx::query("SAVEPOINT exact_facets")
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("SET LOCAL statement_timeout = {EXACT_FACETS_MS}"))
        .execute(&mut *tx)
        .await?;
    let exact = sql("contacts c", "1");
    let rows: std::result::Result<Vec<(String, i64)>, sqlx::Error> =
        bind_filter(sqlx::query(&exact), f)
            .fetch_all(&mut *tx)
            .await
            .and_then(|rows| {
                rows.iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                    .collect()
            });
    match rows {
        Ok(values) => {
            sqlx::query("RELEASE SAVEPOINT exact_facets")
                .execute(&mut *tx)
                .await?;
            Ok(Facets {
                values,
                estimated: false,
            })
        }
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("57014") => {
            // Cancelled by the timeout: count a sample instead, back under
            // the search's own settings and timeout.
            sqlx::query("ROLLBACK TO SAVEPOINT exact_facets")
                .execute(&mut *tx)
                .await?;
            set_threshold(tx).await?;
            let sampled = sql("contacts c TABLESAMPLE SYSTEM (1) REPEATABLE (1)", "100");
            let rows = bind_filter(sqlx::query(&sampled), f)
                .fetch_all(&mut *tx)
                .await?;
            let values = rows
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_>>()?;
            Ok(Facets {
                values,
                estimated: true,
            })
        }
        Err(e) => Err(e.into()),
    }
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
