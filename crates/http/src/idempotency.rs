//! `Idempotency-Key`: one key names one request.
//!
//! The first request with a key records the endpoint it was sent to, a hash
//! of what it asked for, and what it created, in the transaction that
//! creates it. The same request with the same key returns what the first one
//! created (200, no second batch or job); the key on another endpoint, or
//! with another body, is a 422 saying so (Stripe's rule). Keys are per
//! tenant and shared by every endpoint that takes one.

use crate::error::ApiError;
use axum::http::HeaderMap;
use bizcontacts_domain::TenantId;
use bizcontacts_store::idempotency::{self, KeyUse};
use sha2::{Digest, Sha256};
use sqlx::PgExecutor;
use uuid::Uuid;

/// A request's key, bound to the endpoint it came to.
pub(crate) struct Keyed {
    pub key: String,
    endpoint: &'static str,
}

impl Keyed {
    /// The `Idempotency-Key` header, if any: 1 to 200 visible ASCII characters.
    pub fn from_headers(
        headers: &HeaderMap,
        endpoint: &'static str,
    ) -> Result<Option<Self>, ApiError> {
        let Some(v) = headers.get("idempotency-key") else {
            return Ok(None);
        };
        let key = v
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= 200)
            .ok_or_else(|| {
                ApiError::field(
                    "Idempotency-Key",
                    "must be 1 to 200 visible ASCII characters",
                )
            })?;
        Ok(Some(Keyed {
            key: key.to_string(),
            endpoint,
        }))
    }

    /// The key's earlier use, if any; a 422 at once when it was another
    /// endpoint's (before any body is read).
    pub async fn earlier(
        &self,
        db: impl PgExecutor<'_>,
        tenant: TenantId,
    ) -> Result<Option<KeyUse>, ApiError> {
        let Some(used) = idempotency::find(db, tenant, &self.key).await? else {
            return Ok(None);
        };
        if used.endpoint != self.endpoint {
            return Err(ApiError::field(
                "Idempotency-Key",
                format!(
                    "was already used for {}; use a new key for this request",
                    used.endpoint
                ),
            ));
        }
        Ok(Some(used))
    }

    /// What the earlier request with this key created, when this request is
    /// the same; a 422 when it asks for something else.
    pub fn same(&self, used: &KeyUse, hash: &[u8]) -> Result<Uuid, ApiError> {
        if used.request_hash != hash {
            return Err(ApiError::field(
                "Idempotency-Key",
                format!(
                    "was already used for {} with a different request; use a new key",
                    self.endpoint
                ),
            ));
        }
        Ok(used.resource_id)
    }

    /// [`Self::earlier`] then [`Self::same`], for requests whose hash is known
    /// before any work: the resource to replay, or `None` for a first use.
    pub async fn replayed(
        &self,
        db: impl PgExecutor<'_>,
        tenant: TenantId,
        hash: &[u8],
    ) -> Result<Option<Uuid>, ApiError> {
        match self.earlier(db, tenant).await? {
            Some(used) => self.same(&used, hash).map(Some),
            None => Ok(None),
        }
    }

    /// Record this first use in the transaction that creates `resource`.
    /// False when a concurrent request with the key won: roll back, then
    /// [`Self::replayed`] says what to answer.
    pub async fn record(
        &self,
        db: impl PgExecutor<'_>,
        tenant: TenantId,
        hash: &[u8],
        resource: Uuid,
    ) -> Result<bool, ApiError> {
        Ok(idempotency::record(
            db,
            tenant,
            &self.key,
            &KeyUse {
                endpoint: self.endpoint.to_string(),
                request_hash: hash.to_vec(),
                resource_id: resource,
            },
        )
        .await?)
    }
}

/// SHA-256 over parts, each length-prefixed so ("ab","c") and ("a","bc") differ.
pub(crate) fn hash_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().to_vec()
}
