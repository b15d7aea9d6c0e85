//! Push records: what was sent to a tenant's CRM, per contact.
//!
//! One row per tenant and contact. [`intend`] writes the attempt before the
//! HighLevel call (and commits), [`settle`] records its outcome; a row left
//! `pending` means an attempt whose outcome is unknown.

use crate::Result;
use bizcontacts_domain::TenantId;
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Push {
    pub id: Uuid,
    pub contact_id: Uuid,
    pub crm_contact_id: Option<String>,
    pub location_id: String,
    pub content_hash: Vec<u8>,
    pub status: String,
    pub error: Option<String>,
    pub job_id: Option<Uuid>,
    pub attempted_at: DateTime<Utc>,
    pub pushed_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, contact_id, crm_contact_id, location_id, content_hash, status, error,
                       job_id, attempted_at, pushed_at";

pub async fn get(db: impl PgExecutor<'_>, tenant: TenantId, contact: Uuid) -> Result<Option<Push>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM crm_pushes WHERE tenant_id = $1 AND contact_id = $2"
    ))
    .bind(tenant.0)
    .bind(contact)
    .fetch_optional(db)
    .await?)
}

/// Record an attempt before it is made. A known HighLevel id is kept.
pub async fn intend(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    contact: Uuid,
    location: &str,
    hash: &[u8],
    job: Option<Uuid>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO crm_pushes (tenant_id, contact_id, id, location_id, content_hash, status, job_id)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6)
         ON CONFLICT (tenant_id, contact_id) DO UPDATE SET id = excluded.id,
             location_id = excluded.location_id, content_hash = excluded.content_hash,
             status = 'pending', error = NULL, job_id = excluded.job_id, attempted_at = now(),
             crm_contact_id = CASE WHEN crm_pushes.location_id = excluded.location_id
                                   THEN crm_pushes.crm_contact_id END",
    )
    .bind(tenant.0)
    .bind(contact)
    .bind(Uuid::now_v7())
    .bind(location)
    .bind(hash)
    .bind(job)
    .execute(db)
    .await?;
    Ok(())
}

/// The outcome of the attempt [`intend`] recorded.
pub async fn settle(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    contact: Uuid,
    status: &str,
    crm_contact_id: Option<&str>,
    error: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE crm_pushes SET status = $3, crm_contact_id = coalesce($4, crm_contact_id),
             error = $5, pushed_at = CASE WHEN $3 = 'pushed' THEN now() ELSE pushed_at END
         WHERE tenant_id = $1 AND contact_id = $2",
    )
    .bind(tenant.0)
    .bind(contact)
    .bind(status)
    .bind(crm_contact_id)
    .bind(error)
    .execute(db)
    .await?;
    Ok(())
}

/// The tenant's push records, newest attempt first, after `before`.
pub async fn list(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    contact: Option<Uuid>,
    status: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Push>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM crm_pushes WHERE tenant_id = $1
           AND ($2::uuid IS NULL OR contact_id = $2) AND ($3::text IS NULL OR status = $3)
           AND ($4::uuid IS NULL OR id < $4)
         ORDER BY id DESC LIMIT $5"
    ))
    .bind(tenant.0)
    .bind(contact)
    .bind(status)
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await?)
}
