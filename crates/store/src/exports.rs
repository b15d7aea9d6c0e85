//! Tenant exports: the row that tracks one, its ZIP in 1 MiB chunks (read
//! back one chunk per query, so a slow download holds no connection), and
//! the queries that make its files.

use crate::Result;
use bizcontacts_domain::TenantId;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// Bytes per stored chunk.
pub const CHUNK: usize = 1 << 20;

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Export {
    #[serde(rename = "export_id")]
    pub id: Uuid,
    #[serde(skip)]
    pub tenant_id: Uuid,
    pub job_id: Option<Uuid>,
    /// pending, ready or failed.
    pub status: String,
    pub byte_size: i64,
    pub files: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub ready_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, tenant_id, job_id, status, byte_size, files, error, created_at, ready_at, expires_at";

pub async fn create(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    by: Option<Uuid>,
    expires_at: DateTime<Utc>,
) -> Result<Export> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO exports (id, tenant_id, created_by, expires_at) VALUES ($1, $2, $3, $4)
         RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(tenant.0)
    .bind(by)
    .bind(expires_at)
    .fetch_one(db)
    .await?)
}

pub async fn set_job(db: impl PgExecutor<'_>, id: Uuid, job: Uuid) -> Result<()> {
    sqlx::query("UPDATE exports SET job_id = $2 WHERE id = $1")
        .bind(id)
        .bind(job)
        .execute(db)
        .await?;
    Ok(())
}

/// An export of `tenant` (None for another tenant's id).
pub async fn get(db: impl PgExecutor<'_>, tenant: TenantId, id: Uuid) -> Result<Option<Export>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM exports WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant.0)
    .fetch_optional(db)
    .await?)
}

/// Drop the chunks an earlier, killed run left.
pub async fn clear_chunks(tx: &mut PgConnection, id: Uuid) -> Result<()> {
    sqlx::query("DELETE FROM export_chunks WHERE export_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

pub async fn put_chunk(tx: &mut PgConnection, id: Uuid, seq: i32, data: &[u8]) -> Result<()> {
    sqlx::query("INSERT INTO export_chunks (export_id, seq, data) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(seq)
        .bind(data)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

pub async fn mark_ready(
    tx: &mut PgConnection,
    id: Uuid,
    size: i64,
    files: &serde_json::Value,
) -> Result<()> {
    sqlx::query(
        "UPDATE exports SET status = 'ready', byte_size = $2, files = $3, ready_at = now(), error = NULL
         WHERE id = $1",
    )
    .bind(id)
    .bind(size)
    .bind(files)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub async fn fail(db: impl PgExecutor<'_>, id: Uuid, error: &str) -> Result<()> {
    sqlx::query("UPDATE exports SET status = 'failed', error = $2 WHERE id = $1")
        .bind(id)
        .bind(error)
        .execute(db)
        .await?;
    Ok(())
}

/// One chunk of a ready export's ZIP.
pub async fn chunk(db: impl PgExecutor<'_>, id: Uuid, seq: i32) -> Result<Option<Vec<u8>>> {
    Ok(
        sqlx::query_scalar("SELECT data FROM export_chunks WHERE export_id = $1 AND seq = $2")
            .bind(id)
            .bind(seq)
            .fetch_optional(db)
            .await?,
    )
}

/// The files of an export: (name in the ZIP, a query of one JSON text per
/// row with the tenant as `$1`). Column lists are explicit: no password
/// hash, key hash, token or sealed secret is ever selected.
pub const FILES: &[(&str, &str)] = &[
    ("members.jsonl", "SELECT json_build_object('user_id', u.id, 'email', u.email, 'role', m.role, 'member_since', m.created_at)::text
        FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.tenant_id = $1 ORDER BY m.created_at, u.id"),
    ("api_keys.jsonl", "SELECT json_build_object('id', id, 'name', name, 'prefix', prefix, 'scopes', scopes, 'user_id', user_id,
            'created_at', created_at, 'expires_at', expires_at, 'revoked_at', revoked_at, 'last_used_at', last_used_at)::text
        FROM api_keys WHERE tenant_id = $1 ORDER BY id"),
    ("invitations.jsonl", "SELECT json_build_object('id', id, 'email', email, 'role', role, 'created_at', created_at,
            'expires_at', expires_at, 'accepted_at', accepted_at, 'revoked_at', revoked_at)::text
        FROM invitations WHERE tenant_id = $1 ORDER BY created_at, id"),
    ("imports.jsonl", "SELECT json_build_object('id', id, 'source', source, 'status', status, 'filename', filename,
            'byte_size', byte_size, 'header', header, 'mapping', mapping, 'total_rows', total_rows,
            'valid_rows', valid_rows, 'invalid_rows', invalid_rows, 'duplicate_rows', duplicate_rows,
            'approved_rows', approved_rows, 'rejected_rows', rejected_rows, 'merged_rows', merged_rows,
            'created_rows', created_rows, 'message', message, 'created_at', created_at, 'finished_at', finished_at)::text
        FROM imports WHERE tenant_id = $1 ORDER BY id"),
    ("staged_rows.jsonl", "SELECT json_build_object('import_id', s.import_id, 'row_number', s.row_number, 'status', s.status,
            'raw', s.raw, 'company_name', s.company_name, 'first_name', s.first_name, 'last_name', s.last_name,
            'email', s.email, 'phone', s.phone, 'website', s.website, 'address', s.address, 'city', s.city,
            'postcode', s.postcode, 'region', s.region, 'country', s.country, 'segment', s.segment, 'type', s.type,
            'mcc', s.mcc, 'errors', s.errors, 'contact_id', s.contact_id, 'outcome', s.outcome, 'decided_at', s.decided_at)::text
        FROM staged_rows s JOIN imports i ON i.id = s.import_id WHERE i.tenant_id = $1 ORDER BY s.import_id, s.row_number"),
    ("saved_contacts.jsonl", "SELECT json_build_object('contact_id', contact_id, 'saved_at', saved_at, 'saved_by', saved_by)::text
        FROM saved_contacts WHERE tenant_id = $1 ORDER BY id"),
    ("corrections.jsonl", "SELECT json_build_object('id', id, 'contact_id', contact_id, 'field', field, 'value', value,
            'note', note, 'created_by', created_by, 'created_at', created_at)::text
        FROM corrections WHERE tenant_id = $1 ORDER BY created_at, id"),
    ("crm_pushes.jsonl", "SELECT json_build_object('contact_id', contact_id, 'crm_contact_id', crm_contact_id,
            'location_id', location_id, 'status', status, 'error', error, 'attempted_at', attempted_at, 'pushed_at', pushed_at)::text
        FROM crm_pushes WHERE tenant_id = $1 ORDER BY id"),
    ("usage_daily.jsonl", "SELECT json_build_object('day', day, 'searches', searches, 'jobs', jobs, 'import_rows', import_rows)::text
        FROM usage_daily WHERE tenant_id = $1 ORDER BY day"),
    ("audit_events.jsonl", "SELECT json_build_object('id', id, 'at', at, 'action', action, 'actor_user_id', actor_user_id,
            'actor_api_key_id', actor_api_key_id, 'target_type', target_type, 'target_id', target_id, 'details', details)::text
        FROM audit_events WHERE tenant_id = $1 ORDER BY id"),
];
