//! Users, their tenant memberships and system roles.

use crate::error::parse_stored;
use crate::{tenants, Result, StoreError};
use bizcontacts_domain::{Email, Role, SystemRole, TenantId, UserId};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub email: String,
    /// argon2id PHC string; kept out of `Debug` by never logging `User`.
    pub password_hash: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: uuid::Uuid,
    email: String,
    password_hash: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: UserId(r.id),
            email: r.email,
            password_hash: r.password_hash,
            created_at: r.created_at,
        }
    }
}

/// Insert a user; a second user with the same address (any case) is a conflict.
pub async fn create(
    db: impl PgExecutor<'_>,
    email: &Email,
    password_hash: Option<&str>,
) -> Result<User> {
    let row = sqlx::query_as::<_, UserRow>(
        "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3)
         RETURNING id, email, password_hash, created_at",
    )
    .bind(UserId::generate().0)
    .bind(email.as_str())
    .bind(password_hash)
    .fetch_one(db)
    .await
    .map_err(StoreError::from)
    .map_err(|e| {
        if e.is_unique_violation() {
            StoreError::Conflict(format!("a user with email {email} already exists"))
        } else {
            e
        }
    })?;
    Ok(row.into())
}

pub async fn find_by_email(db: impl PgExecutor<'_>, email: &str) -> Result<Option<User>> {
    Ok(sqlx::query_as::<_, UserRow>(
        "SELECT id, email, password_hash, created_at FROM users WHERE lower(email) = lower($1)",
    )
    .bind(email.trim())
    .fetch_optional(db)
    .await?
    .map(Into::into))
}

pub async fn get(db: impl PgExecutor<'_>, id: UserId) -> Result<User> {
    Ok(sqlx::query_as::<_, UserRow>(
        "SELECT id, email, password_hash, created_at FROM users WHERE id = $1",
    )
    .bind(id.0)
    .fetch_optional(db)
    .await?
    .ok_or(StoreError::NotFound)?
    .into())
}

pub async fn system_roles(db: impl PgExecutor<'_>, user: UserId) -> Result<Vec<SystemRole>> {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT role FROM system_roles WHERE user_id = $1 ORDER BY role")
            .bind(user.0)
            .fetch_all(db)
            .await?;
    names
        .iter()
        .map(|n| parse_stored("system_roles.role", n))
        .collect()
}

