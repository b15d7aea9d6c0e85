//! Idempotency keys: which request a tenant's key named, and what it made.

use crate::Result;
use bizcontacts_domain::TenantId;
use sqlx::PgExecutor;
use uuid::Uuid;

/// The request a key was first used for.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyUse {
    pub endpoint: String,
    pub request_hash: Vec<u8>,
    pub resource_id: Uuid,
}

pub async fn find(db: impl PgExecutor<'_>, tenant: TenantId, key: &str) -> Result<Option<KeyUse>> {
    Ok(sqlx::query_as(
        "SELECT endpoint, request_hash, resource_id FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
    )
    .bind(tenant.0)
    .bind(key)
    .fetch_optional(db)
    .await?)
}

/// Record the key's first use in the transaction that creates `resource`;
/// false when another request took the key first (its transaction committed,
/// or this insert waited for it to).
pub async fn record(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    key: &str,
    used: &KeyUse,
) -> Result<bool> {
    Ok(sqlx::query(
        "INSERT INTO idempotency_keys (tenant_id, key, endpoint, request_hash, resource_id)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(tenant.0)
    .bind(key)
    .bind(&used.endpoint)
    .bind(&used.request_hash)
    .bind(used.resource_id)
    .execute(db)
    .await?
    .rows_affected()
        == 1)
}
