//! Audit events: who did what sensitive thing, when, to what.
//!
//! `details` must never hold a secret; callers pass ids, names and roles only.

use crate::Result;
use bizcontacts_domain::{ApiKeyId, TenantId, UserId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;

/// Who acted.
#[derive(Debug, Clone, Copy, Default)]
pub struct Actor {
    pub user_id: Option<UserId>,
    pub api_key_id: Option<ApiKeyId>,
}

impl Actor {
    /// The platform itself (admin commands, jobs).
    pub fn system() -> Self {
        Self::default()
    }
}

pub struct NewEvent<'a> {
    pub tenant_id: Option<TenantId>,
    pub actor: Actor,
    pub action: &'a str,
    pub target_type: Option<&'a str>,
    pub target_id: Option<String>,
    pub details: serde_json::Value,
    pub request_id: Option<&'a str>,
}

pub async fn record(db: impl PgExecutor<'_>, e: NewEvent<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_events (id, tenant_id, actor_user_id, actor_api_key_id, action,
                                   target_type, target_id, details, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(e.tenant_id.map(|t| t.0))
    .bind(e.actor.user_id.map(|u| u.0))
    .bind(e.actor.api_key_id.map(|k| k.0))
    .bind(e.action)
    .bind(e.target_type)
    .bind(e.target_id)
    .bind(e.details)
    .bind(e.request_id)
    .execute(db)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuditEvent {
    pub id: uuid::Uuid,
    pub at: DateTime<Utc>,
    pub tenant_id: Option<uuid::Uuid>,
    pub actor_user_id: Option<uuid::Uuid>,
    pub actor_api_key_id: Option<uuid::Uuid>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub details: serde_json::Value,
    pub request_id: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub tenant_id: Option<TenantId>,
    pub actor_user_id: Option<UserId>,
    pub action: Option<String>,
}

/// Newest first; `before` is the id of the last event of the previous page.
pub async fn list(
    db: impl PgExecutor<'_>,
    f: &Filter,
    before: Option<uuid::Uuid>,
    limit: i64,
) -> Result<Vec<AuditEvent>> {
    Ok(sqlx::query_as::<_, AuditEvent>(
        "SELECT id, at, tenant_id, actor_user_id, actor_api_key_id, action, target_type,
                target_id, details, request_id
         FROM audit_events
         WHERE ($1::uuid IS NULL OR tenant_id = $1)
           AND ($2::uuid IS NULL OR actor_user_id = $2)
           AND ($3::text IS NULL OR action = $3)
           AND ($4::uuid IS NULL OR id < $4)
         ORDER BY id DESC LIMIT $5",
    )
    .bind(f.tenant_id.map(|t| t.0))
    .bind(f.actor_user_id.map(|u| u.0))
    .bind(f.action.as_deref())
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await?)
}
