//! Invitations: how members join a tenant. Tokens are stored as hashes; an
//! invitation is open until accepted, revoked or expired, and used once.

use crate::error::parse_stored;
use crate::{tenants, Result, StoreError};
use bizcontacts_domain::{Email, Role, TenantId, UserId};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct Invitation {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub email: String,
    pub role: Role,
    pub invited_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    tenant_id: Uuid,
    email: String,
    role: String,
    invited_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl TryFrom<Row> for Invitation {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<Self> {
        Ok(Invitation {
            id: r.id,
            tenant_id: TenantId(r.tenant_id),
            email: r.email,
            role: parse_stored("invitations.role", &r.role)?,
            invited_by: r.invited_by.map(UserId),
            created_at: r.created_at,
            expires_at: r.expires_at,
        })
    }
}

const COLUMNS: &str = "id, tenant_id, email, role, invited_by, created_at, expires_at";
/// Open: neither accepted nor revoked, and not yet expired.
const OPEN: &str = "accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()";

pub struct NewInvitation<'a> {
    pub tenant_id: TenantId,
    pub email: &'a Email,
    pub role: Role,
    pub token_hash: &'a [u8],
    pub invited_by: UserId,
    pub expires_at: DateTime<Utc>,
}

/// Invite `email`, replacing an earlier open invitation of the same address,
/// within the package's `users` limit (members plus open invitations). The
/// tenant row is locked, so concurrent invitations cannot both take the last
/// seat. A current member is a conflict.
pub async fn create(conn: &mut PgConnection, new: NewInvitation<'_>) -> Result<Invitation> {
    let t = tenants::lock(&mut *conn, new.tenant_id).await?;
    let member: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id
                        WHERE m.tenant_id = $1 AND lower(u.email) = lower($2))",
    )
    .bind(new.tenant_id.0)
    .bind(new.email.as_str())
    .fetch_one(&mut *conn)
    .await?;
    if member {
        return Err(StoreError::Conflict(
            "this address is already a member of the tenant".into(),
        ));
    }
    // Whatever was open for this address is replaced (and frees its seat).
    sqlx::query(
        "UPDATE invitations SET revoked_at = now()
         WHERE tenant_id = $1 AND lower(email) = lower($2) AND accepted_at IS NULL AND revoked_at IS NULL",
    )
    .bind(new.tenant_id.0)
    .bind(new.email.as_str())
    .execute(&mut *conn)
    .await?;
    let (seats, max): (i64, i32) = sqlx::query_as(&format!(
        "SELECT (SELECT count(*) FROM memberships WHERE tenant_id = $1)
              + (SELECT count(*) FROM invitations WHERE tenant_id = $1 AND {OPEN}),
                p.users
         FROM packages p WHERE p.name = $2"
    ))
    .bind(new.tenant_id.0)
    .bind(t.package.as_str())
    .fetch_one(&mut *conn)
    .await?;
    if seats >= i64::from(max) {
        return Err(StoreError::LimitReached {
            limit: "users",
            max: max.into(),
        });
    }
    sqlx::query_as::<_, Row>(&format!(
        "INSERT INTO invitations (id, tenant_id, email, role, token_hash, invited_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(new.tenant_id.0)
    .bind(new.email.as_str())
    .bind(new.role.as_str())
    .bind(new.token_hash)
    .bind(new.invited_by.0)
    .bind(new.expires_at)
    .fetch_one(&mut *conn)
    .await?
    .try_into()
}

/// Open invitations of a tenant, by id, after `after`.
pub async fn list_open(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Invitation>> {
    sqlx::query_as::<_, Row>(&format!(
        "SELECT {COLUMNS} FROM invitations
         WHERE tenant_id = $1 AND {OPEN} AND ($2::uuid IS NULL OR id > $2)
         ORDER BY id LIMIT $3"
    ))
    .bind(tenant.0)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await?
    .into_iter()
    .map(TryInto::try_into)
    .collect()
}

/// Revoke an open invitation of `tenant`; `NotFound` when there is none.
pub async fn revoke(db: impl PgExecutor<'_>, tenant: TenantId, id: Uuid) -> Result<Invitation> {
    sqlx::query_as::<_, Row>(&format!(
        "UPDATE invitations SET revoked_at = now()
         WHERE tenant_id = $1 AND id = $2 AND {OPEN} RETURNING {COLUMNS}"
    ))
    .bind(tenant.0)
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or(StoreError::NotFound)?
    .try_into()
}

/// The open invitation with this token hash.
pub async fn open(db: impl PgExecutor<'_>, token_hash: &[u8]) -> Result<Invitation> {
    sqlx::query_as::<_, Row>(&format!(
        "SELECT {COLUMNS} FROM invitations WHERE token_hash = $1 AND {OPEN}"
    ))
    .bind(token_hash)
    .fetch_optional(db)
    .await?
    .ok_or(StoreError::NotFound)?
    .try_into()
}

/// The open invitation with this token hash, locked until the caller's
/// transaction ends, so it is accepted at most once.
pub async fn open_for_update(conn: &mut PgConnection, token_hash: &[u8]) -> Result<Invitation> {
    sqlx::query_as::<_, Row>(&format!(
        "SELECT {COLUMNS} FROM invitations WHERE token_hash = $1 AND {OPEN} FOR UPDATE"
    ))
    .bind(token_hash)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound)?
    .try_into()
}

/// Mark an invitation used by `user`.
pub async fn mark_accepted(conn: &mut PgConnection, id: Uuid, user: UserId) -> Result<()> {
    sqlx::query("UPDATE invitations SET accepted_at = now(), accepted_by = $2 WHERE id = $1")
        .bind(id)
        .bind(user.0)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
