//! The corpus's frequent company and person names
//! (`bizcontacts_matching::frequency`), counted from the active contacts
//! and kept in `term_frequencies` so that each dedupe job reads a few
//! thousand rows instead of counting a million contacts again.

use crate::Result;
use bizcontacts_domain::locks::{self, AdvisoryLock};
use bizcontacts_matching::{Counter, Field, Prepared, Record, TermFrequencies};
use futures::TryStreamExt;
use sqlx::{PgConnection, PgPool};
use std::time::Duration;

/// When to count again.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Values counted fewer times are not kept (they would only ever keep
    /// the model's weight, see `frequency`).
    pub min_count: u64,
    /// Counts older than this are taken again.
    pub max_age: Duration,
}

/// The counts to score with: the stored ones, counted again first when
/// they are missing, older than `max_age`, taken with another `min_count`,
/// or taken from under half the contacts there now (a corpus filling up).
pub async fn current(pool: &PgPool, policy: Policy) -> Result<TermFrequencies> {
    let mut tx = pool.begin().await?;
    if !stale(&mut tx, policy).await? {
        return load(&mut tx).await;
    }
    // Counted once: a job that waited here finds the counts fresh.
    sqlx::query(locks::SQL)
        .bind(AdvisoryLock::TermFrequencies.class())
        .bind("")
        .execute(&mut *tx)
        .await?;
    if !stale(&mut tx, policy).await? {
        return load(&mut tx).await;
    }
    let started = std::time::Instant::now();
    let (tf, contacts) = count(&mut tx, policy.min_count).await?;
    store(&mut tx, &tf, contacts, policy.min_count).await?;
    tx.commit().await?;
    tracing::info!(
        contacts,
        frequent = tf.values.len(),
        ms = started.elapsed().as_millis() as u64,
        "term frequencies counted"
    );
    Ok(tf)
}

async fn stale(tx: &mut PgConnection, policy: Policy) -> Result<bool> {
    // reltuples: the dedupe job keeps `contacts` analyzed; -1 when never.
    let row: Option<(i64, i64, bool)> = sqlx::query_as(
        "SELECT c.contacts, c.min_count,
                c.refreshed_at < now() - make_interval(secs => $1)
                OR (SELECT reltuples FROM pg_class WHERE oid = 'contacts'::regclass)
                   > 2 * c.contacts + 100
           FROM term_frequency_counts c",
    )
    .bind(policy.max_age.as_secs_f64())
    .fetch_optional(&mut *tx)
    .await?;
    Ok(match row {
        None => true,
        Some((_, min_count, old)) => old || min_count != policy.min_count as i64,
    })
}

/// Every active contact's values, streamed: memory grows with the distinct
/// names, not with the contacts.
async fn count(tx: &mut PgConnection, min_count: u64) -> Result<(TermFrequencies, u64)> {
    let mut counter = Counter::default();
    let mut contacts = 0u64;
    let mut rows =
        sqlx::query_as::<
            _,
            (
                Option<String>,
                Option<String>,
                Option<String>,
                Option<String>,
            ),
        >("SELECT company_name, first_name, last_name, city FROM contacts WHERE active")
        .fetch(&mut *tx);
    while let Some((company_name, first_name, last_name, city)) = rows.try_next().await? {
        contacts += 1;
        counter.add(&Prepared::new(&Record {
            company_name,
            first_name,
            last_name,
            city,
            ..Record::default()
        }));
    }
    Ok((counter.finish(min_count), contacts))
}

async fn store(
    tx: &mut PgConnection,
    tf: &TermFrequencies,
    contacts: u64,
    min_count: u64,
) -> Result<()> {
    sqlx::query("DELETE FROM term_frequencies")
        .execute(&mut *tx)
        .await?;
    let fields: Vec<&str> = tf.values.iter().map(|(f, _, _)| f.as_str()).collect();
    let values: Vec<&str> = tf.values.iter().map(|(_, v, _)| v.as_str()).collect();
    let counts: Vec<i64> = tf.values.iter().map(|(_, _, n)| *n as i64).collect();
    sqlx::query(
        "INSERT INTO term_frequencies (field, value, count)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[])",
    )
    .bind(&fields)
    .bind(&values)
    .bind(&counts)
    .execute(&mut *tx)
    .await?;
    let [places, first_names, last_names] = tf.totals.map(|t| t as i64);
    sqlx::query(
        "INSERT INTO term_frequency_counts
             (contacts, places, first_names, last_names, min_count, refreshed_at)
         VALUES ($1, $2, $3, $4, $5, now())
         ON CONFLICT (only_row) DO UPDATE SET
             contacts = EXCLUDED.contacts, places = EXCLUDED.places,
             first_names = EXCLUDED.first_names, last_names = EXCLUDED.last_names,
             min_count = EXCLUDED.min_count, refreshed_at = now()",
    )
    .bind(contacts as i64)
    .bind(places)
    .bind(first_names)
    .bind(last_names)
    .bind(min_count as i64)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The stored counts; none before the first count.
pub async fn load(db: &mut PgConnection) -> Result<TermFrequencies> {
    let totals: Option<(i64, i64, i64)> =
        sqlx::query_as("SELECT places, first_names, last_names FROM term_frequency_counts")
            .fetch_optional(&mut *db)
            .await?;
    let Some((places, first, last)) = totals else {
        return Ok(TermFrequencies::default());
    };
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT field, value, count FROM term_frequencies ORDER BY field, value COLLATE \"C\"",
    )
    .fetch_all(&mut *db)
    .await?;
    let values = rows
        .into_iter()
        .filter_map(|(field, value, n)| {
            // A field a later build no longer adjusts is skipped, not an error.
            let field = Field::ALL.into_iter().find(|f| f.as_str() == field)?;
            Some((field, value, n as u64))
        })
        .collect();
    Ok(TermFrequencies {
        values,
        totals: [places, first, last].map(|t| t.max(0) as u64),
    })
}
