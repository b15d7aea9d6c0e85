//! Retention: what is deleted once it is old enough, rule by rule, in
//! bounded chunks (each its own short transaction, so no pass holds locks
//! or a connection for long, and a killed pass resumes where it was).
//!
//! The privacy policy keeps "tenant records, audit events, imports, and
//! CRM sync metadata ... while needed"; these rules say how long that is
//! (`retention.*` in config). Contacts, saved contacts, corrections and
//! the rows contacts derive from are never touched here.

use crate::Result;
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// One kind of record and when it has been kept long enough.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Its name in reports.
    pub name: &'static str,
    table: &'static str,
    /// Rows to delete, given the cutoff as `$1`.
    condition: &'static str,
}

/// Audit events older than the cutoff.
pub const AUDIT: Rule = Rule {
    name: "audit_events",
    table: "audit_events",
    condition: "at < $1",
};
/// Upload bytes of batches finished before the cutoff (staged batches drop
/// theirs at once; these are failed or cancelled ones). Rows stay.
pub const UPLOADS: Rule = Rule {
    name: "import_uploads",
    table: "import_uploads",
    condition: "import_id IN (SELECT id FROM imports WHERE finished_at < $1)",
};
/// Rejected staged rows decided before the cutoff, unless a correction
/// (which its tenant still sees) is made of it.
pub const REJECTED_ROWS: Rule = Rule {
    name: "rejected_rows",
    table: "staged_rows",
    condition: "status = 'rejected' AND decided_at < $1
        AND NOT EXISTS (SELECT 1 FROM corrections c WHERE c.row_id = staged_rows.id)",
};
/// Webhook deliveries recorded before the cutoff (their replay window is
/// minutes; Stripe retries for three days).
pub const HIGHLEVEL_WEBHOOKS: Rule = Rule {
    name: "highlevel_webhooks",
    table: "highlevel_webhooks",
    condition: "received_at < $1",
};
pub const STRIPE_EVENTS: Rule = Rule {
    name: "stripe_events",
    table: "stripe_events",
    condition: "received_at < $1",
};
pub const CRM_CONTACT_EVENTS: Rule = Rule {
    name: "crm_contact_events",
    table: "crm_contact_events",
    condition: "received_at < $1",
};
/// Sessions that expired before the cutoff (revoked ones expire too).
pub const SESSIONS: Rule = Rule {
    name: "sessions",
    table: "sessions",
    condition: "expires_at < $1",
};
/// Invitations never accepted that expired before the cutoff.
pub const INVITATIONS: Rule = Rule {
    name: "invitations",
    table: "invitations",
    condition: "accepted_at IS NULL AND expires_at < $1",
};
/// OAuth states (single use, ten minutes) that expired before the cutoff.
pub const OAUTH_STATES: Rule = Rule {
    name: "crm_oauth_states",
    table: "crm_oauth_states",
    condition: "expires_at < $1",
};

/// The ZIP bytes of exports that expired before the cutoff (the export's
/// row stays: a download then says it expired).
pub const EXPORTS: Rule = Rule {
    name: "export_chunks",
    table: "export_chunks",
    condition: "export_id IN (SELECT id FROM exports WHERE expires_at < $1)",
};

/// Delete up to `chunk` rows of `rule` older than `cutoff`; returns how many.
pub async fn delete_chunk(
    db: impl PgExecutor<'_>,
    rule: Rule,
    cutoff: DateTime<Utc>,
    chunk: i64,
) -> Result<u64> {
    Ok(sqlx::query(&crate::db::delete_chunk_sql(
        rule.table,
        rule.condition,
        "$2",
    ))
    .bind(cutoff)
    .bind(chunk)
    .execute(db)
    .await?
    .rows_affected())
}
