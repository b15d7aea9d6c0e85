//! Pool, database creation and migrations.

use crate::Result;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use std::str::FromStr;
use std::time::Duration;

/// `DELETE` of at most `$limit` rows of `table` matching `condition` (by
/// ctid, so any table, with or without a key): a bounded unit for the
/// retention and tenant-deletion passes, each its own short transaction.
pub(crate) fn delete_chunk_sql(table: &str, condition: &str, limit: &str) -> String {
    format!(
        "DELETE FROM {table} WHERE ctid = ANY(ARRAY(
             SELECT ctid FROM {table} WHERE {condition} LIMIT {limit}))"
    )
}

/// The workspace's migrations, compiled in.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pub pool: PgPool,
}

impl Store {
    pub async fn connect(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)?
            // Statement logging would put query parameters (emails, hashes) in logs.
            .disable_statement_logging();
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    /// Create the database named in `url` when it does not exist yet (used by
    /// `dev` and `migrate`, so a fresh machine needs no manual `createdb`).
    pub async fn create_database_if_missing(url: &str) -> Result<bool> {
        let options = PgConnectOptions::from_str(url)?;
        let name = options.get_database().unwrap_or("postgres").to_string();
        let mut admin = PgConnection::connect_with(&options.clone().database("postgres")).await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&name)
                .fetch_one(&mut admin)
                .await?;
        if exists {
            return Ok(false);
        }
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match sqlx::query(&format!("CREATE DATABASE {quoted}"))
            .execute(&mut admin)
            .await
        {
            Ok(_) => Ok(true),
            // Another process created it between our check and our CREATE.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// True when every embedded migration has been applied successfully.
    pub async fn migrations_current(&self) -> Result<bool> {
        let applied: Vec<i64> = match sqlx::query_scalar(
            "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await
        {
            Ok(v) => v,
            // No migrations table yet: nothing applied.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => {
                return Ok(false)
            }
            Err(e) => return Err(e.into()),
        };
        Ok(MIGRATOR
            .iter()
            .all(|m| applied.binary_search(&m.version).is_ok()))
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
