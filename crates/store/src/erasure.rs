//! Erasing one contact from the shared corpus, and the tombstone that
//! keeps the same person from coming back unnoticed.
//!
//! What goes: every value of the contact and of the staged rows it was made
//! from (their raw cells too), the corrections aimed at it, its blocking
//! keys, and its open match candidates. What stays: an empty, inactive
//! contact row (`erased_at` set), so tenants' saved contacts and push
//! records point at something that shows as withdrawn; and the 64-bit
//! hashes of its blocking keys in `erased_keys` (hashes of normalized
//! values, not the values), which the dedupe job checks: a later row
//! sharing one waits for a reviewer, who may say "different" but not "same".

use crate::corpus::{self, contributions, keys_of, remove_keys, FIELDS};
use crate::Result;
use bizcontacts_matching::BlockId;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// Erase contact `id`; false when there is no such contact or it was
/// erased before. Under the corpus lock, like every corpus write.
pub async fn erase(tx: &mut PgConnection, id: Uuid) -> Result<bool> {
    corpus::lock(tx).await?;
    let fresh: Option<bool> =
        sqlx::query_scalar("SELECT erased_at IS NULL FROM contacts WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    if fresh != Some(true) {
        return Ok(false);
    }
    let rows = contributions(tx, &[id]).await?;
    let keys = keys_of(rows.iter());
    let hashes: Vec<BlockId> = keys.iter().map(|(k, _)| *k).collect();
    sqlx::query(
        "INSERT INTO erased_keys (key, contact_id) SELECT k, $2 FROM UNNEST($1::bigint[]) AS k
         ON CONFLICT DO NOTHING",
    )
    .bind(&hashes)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    remove_keys(tx, &keys).await?;
    let blank = FIELDS
        .iter()
        .map(|f| format!("{f} = NULL"))
        .collect::<Vec<_>>()
        .join(", ");
    sqlx::query(&format!(
        "UPDATE staged_rows SET {blank}, raw = '{{}}', errors = NULL WHERE contact_id = $1"
    ))
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!(
        "UPDATE contacts SET {blank}, corrected_fields = '{{}}', active = false, erased_at = now(),
                updated_at = now()
         WHERE id = $1"
    ))
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM corrections WHERE contact_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM match_candidates WHERE contact_id = $1 AND decision IS NULL")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(true)
}

/// Whether any contact was ever erased (then rows are checked against
/// tombstones). Read under the corpus lock, which [`erase`] takes too.
pub async fn any(db: impl PgExecutor<'_>) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM erased_keys)")
            .fetch_one(db)
            .await?,
    )
}

/// Erased contacts filed under any of `keys`, as (key, contact) pairs.
pub async fn by_keys(db: impl PgExecutor<'_>, keys: &[BlockId]) -> Result<Vec<(BlockId, Uuid)>> {
    Ok(
        sqlx::query_as("SELECT key, contact_id FROM erased_keys WHERE key = ANY($1)")
            .bind(keys)
            .fetch_all(db)
            .await?,
    )
}

/// Which of `ids` are erased contacts.
pub async fn erased_among(db: impl PgExecutor<'_>, ids: &[Uuid]) -> Result<Vec<Uuid>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM contacts WHERE id = ANY($1) AND erased_at IS NOT NULL")
            .bind(ids)
            .fetch_all(db)
            .await?,
    )
}
