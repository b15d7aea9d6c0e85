//! Tenants' corrections of corpus contacts.
//!
//! A correction is two things at once: an overlay its tenant sees at once
//! (the newest correction per field wins), and a one-row batch (source
//! `correction`) that goes through review and dedupe like any import, after
//! which it is part of the contact for everyone.

use crate::corpus::{columns, Values, FIELDS};
use crate::Result;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

pub struct NewCorrection<'a> {
    pub tenant_id: Uuid,
    pub contact_id: Uuid,
    /// A contact field ([`FIELDS`]).
    pub field: &'a str,
    pub note: Option<&'a str>,
    /// The row staged for review; it holds the normalized value.
    pub row_id: Uuid,
    pub created_by: Option<Uuid>,
}

/// Record the correction and narrow its staged row to the corrected field
/// (and the field that travels with it: the domain of a website, the
/// category of an MCC), aimed at its contact.
pub async fn create(tx: &mut PgConnection, c: NewCorrection<'_>) -> Result<Uuid> {
    let keep: &[&str] = match c.field {
        "website" => &["website", "domain"],
        "mcc" => &["mcc", "category"],
        f => &[f][..],
    };
    let clear = FIELDS
        .iter()
        .filter(|f| !keep.contains(f))
        .map(|f| format!("{f} = NULL"))
        .collect::<Vec<_>>()
        .join(", ");
    sqlx::query(&format!(
        "UPDATE staged_rows SET {clear}, target_contact_id = $2 WHERE id = $1"
    ))
    .bind(c.row_id)
    .bind(c.contact_id)
    .execute(&mut *tx)
    .await?;
    let id = Uuid::now_v7();
    // The value as normalized by staging, read back from the row.
    sqlx::query(
        "INSERT INTO corrections (id, tenant_id, contact_id, field, value, note, row_id, created_by)
         SELECT $1, $2, $3, $4, coalesce(to_jsonb(r) ->> $4, ''), $5, $6, $7
         FROM staged_rows r WHERE r.id = $6",
    )
    .bind(id)
    .bind(c.tenant_id)
    .bind(c.contact_id)
    .bind(c.field)
    .bind(c.note)
    .bind(c.row_id)
    .bind(c.created_by)
    .execute(&mut *tx)
    .await?;
    Ok(id)
}

/// A tenant's corrections of one contact, oldest first, as the values of
/// their staged rows: folding them into the contact ([`Values::absorb`])
/// gives the contact as that tenant sees it.
pub async fn overlay(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    contact_id: Uuid,
) -> Result<Vec<Values>> {
    let rows = sqlx::query(&format!(
        "SELECT {} FROM corrections c JOIN staged_rows s ON s.id = c.row_id
         WHERE c.tenant_id = $1 AND c.contact_id = $2 ORDER BY c.created_at, c.id",
        columns("s.")
    ))
    .bind(tenant_id)
    .bind(contact_id)
    .fetch_all(db)
    .await?;
    rows.iter().map(|r| Values::from_row(r, 0)).collect()
}

/// [`overlay`] for many contacts at once (a page of search results).
pub async fn overlay_many(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    contact_ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, Vec<Values>>> {
    let rows = sqlx::query(&format!(
        "SELECT c.contact_id, {} FROM corrections c JOIN staged_rows s ON s.id = c.row_id
         WHERE c.tenant_id = $1 AND c.contact_id = ANY($2) ORDER BY c.created_at, c.id",
        columns("s.")
    ))
    .bind(tenant_id)
    .bind(contact_ids)
    .fetch_all(db)
    .await?;
    let mut out: std::collections::HashMap<Uuid, Vec<Values>> = std::collections::HashMap::new();
    for r in &rows {
        let id: Uuid = sqlx::Row::try_get(r, 0)?;
        out.entry(id).or_default().push(Values::from_row(r, 1)?);
    }
    Ok(out)
}

/// A contact with a tenant's own corrections folded in (what that tenant
/// sees and pushes): `own` from [`overlay_many`], oldest first.
pub fn apply(mut contact: crate::corpus::Contact, own: &[Values]) -> crate::corpus::Contact {
    for values in own {
        contact
            .values
            .absorb(values, true, &mut contact.corrected_fields);
    }
    contact
}
