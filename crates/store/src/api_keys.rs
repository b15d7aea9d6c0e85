//! API keys: stored as SHA-256 hashes with a short clear prefix for recognition.

use crate::error::parse_stored;
use crate::{Result, StoreError};
use bizcontacts_domain::{ApiKeyId, Permission, TenantId, UserId};
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// An API key as stored: never the key itself.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: ApiKeyId,
    /// `None` for a system-role key.
    pub tenant_id: Option<TenantId>,
    pub user_id: UserId,
    pub name: String,
    pub prefix: String,
    pub key_hash: Vec<u8>,
    pub scopes: Vec<Permission>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    id: uuid::Uuid,
    tenant_id: Option<uuid::Uuid>,
    user_id: uuid::Uuid,
    name: String,
    prefix: String,
    key_hash: Vec<u8>,
    scopes: Vec<String>,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(r: ApiKeyRow) -> Result<Self> {
        Ok(ApiKey {
            id: ApiKeyId(r.id),
            tenant_id: r.tenant_id.map(TenantId),
            user_id: UserId(r.user_id),
            name: r.name,
            prefix: r.prefix,
            key_hash: r.key_hash,
            scopes: r
                .scopes
                .iter()
                .map(|s| parse_stored("api_keys.scopes", s))
                .collect::<Result<_>>()?,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
        })
    }
}

const SELECT: &str = "SELECT id, tenant_id, user_id, name, prefix, key_hash, scopes, created_at,
     expires_at, revoked_at, last_used_at FROM api_keys";

pub struct NewKey<'a> {
    pub tenant_id: Option<TenantId>,
    pub user_id: UserId,
    pub name: &'a str,
    pub prefix: &'a str,
    pub key_hash: &'a [u8],
    pub scopes: &'a [Permission],
    pub expires_at: Option<DateTime<Utc>>,
}

pub async fn create(db: impl PgExecutor<'_>, key: NewKey<'_>) -> Result<ApiKey> {
    let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
    sqlx::query_as::<_, ApiKeyRow>(
        "INSERT INTO api_keys (id, tenant_id, user_id, name, prefix, key_hash, scopes, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING id, tenant_id, user_id, name, prefix, key_hash, scopes, created_at,
                   expires_at, revoked_at, last_used_at",
    )
    .bind(ApiKeyId::generate().0)
    .bind(key.tenant_id.map(|t| t.0))
    .bind(key.user_id.0)
    .bind(key.name)
    .bind(key.prefix)
    .bind(key.key_hash)
    .bind(&scopes)
    .bind(key.expires_at)
    .fetch_one(db)
    .await?
    .try_into()
}

/// Candidates for a presented key, found by its clear prefix; the caller
/// compares hashes in constant time.
pub async fn find_by_prefix(db: impl PgExecutor<'_>, prefix: &str) -> Result<Vec<ApiKey>> {
    sqlx::query_as::<_, ApiKeyRow>(&format!("{SELECT} WHERE prefix = $1"))
        .bind(prefix)
        .fetch_all(db)
        .await?
        .into_iter()
        .map(TryInto::try_into)
        .collect()
}

/// Keys of a tenant (revoked ones included, so the list is an honest history).
pub async fn list(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    after: Option<ApiKeyId>,
    limit: i64,
) -> Result<Vec<ApiKey>> {
    sqlx::query_as::<_, ApiKeyRow>(&format!(
        "{SELECT} WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
    ))
    .bind(tenant.0)
    .bind(after.map(|k| k.0))
    .bind(limit)
    .fetch_all(db)
    .await?
    .into_iter()
    .map(TryInto::try_into)
    .collect()
}

/// Revoke a key of `tenant`; revoking twice is fine, another tenant's key is not found.
pub async fn revoke(db: impl PgExecutor<'_>, tenant: TenantId, id: ApiKeyId) -> Result<()> {
    let found: Option<uuid::Uuid> = sqlx::query_scalar(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
         WHERE id = $1 AND tenant_id = $2 RETURNING id",
    )
    .bind(id.0)
    .bind(tenant.0)
    .fetch_optional(db)
    .await?;
    found.map(|_| ()).ok_or(StoreError::NotFound)
}

/// Revoke every active key of a user named `name` in `tenant` (the dev demo key
/// is rotated on each start this way).
pub async fn revoke_named(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    user: UserId,
    name: &str,
) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE api_keys SET revoked_at = now()
         WHERE tenant_id = $1 AND user_id = $2 AND name = $3 AND revoked_at IS NULL",
    )
    .bind(tenant.0)
    .bind(user.0)
    .bind(name)
    .execute(db)
    .await?
    .rows_affected())
}

/// Record use, at most once a minute per key.
pub async fn touch(db: impl PgExecutor<'_>, id: ApiKeyId) -> Result<()> {
    sqlx::query(
        "UPDATE api_keys SET last_used_at = now()
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
    )
    .bind(id.0)
    .execute(db)
    .await?;
    Ok(())
}
