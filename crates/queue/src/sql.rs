//! SQL helpers shared by the ledger, the claim path and the relay.

use sqlx::PgConnection;
use std::time::Duration;

/// Settings for the worker's hot transactions (claim, finish, push marks).
///
/// - No wait for the WAL flush. Losing one of these in a Postgres crash is safe
///   by design: a lost claim leaves the job queued (the relay pushes it again),
///   a lost finish makes an idempotent job run again. Enqueues and handlers'
///   own transactions stay fully durable.
/// - Point lookups stay point lookups. These statements join a short id list
///   to `jobs` by primary key; a cached generic plan chosen while the table was
///   small (a hash join over a sequential scan) would later scan the whole
///   backlog on every claim. Measured: throughput fell from ~12,000 to ~2,000
///   jobs/s at random, depending on when autoanalyze ran.
pub(crate) async fn tune_hot_tx(tx: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT set_config('synchronous_commit', 'off', true), set_config('enable_seqscan', 'off', true),
                set_config('plan_cache_mode', 'force_custom_plan', true)",
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// A duration as a Postgres interval literal.
pub(crate) fn interval(d: Duration) -> String {
    format!("{} milliseconds", d.as_millis())
}
