//! Worker presence: each worker process registers a row in `workers` when it
//! starts, refreshes its heartbeat (and how many jobs it runs) with its
//! lease renewals, and marks itself stopped on a graceful shutdown. A
//! process killed without one keeps its last heartbeat: readers call it
//! lost once that is older than [`LOST_AFTER_HEARTBEATS`] heartbeats. Rows
//! of workers gone for a day are removed by the next worker that starts.

use serde::Serialize;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::time::Duration;

/// Missed heartbeats after which a worker that did not say it stopped is lost.
pub const LOST_AFTER_HEARTBEATS: u32 = 3;

pub(crate) async fn register(
    pool: &PgPool,
    id: &str,
    kinds: &BTreeMap<String, usize>,
) -> Result<(), sqlx::Error> {
    let host = id.rsplitn(3, '-').nth(2).unwrap_or(id).to_string();
    sqlx::query("DELETE FROM workers WHERE heartbeat_at < now() - interval '1 day'")
        .execute(pool)
        .await?;
    sqlx::query("INSERT INTO workers (id, host, pid, kinds) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(host)
        .bind(std::process::id() as i32)
        .bind(serde_json::to_value(kinds).expect("a map of counts"))
        .execute(pool)
        .await?;
    Ok(())
}

pub(crate) async fn beat(pool: &PgPool, id: &str, in_flight: usize) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE workers SET heartbeat_at = now(), in_flight = $2 WHERE id = $1")
        .bind(id)
        .bind(in_flight as i32)
        .execute(pool)
        .await?;
    Ok(())
}

pub(crate) async fn stopped(pool: &PgPool, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE workers SET stopped_at = now(), in_flight = 0 WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// A worker as operators see it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct WorkerView {
    pub id: String,
    pub host: String,
    pub pid: i32,
    /// kind -> jobs it runs at once.
    #[schema(value_type = Object)]
    pub kinds: serde_json::Value,
    pub in_flight: i32,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub heartbeat_at: chrono::DateTime<chrono::Utc>,
    pub stopped_at: Option<chrono::DateTime<chrono::Utc>>,
    /// `live`, `stopped` (said so), or `lost` (heartbeat stale: killed, or
    /// cut off from the database).
    pub state: String,
}

/// Workers seen in the last day, live ones first, newest first.
pub async fn list(pool: &PgPool, heartbeat: Duration) -> Result<Vec<WorkerView>, sqlx::Error> {
    let stale_ms = (heartbeat * LOST_AFTER_HEARTBEATS).as_millis() as i64;
    sqlx::query_as(
        "SELECT id, host, pid, kinds, in_flight, started_at, heartbeat_at, stopped_at,
                CASE WHEN stopped_at IS NOT NULL THEN 'stopped'
                     WHEN heartbeat_at < now() - make_interval(secs => $1 / 1000.0) THEN 'lost'
                     ELSE 'live' END AS state
         FROM workers WHERE heartbeat_at > now() - interval '1 day'
         ORDER BY (stopped_at IS NULL AND heartbeat_at >= now() - make_interval(secs => $1 / 1000.0)) DESC,
                  started_at DESC, id",
    )
    .bind(stale_ms as f64)
    .fetch_all(pool)
    .await
}
