//! Sign-in sessions. Only the SHA-256 of a token is stored.

use crate::Result;
use bizcontacts_domain::{SessionId, UserId};
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

#[derive(Debug, Clone)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: uuid::Uuid,
    user_id: uuid::Uuid,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
}

impl From<SessionRow> for Session {
    fn from(r: SessionRow) -> Self {
        Session {
            id: SessionId(r.id),
            user_id: UserId(r.user_id),
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
        }
    }
}

pub async fn create(
    db: impl PgExecutor<'_>,
    user: UserId,
    token_hash: &[u8],
    expires_at: DateTime<Utc>,
) -> Result<SessionId> {
    let id = SessionId::generate();
    sqlx::query(
        "INSERT INTO sessions (id, user_id, token_hash, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(id.0)
    .bind(user.0)
    .bind(token_hash)
    .bind(expires_at)
    .execute(db)
    .await?;
    Ok(id)
}

/// Look a session up by token hash. A B-tree lookup on the SHA-256 of a 256-bit
/// random token leaks nothing an attacker could use, unlike comparing secrets.
pub async fn find_by_hash(db: impl PgExecutor<'_>, token_hash: &[u8]) -> Result<Option<Session>> {
    Ok(sqlx::query_as::<_, SessionRow>(
        "SELECT id, user_id, expires_at, revoked_at, last_used_at FROM sessions WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(db)
    .await?
    .map(Into::into))
}

/// Whether a credential last used at `last` should be touched again: use is
/// recorded at most once a minute, so most requests skip the write and
/// its round trip.
pub fn touch_due(last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    last.is_none_or(|t| now - t >= chrono::Duration::minutes(1))
}

/// Record use, at most once a minute per session so reads stay reads.
pub async fn touch(db: impl PgExecutor<'_>, id: SessionId) -> Result<()> {
    sqlx::query(
        "UPDATE sessions SET last_used_at = now()
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
    )
    .bind(id.0)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn revoke(db: impl PgExecutor<'_>, id: SessionId) -> Result<()> {
    sqlx::query("UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
        .bind(id.0)
        .execute(db)
        .await?;
    Ok(())
}
