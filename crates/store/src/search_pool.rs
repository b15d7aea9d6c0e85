//! The connections searches run on: a pool of their own, whose sessions
//! start with every setting a search needs.
//!
//! Why a pool apart from the intake's: a search request is two statements
//! (count it, run it) and nothing else, each in its own implicit
//! transaction, so no `BEGIN`, `SET LOCAL` or `COMMIT` round trips; with
//! two cores the round trips, not the index reads, were most of a
//! search's cost (docs/benchmarks.md, 2026-12-02). And its size bounds how
//! many searches run at once, so a burst of searches queues on this pool
//! instead of taking the connections sign-ins, uploads and jobs need.
//!
//! The settings, sent in the connection's startup packet:
//! - `pg_trgm.word_similarity_threshold`: how similar `q` must be (see
//!   [`crate::search`]).
//! - `plan_cache_mode = force_custom_plan`: statements are prepared and
//!   cached per connection, and a generic plan would be chosen without the
//!   values, while the right plan depends on them (walk the id index for a
//!   dense value, read a rare MCC's entries and sort them).
//! - `max_parallel_workers_per_gather = 0`: every search plan reads a
//!   bounded part of an index; workers would only add processes competing
//!   for the same cores under concurrent searches.
//! - `statement_timeout`: no search holds a connection longer than
//!   [`SEARCH_TIMEOUT_MS`], whatever the planner makes of a shape.
//! - `synchronous_commit = off`: the only write here is the daily search
//!   counter, one row per tenant that every search of the tenant updates,
//!   so its row lock is what concurrent searches queue on; without waiting
//!   for the WAL flush they queue behind microseconds instead of a disk
//!   sync. The count stays exact under concurrency (the row lock); a
//!   Postgres crash may forget the last fraction of a second of counted
//!   searches.

use crate::Result;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use std::str::FromStr;
use std::time::Duration;

/// How similar `q` must be to a word run of the names: 0.5 lets one typo in
/// a word of five letters or more through ("brightwatr" finds
/// "Brightwater"), where pg_trgm's default of 0.6 does not.
pub const WORD_SIMILARITY: f32 = 0.5;

/// Longest a search statement may run; past it Postgres cancels it and the
/// request is told to narrow the search.
pub const SEARCH_TIMEOUT_MS: u32 = 3_000;

/// Connections for searches and their counter; cheap to clone.
#[derive(Clone, Debug)]
pub struct SearchPool(PgPool);

impl SearchPool {
    pub async fn connect(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)?
            .disable_statement_logging()
            .options(settings());
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(Self(pool))
    }

    pub fn pool(&self) -> &PgPool {
        &self.0
    }
}

/// The session settings of every search connection (see the module notes),
/// also what the benchmark gives `pgbench`.
pub fn settings() -> [(&'static str, String); 5] {
    [
        (
            "pg_trgm.word_similarity_threshold",
            WORD_SIMILARITY.to_string(),
        ),
        ("plan_cache_mode", "force_custom_plan".into()),
        ("max_parallel_workers_per_gather", "0".into()),
        ("statement_timeout", SEARCH_TIMEOUT_MS.to_string()),
        ("synchronous_commit", "off".into()),
    ]
}
