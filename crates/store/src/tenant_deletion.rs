//! Deleting a tenant: its schedule, and the steps the `tenant_delete` job
//! takes, each a bounded, idempotent unit (a killed run resumes with the
//! next unit that still finds something to delete).

use crate::Result;
use bizcontacts_domain::TenantId;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// A scheduled deletion.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Scheduled {
    pub name: String,
    pub delete_after: Option<DateTime<Utc>>,
    pub delete_reason: Option<String>,
    pub delete_requested_by: Option<Uuid>,
    pub delete_job_id: Option<Uuid>,
}

pub async fn get(db: impl PgExecutor<'_>, tenant: TenantId) -> Result<Option<Scheduled>> {
    Ok(sqlx::query_as(
        "SELECT name, delete_after, delete_reason, delete_requested_by, delete_job_id
         FROM tenants WHERE id = $1",
    )
    .bind(tenant.0)
    .fetch_optional(db)
    .await?)
}

/// Record the schedule (the caller holds the tenant's row lock).
pub async fn schedule(
    tx: &mut PgConnection,
    tenant: TenantId,
    after: DateTime<Utc>,
    reason: &str,
    by: Uuid,
    job: Uuid,
) -> Result<()> {
    sqlx::query(
        "UPDATE tenants SET delete_after = $2, delete_reason = $3, delete_requested_by = $4,
                delete_job_id = $5 WHERE id = $1",
    )
    .bind(tenant.0)
    .bind(after)
    .bind(reason)
    .bind(by)
    .bind(job)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub async fn unschedule(tx: &mut PgConnection, tenant: TenantId) -> Result<()> {
    sqlx::query(
        "UPDATE tenants SET delete_after = NULL, delete_reason = NULL, delete_requested_by = NULL,
                delete_job_id = NULL WHERE id = $1",
    )
    .bind(tenant.0)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Up to `limit` of the tenant's import batches, oldest first.
pub async fn imports(db: impl PgExecutor<'_>, tenant: TenantId, limit: i64) -> Result<Vec<Uuid>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM imports WHERE tenant_id = $1 ORDER BY id LIMIT $2")
            .bind(tenant.0)
            .bind(limit)
            .fetch_all(db)
            .await?,
    )
}

pub async fn delete_import(tx: &mut PgConnection, id: Uuid) -> Result<()> {
    sqlx::query("DELETE FROM imports WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The tenant's rows in tables that grow without bound, deleted in chunks
/// before the tenant's own row (whose cascade then only meets small
/// tables). `$1` is the tenant, `$2` the deleting job (kept).
pub const BULK: &[(&str, &str)] = &[
    ("jobs", "tenant_id = $1 AND id <> $2"),
    ("audit_events", "tenant_id = $1"),
    ("usage_daily", "tenant_id = $1"),
    ("saved_contacts", "tenant_id = $1"),
    ("corrections", "tenant_id = $1"),
    ("crm_pushes", "tenant_id = $1"),
    ("crm_pulled", "tenant_id = $1"),
    ("crm_contact_events", "tenant_id = $1"),
    ("stripe_events", "tenant_id = $1"),
];

/// Delete up to `limit` rows of one [`BULK`] table; returns how many.
pub async fn delete_chunk(
    db: impl PgExecutor<'_>,
    (table, condition): (&str, &str),
    tenant: TenantId,
    job: Uuid,
    limit: i64,
) -> Result<u64> {
    Ok(
        sqlx::query(&crate::db::delete_chunk_sql(table, condition, "$3"))
            .bind(tenant.0)
            .bind(job)
            .bind(limit)
            .execute(db)
            .await?
            .rows_affected(),
    )
}

/// The tenant's members who belong nowhere else and hold no system role:
/// they go with it (their sessions and keys by cascade). Returns how many.
pub async fn delete_sole_members(tx: &mut PgConnection, tenant: TenantId) -> Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM users u USING memberships m
         WHERE m.user_id = u.id AND m.tenant_id = $1
           AND NOT EXISTS (SELECT 1 FROM memberships o WHERE o.user_id = u.id AND o.tenant_id <> $1)
           AND NOT EXISTS (SELECT 1 FROM system_roles r WHERE r.user_id = u.id)",
    )
    .bind(tenant.0)
    .execute(&mut *tx)
    .await?
    .rows_affected())
}

/// The tenant's row; its cascade takes memberships, keys, invitations,
/// idempotency keys, the CRM connection and its sealed secrets, OAuth
/// states, billing and exports.
pub async fn delete_tenant(tx: &mut PgConnection, tenant: TenantId) -> Result<bool> {
    Ok(sqlx::query("DELETE FROM tenants WHERE id = $1")
        .bind(tenant.0)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1)
}
