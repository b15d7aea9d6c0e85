//! Whole-corpus sweeps: their resumable state and the pairs they found.

use crate::corpus::{self, Contact};
use crate::Result;
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Sweep {
    pub job_id: Uuid,
    pub apply: bool,
    /// The last contact checked; contacts are visited in id order.
    #[serde(skip)]
    pub cursor: Option<Uuid>,
    pub checked: i64,
    pub candidates: i64,
    pub merged: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Candidate {
    pub contact_a: Uuid,
    pub contact_b: Uuid,
    pub score: f32,
    pub merged: bool,
}

/// The sweep's state, created on its first run.
pub async fn start(db: &sqlx::PgPool, job_id: Uuid, apply: bool) -> Result<Sweep> {
    sqlx::query("INSERT INTO sweeps (job_id, apply) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(job_id)
        .bind(apply)
        .execute(db)
        .await?;
    get(db, job_id).await
}

pub async fn get(db: impl PgExecutor<'_>, job_id: Uuid) -> Result<Sweep> {
    sqlx::query_as(
        "SELECT job_id, apply, cursor, checked, candidates, merged FROM sweeps WHERE job_id = $1",
    )
    .bind(job_id)
    .fetch_optional(db)
    .await?
    .ok_or(crate::StoreError::NotFound)
}

pub async fn count_active(db: impl PgExecutor<'_>) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM contacts WHERE active")
            .fetch_one(db)
            .await?,
    )
}

/// The next `limit` active contacts after `cursor`, in id order.
pub async fn active_after(
    db: &mut PgConnection,
    cursor: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Contact>> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM contacts WHERE active AND ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2",
    )
    .bind(cursor)
    .bind(limit)
    .fetch_all(&mut *db)
    .await?;
    let mut contacts = corpus::load(&mut *db, &ids).await?;
    contacts.sort_by_key(|c| c.id);
    Ok(contacts)
}

/// Record a chunk: its pairs, the new cursor and counters.
pub async fn advance(
    tx: &mut PgConnection,
    job_id: Uuid,
    cursor: Uuid,
    checked: i64,
    found: &[(Uuid, Uuid, f32, bool)],
    merged: i64,
) -> Result<Sweep> {
    let a: Vec<Uuid> = found.iter().map(|f| f.0).collect();
    let b: Vec<Uuid> = found.iter().map(|f| f.1).collect();
    let s: Vec<f32> = found.iter().map(|f| f.2).collect();
    let m: Vec<bool> = found.iter().map(|f| f.3).collect();
    sqlx::query(
        "INSERT INTO sweep_candidates (job_id, contact_a, contact_b, score, merged)
         SELECT $1, * FROM UNNEST($2::uuid[], $3::uuid[], $4::real[], $5::bool[]) ON CONFLICT DO NOTHING",
    )
    .bind(job_id)
    .bind(&a)
    .bind(&b)
    .bind(&s)
    .bind(&m)
    .execute(&mut *tx)
    .await?;
    Ok(sqlx::query_as(
        "UPDATE sweeps SET cursor = $2, checked = checked + $3, candidates = candidates + $4, merged = merged + $5
         WHERE job_id = $1 RETURNING job_id, apply, cursor, checked, candidates, merged",
    )
    .bind(job_id)
    .bind(cursor)
    .bind(checked)
    .bind(found.len() as i64)
    .bind(merged)
    .fetch_one(&mut *tx)
    .await?)
}

/// Pairs a sweep found, best first, after `cursor` (a page offset).
pub async fn candidates(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    offset: i64,
    limit: i64,
) -> Result<Vec<Candidate>> {
    Ok(sqlx::query_as(
        "SELECT contact_a, contact_b, score, merged FROM sweep_candidates WHERE job_id = $1
         ORDER BY score DESC, contact_a, contact_b OFFSET $2 LIMIT $3",
    )
    .bind(job_id)
    .bind(offset)
    .bind(limit)
    .fetch_all(db)
    .await?)
}
