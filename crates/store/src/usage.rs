//! Per-tenant daily usage counters (UTC days).

use crate::Result;
use bizcontacts_domain::TenantId;
use chrono::NaiveDate;
use serde::Serialize;
use sqlx::PgExecutor;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DailyUsage {
    pub searches: i32,
    pub jobs: i32,
    pub import_rows: i32,
}

/// Today's counters; a day with no row yet is all zeros.
pub async fn get(db: impl PgExecutor<'_>, tenant: TenantId, day: NaiveDate) -> Result<DailyUsage> {
    Ok(sqlx::query_as::<_, DailyUsage>(
        "SELECT searches, jobs, import_rows FROM usage_daily WHERE tenant_id = $1 AND day = $2",
    )
    .bind(tenant.0)
    .bind(day)
    .fetch_optional(db)
    .await?
    .unwrap_or_default())
}

/// One day's counters for several tenants at once (missing rows are zeros).
pub async fn get_many(
    db: impl PgExecutor<'_>,
    tenants: &[TenantId],
    day: NaiveDate,
) -> Result<std::collections::HashMap<TenantId, DailyUsage>> {
    let ids: Vec<uuid::Uuid> = tenants.iter().map(|t| t.0).collect();
    let rows: Vec<(uuid::Uuid, i32, i32, i32)> = sqlx::query_as(
        "SELECT tenant_id, searches, jobs, import_rows FROM usage_daily WHERE tenant_id = ANY($1) AND day = $2",
    )
    .bind(&ids)
    .bind(day)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(t, searches, jobs, import_rows)| {
            (
                TenantId(t),
                DailyUsage {
                    searches,
                    jobs,
                    import_rows,
                },
            )
        })
        .collect())
}

/// Open the usage day for every tenant (idempotent: existing rows are kept).
/// Returns how many rows were created.
pub async fn open_day_for_all(db: impl PgExecutor<'_>, day: NaiveDate) -> Result<u64> {
    Ok(sqlx::query(
        "INSERT INTO usage_daily (tenant_id, day) SELECT id, $1 FROM tenants
         ON CONFLICT (tenant_id, day) DO NOTHING",
    )
    .bind(day)
    .execute(db)
    .await?
    .rows_affected())
}

/// A daily counter that is taken one at a time.
#[derive(Debug, Clone, Copy)]
pub enum Counter {
    Jobs,
    Searches,
}

/// Count one more job or search for `tenant` today, unless that would pass
/// `limit`: one statement, so concurrent requests can never pass it together
/// (100 parallel searches at the edge: tests/it/search.rs). Returns what is
/// left today, or `None` when the limit is already reached.
pub async fn consume(
    db: impl PgExecutor<'_>,
    counter: Counter,
    tenant: TenantId,
    day: NaiveDate,
    limit: i32,
) -> Result<Option<i32>> {
    let column = match counter {
        Counter::Jobs => "jobs",
        Counter::Searches => "searches",
    };
    let used: Option<i32> = sqlx::query_scalar(&format!(
        "INSERT INTO usage_daily AS u (tenant_id, day, {column}) VALUES ($1, $2, 1)
         ON CONFLICT (tenant_id, day) DO UPDATE SET {column} = u.{column} + 1 WHERE u.{column} < $3
         RETURNING {column}"
    ))
    .bind(tenant.0)
    .bind(day)
    .bind(limit)
    .fetch_optional(db)
    .await?;
    Ok(used.filter(|u| *u <= limit).map(|u| limit - u))
}

/// Take up to `want` import rows from today's allowance of `limit`; returns
/// how many were granted (0 once the day's rows are used up). Call in the
/// transaction that stages the rows, so a rolled-back chunk costs nothing.
pub async fn consume_import_rows(
    db: &mut sqlx::PgConnection,
    tenant: TenantId,
    day: NaiveDate,
    want: i32,
    limit: i32,
) -> Result<i32> {
    let used: i32 = sqlx::query_scalar(
        "INSERT INTO usage_daily AS u (tenant_id, day) VALUES ($1, $2)
         ON CONFLICT (tenant_id, day) DO UPDATE SET import_rows = u.import_rows
         RETURNING import_rows",
    )
    .bind(tenant.0)
    .bind(day)
    .fetch_one(&mut *db)
    .await?;
    // The upsert above locked the row until commit: no other chunk can race this one.
    let granted = want.min(limit - used).max(0);
    if granted > 0 {
        sqlx::query("UPDATE usage_daily SET import_rows = import_rows + $3 WHERE tenant_id = $1 AND day = $2")
            .bind(tenant.0)
            .bind(day)
            .bind(granted)
            .execute(&mut *db)
            .await?;
    }
    Ok(granted)
}
