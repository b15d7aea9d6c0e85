//! Tenants.

use crate::error::parse_stored;
use crate::{Result, StoreError};
use bizcontacts_domain::{PackageName, TenantId};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub package: PackageName,
    pub status: TenantStatus,
    pub created_at: DateTime<Utc>,
    /// Why and since when the tenant is suspended (None while active).
    pub suspended_reason: Option<String>,
    pub suspended_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantStatus {
    Active,
    Suspended,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }
}

impl std::str::FromStr for TenantStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            _ => Err(()),
        }
    }
}

#[derive(sqlx::FromRow)]
struct TenantRow {
    id: uuid::Uuid,
    name: String,
    package: String,
    status: String,
    created_at: DateTime<Utc>,
    suspended_reason: Option<String>,
    suspended_at: Option<DateTime<Utc>>,
}

impl TryFrom<TenantRow> for Tenant {
    type Error = StoreError;
    fn try_from(r: TenantRow) -> Result<Self> {
        Ok(Tenant {
            id: TenantId(r.id),
            name: r.name,
            package: parse_stored("tenants.package", &r.package)?,
            status: parse_stored("tenants.status", &r.status)?,
            created_at: r.created_at,
            suspended_reason: r.suspended_reason,
            suspended_at: r.suspended_at,
        })
    }
}

pub async fn create(db: impl PgExecutor<'_>, name: &str, package: PackageName) -> Result<Tenant> {
    sqlx::query_as::<_, TenantRow>(
        "INSERT INTO tenants (id, name, package) VALUES ($1, $2, $3)
         RETURNING id, name, package, status, created_at, suspended_reason, suspended_at",
    )
    .bind(TenantId::generate().0)
    .bind(name)
    .bind(package.as_str())
    .fetch_one(db)
    .await?
    .try_into()
}

pub async fn get(db: impl PgExecutor<'_>, id: TenantId) -> Result<Tenant> {
    sqlx::query_as::<_, TenantRow>(
        "SELECT id, name, package, status, created_at, suspended_reason, suspended_at FROM tenants WHERE id = $1",
    )
    .bind(id.0)
    .fetch_optional(db)
    .await?
    .ok_or(StoreError::NotFound)?
    .try_into()
}

pub async fn find_by_name(db: impl PgExecutor<'_>, name: &str) -> Result<Option<Tenant>> {
    sqlx::query_as::<_, TenantRow>(
        "SELECT id, name, package, status, created_at, suspended_reason, suspended_at FROM tenants WHERE name = $1 ORDER BY id LIMIT 1",
    )
    .bind(name)
    .fetch_optional(db)
    .await?
    .map(TryInto::try_into)
    .transpose()
}

/// Lock the tenant row for the rest of the transaction; serialises writes that
/// check a package limit (two concurrent member adds cannot both pass).
pub async fn lock(conn: &mut PgConnection, id: TenantId) -> Result<Tenant> {
    sqlx::query_as::<_, TenantRow>(
        "SELECT id, name, package, status, created_at, suspended_reason, suspended_at FROM tenants WHERE id = $1 FOR UPDATE",
    )
    .bind(id.0)
    .fetch_optional(conn)
    .await?
    .ok_or(StoreError::NotFound)?
    .try_into()
}

/// Tenants ordered by id, after `cursor`.
pub async fn list(
    db: impl PgExecutor<'_>,
    after: Option<TenantId>,
    limit: i64,
) -> Result<Vec<Tenant>> {
    sqlx::query_as::<_, TenantRow>(
        "SELECT id, name, package, status, created_at, suspended_reason, suspended_at FROM tenants
         WHERE $1::uuid IS NULL OR id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after.map(|t| t.0))
    .bind(limit)
    .fetch_all(db)
    .await?
    .into_iter()
    .map(TryInto::try_into)
    .collect()
}

pub async fn set_package(
    db: impl PgExecutor<'_>,
    id: TenantId,
    package: PackageName,
) -> Result<()> {
    let done = sqlx::query("UPDATE tenants SET package = $2 WHERE id = $1")
        .bind(id.0)
        .bind(package.as_str())
        .execute(db)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// What the intake needs to authorise a request in a tenant, in one query.
#[derive(Debug, Clone)]
pub struct TenantAccess {
    pub tenant: Tenant,
    /// The limits of the tenant's package (read with it: most requests need
    /// one of them, and a package change applies to the next request).
    pub limits: bizcontacts_domain::PackageLimits,
    /// The user's role here, if they are a member.
    pub role: Option<bizcontacts_domain::Role>,
}

pub async fn access(
    db: impl PgExecutor<'_>,
    id: TenantId,
    user: bizcontacts_domain::UserId,
) -> Result<Option<TenantAccess>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        tenant: TenantRow,
        #[sqlx(flatten)]
        limits: crate::packages::PackageRow,
        role: Option<String>,
    }
    let Some(row) = sqlx::query_as::<_, Row>(
        "SELECT t.id, t.name, t.package, t.status, t.created_at, t.suspended_reason, t.suspended_at, p.users, p.searches_per_day,
                p.contacts_per_search, p.api_access, p.concurrent_jobs, p.jobs_per_day,
                p.import_rows_per_day, m.role
         FROM tenants t JOIN packages p ON p.name = t.package
         LEFT JOIN memberships m ON m.tenant_id = t.id AND m.user_id = $2
         WHERE t.id = $1",
    )
    .bind(id.0)
    .bind(user.0)
    .fetch_optional(db)
    .await?
    else {
        return Ok(None);
    };
    Ok(Some(TenantAccess {
        tenant: row.tenant.try_into()?,
        limits: row.limits.into_limits()?,
        role: row
            .role
            .as_deref()
            .map(|r| parse_stored("memberships.role", r))
            .transpose()?,
    }))
}

/// Suspend a tenant (nothing is deleted; see `routes/admin_tenants.rs` for
/// what a suspension holds). False when it already was.
pub async fn suspend(
    db: impl PgExecutor<'_>,
    id: TenantId,
    reason: &str,
    by: Option<uuid::Uuid>,
) -> Result<bool> {
    Ok(sqlx::query(
        "UPDATE tenants SET status = 'suspended', suspended_reason = $2, suspended_at = now(),
                suspended_by = $3
         WHERE id = $1 AND status = 'active'",
    )
    .bind(id.0)
    .bind(reason)
    .bind(by)
    .execute(db)
    .await?
    .rows_affected()
        == 1)
}

/// Lift a suspension. False when the tenant was not suspended.
pub async fn unsuspend(db: impl PgExecutor<'_>, id: TenantId) -> Result<bool> {
    Ok(sqlx::query(
        "UPDATE tenants SET status = 'active', suspended_reason = NULL, suspended_at = NULL,
                suspended_by = NULL
         WHERE id = $1 AND status = 'suspended'",
    )
    .bind(id.0)
    .execute(db)
    .await?
    .rows_affected()
        == 1)
}