/// Grant a system role; granting one already held is not an error.
pub async fn grant_system_role(
    db: impl PgExecutor<'_>,
    user: UserId,
    role: SystemRole,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO system_roles (user_id, role) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(user.0)
    .bind(role.as_str())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One user's role in one tenant.
#[derive(Debug, Clone)]
pub struct Membership {
    pub tenant_id: TenantId,
    pub tenant_name: String,
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct MembershipRow {
    tenant_id: uuid::Uuid,
    tenant_name: String,
    user_id: uuid::Uuid,
    email: String,
    role: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<MembershipRow> for Membership {
    type Error = StoreError;
    fn try_from(r: MembershipRow) -> Result<Self> {
        Ok(Membership {
            tenant_id: TenantId(r.tenant_id),
            tenant_name: r.tenant_name,
            user_id: UserId(r.user_id),
            email: r.email,
            role: parse_stored("memberships.role", &r.role)?,
            created_at: r.created_at,
        })
    }
}

const MEMBERSHIP_SELECT: &str =
    "SELECT m.tenant_id, t.name AS tenant_name, m.user_id, u.email, m.role, m.created_at
     FROM memberships m JOIN users u ON u.id = m.user_id JOIN tenants t ON t.id = m.tenant_id";

pub async fn memberships_of_user(db: impl PgExecutor<'_>, user: UserId) -> Result<Vec<Membership>> {
    sqlx::query_as::<_, MembershipRow>(&format!(
        "{MEMBERSHIP_SELECT} WHERE m.user_id = $1 ORDER BY t.name, m.tenant_id"
    ))
    .bind(user.0)
    .fetch_all(db)
    .await?
    .into_iter()
    .map(TryInto::try_into)
    .collect()
}

/// Members of a tenant ordered by user id, after `after`.
pub async fn members(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    after: Option<UserId>,
    limit: i64,
) -> Result<Vec<Membership>> {
    sqlx::query_as::<_, MembershipRow>(&format!(
        "{MEMBERSHIP_SELECT} WHERE m.tenant_id = $1 AND ($2::uuid IS NULL OR m.user_id > $2)
         ORDER BY m.user_id LIMIT $3"
    ))
    .bind(tenant.0)
    .bind(after.map(|u| u.0))
    .bind(limit)
    .fetch_all(db)
    .await?
    .into_iter()
    .map(TryInto::try_into)
    .collect()
}

pub async fn membership(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    user: UserId,
) -> Result<Option<Membership>> {
    sqlx::query_as::<_, MembershipRow>(&format!(
        "{MEMBERSHIP_SELECT} WHERE m.tenant_id = $1 AND m.user_id = $2"
    ))
    .bind(tenant.0)
    .bind(user.0)
    .fetch_optional(db)
    .await?
    .map(TryInto::try_into)
    .transpose()
}

/// Add a member within the package's `users` limit. The tenant row is locked
/// first, so concurrent adds are serialised and cannot overshoot the limit.
pub async fn add_member(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
    role: Role,
) -> Result<Membership> {
    let t = tenants::lock(&mut *conn, tenant).await?;
    let (count, max): (i64, i32) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM memberships WHERE tenant_id = $1), p.users
         FROM packages p WHERE p.name = $2",
    )
    .bind(tenant.0)
    .bind(t.package.as_str())
    .fetch_one(&mut *conn)
    .await?;
    if count >= i64::from(max) {
        return Err(StoreError::LimitReached {
            limit: "users",
            max: max.into(),
        });
    }
    let inserted = sqlx::query(
        "INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(tenant.0)
    .bind(user.0)
    .bind(role.as_str())
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(StoreError::Conflict(
            "the user is already a member of this tenant".into(),
        ));
    }
    membership(&mut *conn, tenant, user)
        .await?
        .ok_or(StoreError::NotFound)
}

/// Refuse a change that would leave the tenant without an org admin (nobody
/// could manage members or keys any more).
async fn ensure_other_admin(conn: &mut PgConnection, tenant: TenantId, user: UserId) -> Result<()> {
    let others: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM memberships WHERE tenant_id = $1 AND role = 'org_admin' AND user_id <> $2",
    )
    .bind(tenant.0)
    .bind(user.0)
    .fetch_one(&mut *conn)
    .await?;
    if others == 0 {
        return Err(StoreError::Conflict(
            "a tenant must keep at least one org_admin".into(),
        ));
    }
    Ok(())
}

/// Change a member's role; returns the previous role.
pub async fn change_role(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
    role: Role,
) -> Result<Role> {
    tenants::lock(&mut *conn, tenant).await?;
    let current = membership(&mut *conn, tenant, user)
        .await?
        .ok_or(StoreError::NotFound)?;
    if current.role == Role::OrgAdmin && role != Role::OrgAdmin {
        ensure_other_admin(conn, tenant, user).await?;
    }
    sqlx::query("UPDATE memberships SET role = $3 WHERE tenant_id = $1 AND user_id = $2")
        .bind(tenant.0)
        .bind(user.0)
        .bind(role.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(current.role)
}

/// Remove a member; returns the role they had.
pub async fn remove_member(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
) -> Result<Role> {
    tenants::lock(&mut *conn, tenant).await?;
    let current = membership(&mut *conn, tenant, user)
        .await?
        .ok_or(StoreError::NotFound)?;
    if current.role == Role::OrgAdmin {
        ensure_other_admin(conn, tenant, user).await?;
    }
    sqlx::query("DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2")
        .bind(tenant.0)
        .bind(user.0)
        .execute(&mut *conn)
        .await?;
    Ok(current.role)
}
