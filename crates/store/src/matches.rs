//! Possible matches: a staged row and a contact that scored between
//! "different" and "same". The row waits, approved, until a reviewer
//! decides; the next dedupe run then follows the decision.

use crate::corpus::{self, Values};
use crate::Result;
use sqlx::{PgConnection, PgExecutor, Row};
use uuid::Uuid;

/// One open or decided pair, with both records for a side-by-side view.
#[derive(Debug, Clone)]
pub struct Pair {
    pub row_id: Uuid,
    pub row_number: i32,
    pub row: Values,
    pub contact_id: Uuid,
    pub contact: Values,
    pub score: f32,
    pub explanation: Option<serde_json::Value>,
    pub decision: Option<String>,
}

/// The batch's pairs by row number then contact, from `offset`.
pub async fn list(
    db: impl PgExecutor<'_>,
    import_id: Uuid,
    offset: i64,
    limit: i64,
) -> Result<Vec<Pair>> {
    let (row_cols, contact_cols) = (corpus::columns("s."), corpus::columns("c."));
    let rows = sqlx::query(&format!(
        "SELECT s.id, s.row_number, m.contact_id, m.score, m.decision, m.explanation, {row_cols}, {contact_cols}
         FROM match_candidates m
         JOIN staged_rows s ON s.id = m.row_id
         JOIN contacts c ON c.id = m.contact_id
         WHERE s.import_id = $1
         ORDER BY s.row_number, m.contact_id OFFSET $2 LIMIT $3"
    ))
    .bind(import_id)
    .bind(offset)
    .bind(limit)
    .fetch_all(db)
    .await?;
    let n = corpus::FIELDS.len();
    rows.iter()
        .map(|r| {
            Ok(Pair {
                row_id: r.try_get(0)?,
                row_number: r.try_get(1)?,
                contact_id: r.try_get(2)?,
                score: r.try_get(3)?,
                decision: r.try_get(4)?,
                explanation: r.try_get(5)?,
                row: Values::from_row(r, 6)?,
                contact: Values::from_row(r, 6 + n)?,
            })
        })
        .collect()
}

/// Record decisions (row, contact, same?) on open pairs of this batch.
/// Returns the pairs that were open and now are decided; pairs of another
/// batch, unknown pairs and pairs already decided are left alone.
pub async fn decide(
    tx: &mut PgConnection,
    import_id: Uuid,
    decisions: &[(Uuid, Uuid, bool)],
    by: Option<Uuid>,
) -> Result<u64> {
    let rows: Vec<Uuid> = decisions.iter().map(|d| d.0).collect();
    let contacts: Vec<Uuid> = decisions.iter().map(|d| d.1).collect();
    let same: Vec<bool> = decisions.iter().map(|d| d.2).collect();
    Ok(sqlx::query(
        "UPDATE match_candidates m
         SET decision = CASE WHEN t.same THEN 'same' ELSE 'different' END,
             decided_by = $5, decided_at = now()
         FROM UNNEST($2::uuid[], $3::uuid[], $4::bool[]) AS t(row_id, contact_id, same),
              staged_rows s
         WHERE m.row_id = t.row_id AND m.contact_id = t.contact_id AND m.decision IS NULL
           AND s.id = m.row_id AND s.import_id = $1",
    )
    .bind(import_id)
    .bind(&rows)
    .bind(&contacts)
    .bind(&same)
    .bind(by)
    .execute(&mut *tx)
    .await?
    .rows_affected())
}
