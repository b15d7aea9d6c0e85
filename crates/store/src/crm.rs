//! CRM connections (one per tenant), OAuth states, HighLevel webhook
//! deliveries and the contact changes they report.
//!
//! Secrets arrive here already sealed ([`Sealed`]) and leave sealed: this
//! module never sees a token in clear. [`Connection`] (what routes show)
//! carries no secret at all; [`Tokens`] (what a HighLevel session opens) is
//! only read under the connection's row lock.

use crate::error::parse_stored;
use crate::{Result, StoreError};
use bizcontacts_domain::{TenantId, UserId};
use bizcontacts_security::sealing::Sealed;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// How a tenant connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Oauth,
    PrivateIntegration,
}

/// Whether the connection works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Connected,
    /// A refresh failed or HighLevel refused the token: an admin must
    /// connect again; CRM jobs stop until then.
    NeedsReconnect,
    Disconnected,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Oauth => "oauth",
            Method::PrivateIntegration => "private_integration",
        }
    }
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Connected => "connected",
            Status::NeedsReconnect => "needs_reconnect",
            Status::Disconnected => "disconnected",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "oauth" => Ok(Method::Oauth),
            "private_integration" => Ok(Method::PrivateIntegration),
            _ => Err(()),
        }
    }
}

impl std::str::FromStr for Status {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "connected" => Ok(Status::Connected),
            "needs_reconnect" => Ok(Status::NeedsReconnect),
            "disconnected" => Ok(Status::Disconnected),
            _ => Err(()),
        }
    }
}

/// A connection as shown: never a secret.
#[derive(Debug, Clone)]
pub struct Connection {
    pub tenant_id: TenantId,
    pub method: Method,
    pub status: Status,
    pub location_id: Option<String>,
    pub location_name: Option<String>,
    pub company_id: Option<String>,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub connected_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

const COLUMNS: &str = "tenant_id, method, status, location_id, location_name, company_id, scopes,
                       expires_at, connected_at, last_error";

type Row = (
    Uuid,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Vec<String>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<String>,
);

fn connection(r: Row) -> Result<Connection> {
    Ok(Connection {
        tenant_id: TenantId(r.0),
        method: parse_stored("crm_connections.method", &r.1)?,
        status: parse_stored("crm_connections.status", &r.2)?,
        location_id: r.3,
        location_name: r.4,
        company_id: r.5,
        scopes: r.6,
        expires_at: r.7,
        connected_at: r.8,
        last_error: r.9,
    })
}

pub async fn get(db: impl PgExecutor<'_>, tenant: TenantId) -> Result<Option<Connection>> {
    sqlx::query_as::<_, Row>(&format!(
        "SELECT {COLUMNS} FROM crm_connections WHERE tenant_id = $1"
    ))
    .bind(tenant.0)
    .fetch_optional(db)
    .await?
    .map(connection)
    .transpose()
}

/// Where a sealed secret of a tenant's connection belongs: the associated
/// data it is sealed with, so it opens nowhere else.
pub fn secret_place(tenant: TenantId, which: &str) -> String {
    format!("crm_connections/{}/{which}", tenant.0)
}

/// A new (or replacing) connection.
pub struct NewConnection<'a> {
    pub tenant_id: TenantId,
    pub method: Method,
    pub location_id: &'a str,
    pub location_name: Option<&'a str>,
    pub company_id: Option<&'a str>,
    pub scopes: &'a [String],
    pub token: Sealed,
    pub refresh: Option<Sealed>,
    pub expires_at: Option<DateTime<Utc>>,
    pub connected_by: Option<UserId>,
}

/// Store a connection, replacing the tenant's previous one in the same
/// statement (no moment without one, no two).
pub async fn connect(db: impl PgExecutor<'_>, c: NewConnection<'_>) -> Result<Connection> {
    let (refresh, refresh_key) = match c.refresh {
        Some(s) => (Some(s.bytes), Some(s.key_id)),
        None => (None, None),
    };
    sqlx::query_as::<_, Row>(&format!(
        "INSERT INTO crm_connections (tenant_id, method, status, location_id, location_name,
             company_id, scopes, token_sealed, token_key_id, refresh_sealed, refresh_key_id,
             expires_at, connected_at, connected_by)
         VALUES ($1, $2, 'connected', $3, $4, $5, $6, $7, $8, $9, $10, $11, now(), $12)
         ON CONFLICT (tenant_id) DO UPDATE SET method = excluded.method, status = 'connected',
             location_id = excluded.location_id, location_name = excluded.location_name,
             company_id = excluded.company_id, scopes = excluded.scopes,
             token_sealed = excluded.token_sealed, token_key_id = excluded.token_key_id,
             refresh_sealed = excluded.refresh_sealed, refresh_key_id = excluded.refresh_key_id,
             expires_at = excluded.expires_at, connected_at = now(),
             connected_by = excluded.connected_by, last_error = NULL,
             token_version = crm_connections.token_version + 1, updated_at = now()
         RETURNING {COLUMNS}"
    ))
    .bind(c.tenant_id.0)
    .bind(c.method.as_str())
    .bind(c.location_id)
    .bind(c.location_name)
    .bind(c.company_id)
    .bind(c.scopes)
    .bind(c.token.bytes)
    .bind(c.token.key_id)
    .bind(refresh)
    .bind(refresh_key)
    .bind(c.expires_at)
    .bind(c.connected_by.map(|u| u.0))
    .fetch_one(db)
    .await
    .map_err(StoreError::from)
    .and_then(connection)
}

/// Disconnect: the secrets are destroyed, the row stays to say so. False
/// when the tenant had no live connection.
pub async fn disconnect(db: impl PgExecutor<'_>, tenant: TenantId, reason: &str) -> Result<bool> {
    Ok(sqlx::query(
        "UPDATE crm_connections SET status = 'disconnected', token_sealed = NULL,
             token_key_id = NULL, refresh_sealed = NULL, refresh_key_id = NULL, expires_at = NULL,
             last_error = $2, token_version = token_version + 1, updated_at = now()
         WHERE tenant_id = $1 AND status <> 'disconnected'",
    )
    .bind(tenant.0)
    .bind(reason)
    .execute(db)
    .await?
    .rows_affected()
        == 1)
}

/// The connection's secrets, locked until the transaction ends: whoever
/// holds them may spend the refresh token; everyone else waits, then reads
/// the new one.
pub struct Tokens {
    pub method: Method,
    pub status: Status,
    pub location_id: Option<String>,
    pub token: Option<Sealed>,
    pub refresh: Option<Sealed>,
    pub expires_at: Option<DateTime<Utc>>,
    pub version: i64,
}

pub async fn lock_tokens(tx: &mut PgConnection, tenant: TenantId) -> Result<Option<Tokens>> {
    type T = (
        String,
        String,
        Option<String>,
        Option<Vec<u8>>,
        Option<String>,
        Option<Vec<u8>>,
        Option<String>,
        Option<DateTime<Utc>>,
        i64,
    );
    let row: Option<T> = sqlx::query_as(
        "SELECT method, status, location_id, token_sealed, token_key_id, refresh_sealed,
                refresh_key_id, expires_at, token_version
         FROM crm_connections WHERE tenant_id = $1 FOR UPDATE",
    )
    .bind(tenant.0)
    .fetch_optional(&mut *tx)
    .await?;
    let sealed = |bytes: Option<Vec<u8>>, key: Option<String>| match (bytes, key) {
        (Some(bytes), Some(key_id)) => Some(Sealed { key_id, bytes }),
        _ => None,
    };
    row.map(|r| {
        Ok(Tokens {
            method: parse_stored("crm_connections.method", &r.0)?,
            status: parse_stored("crm_connections.status", &r.1)?,
            location_id: r.2,
            token: sealed(r.3, r.4),
            refresh: sealed(r.5, r.6),
            expires_at: r.7,
            version: r.8,
        })
    })
    .transpose()
}

/// A refreshed pair, stored where the old one was (under its lock).
pub async fn store_refreshed(
    tx: &mut PgConnection,
    tenant: TenantId,
    token: Sealed,
    refresh: Option<Sealed>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<()> {
    let (refresh, refresh_key) = match refresh {
        Some(s) => (Some(s.bytes), Some(s.key_id)),
        None => (None, None),
    };
    sqlx::query(
        "UPDATE crm_connections SET token_sealed = $2, token_key_id = $3,
             refresh_sealed = coalesce($4, refresh_sealed), refresh_key_id = coalesce($5, refresh_key_id),
             expires_at = $6, last_error = NULL, token_version = token_version + 1, updated_at = now()
         WHERE tenant_id = $1",
    )
    .bind(tenant.0)
    .bind(token.bytes)
    .bind(token.key_id)
    .bind(refresh)
    .bind(refresh_key)
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The connection no longer works: an admin must connect again.
pub async fn needs_reconnect(db: impl PgExecutor<'_>, tenant: TenantId, why: &str) -> Result<()> {
    sqlx::query(
        "UPDATE crm_connections SET status = 'needs_reconnect', last_error = $2, updated_at = now()
         WHERE tenant_id = $1 AND status = 'connected'",
    )
    .bind(tenant.0)
    .bind(why)
    .execute(db)
    .await?;
    Ok(())
}

/// Tenants connected to a HighLevel Location.
pub async fn tenants_of_location(
    db: impl PgExecutor<'_>,
    location_id: &str,
) -> Result<Vec<(TenantId, Status)>> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT tenant_id, status FROM crm_connections WHERE location_id = $1 ORDER BY tenant_id",
    )
    .bind(location_id)
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|(t, s)| Ok((TenantId(t), parse_stored("crm_connections.status", &s)?)))
        .collect()
}

/// Record HighLevel's company for a Location that installed our app.
pub async fn installed(
    db: impl PgExecutor<'_>,
    location_id: &str,
    company: Option<&str>,
) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE crm_connections SET company_id = coalesce($2, company_id), updated_at = now()
         WHERE location_id = $1 AND method = 'oauth' AND status <> 'disconnected'",
    )
    .bind(location_id)
    .bind(company)
    .execute(db)
    .await?
    .rows_affected())
}

/// Every sealed secret sealed with another key than `current`, locked, for
/// `bizcontacts secrets rotate`: (tenant, which, sealed).
pub async fn sealed_with_other_keys(
    tx: &mut PgConnection,
    current: &str,
) -> Result<Vec<(TenantId, &'static str, Sealed)>> {
    type SealedRow = (
        Uuid,
        Option<Vec<u8>>,
        Option<String>,
        Option<Vec<u8>>,
        Option<String>,
    );
    let rows: Vec<SealedRow> = sqlx::query_as(
        "SELECT tenant_id, token_sealed, token_key_id, refresh_sealed, refresh_key_id
             FROM crm_connections
             WHERE token_key_id <> $1 OR refresh_key_id <> $1 FOR UPDATE",
    )
    .bind(current)
    .fetch_all(&mut *tx)
    .await?;
    let mut out = Vec::new();
    for (tenant, tb, tk, rb, rk) in rows {
        if let (Some(bytes), Some(key_id)) = (tb, tk) {
            if key_id != current {
                out.push((TenantId(tenant), "token", Sealed { key_id, bytes }));
            }
        }
        if let (Some(bytes), Some(key_id)) = (rb, rk) {
            if key_id != current {
                out.push((TenantId(tenant), "refresh", Sealed { key_id, bytes }));
            }
        }
    }
    Ok(out)
}

/// Put back a re-sealed secret (`which`: "token" or "refresh").
pub async fn reseal(tx: &mut PgConnection, tenant: TenantId, which: &str, s: Sealed) -> Result<()> {
    let sql = match which {
        "token" => "UPDATE crm_connections SET token_sealed = $2, token_key_id = $3 WHERE tenant_id = $1",
        _ => "UPDATE crm_connections SET refresh_sealed = $2, refresh_key_id = $3 WHERE tenant_id = $1",
    };
    sqlx::query(sql)
        .bind(tenant.0)
        .bind(s.bytes)
        .bind(s.key_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// What checking an OAuth `state` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateCheck {
    /// Valid; now spent.
    Valid {
        tenant_id: TenantId,
        user_id: Option<UserId>,
        whitelabel: bool,
    },
    Unknown,
    Used,
    Expired,
}

pub async fn create_state(
    db: impl PgExecutor<'_>,
    hash: &[u8],
    tenant: TenantId,
    user: Option<UserId>,
    whitelabel: bool,
    expires_at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO crm_oauth_states (state_hash, tenant_id, user_id, whitelabel, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(hash)
    .bind(tenant.0)
    .bind(user.map(|u| u.0))
    .bind(whitelabel)
    .bind(expires_at)
    .execute(db)
    .await?;
    Ok(())
}

/// Spend a state: valid once, before it expires.
pub async fn take_state(tx: &mut PgConnection, hash: &[u8]) -> Result<StateCheck> {
    let row: Option<(Uuid, Option<Uuid>, bool, bool, bool)> = sqlx::query_as(
        "SELECT tenant_id, user_id, whitelabel, used_at IS NOT NULL, expires_at <= now()
         FROM crm_oauth_states WHERE state_hash = $1 FOR UPDATE",
    )
    .bind(hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((tenant, user, whitelabel, used, expired)) = row else {
        return Ok(StateCheck::Unknown);
    };
    if used {
        return Ok(StateCheck::Used);
    }
    if expired {
        return Ok(StateCheck::Expired);
    }
    sqlx::query("UPDATE crm_oauth_states SET used_at = now() WHERE state_hash = $1")
        .bind(hash)
        .execute(&mut *tx)
        .await?;
    Ok(StateCheck::Valid {
        tenant_id: TenantId(tenant),
        user_id: user.map(UserId),
        whitelabel,
    })
}

/// Record a webhook delivery by its id; false when it was seen before.
pub async fn first_delivery(
    db: impl PgExecutor<'_>,
    webhook_id: &str,
    kind: &str,
    location_id: Option<&str>,
) -> Result<bool> {
    Ok(sqlx::query(
        "INSERT INTO highlevel_webhooks (webhook_id, kind, location_id) VALUES ($1, $2, $3)
         ON CONFLICT (webhook_id) DO NOTHING",
    )
    .bind(webhook_id)
    .bind(kind)
    .bind(location_id)
    .execute(db)
    .await?
    .rows_affected()
        == 1)
}

/// A contact change reported for a tenant's Location, for the next pull.
pub async fn record_contact_event(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    location_id: &str,
    kind: &str,
    crm_contact_id: &str,
    payload: &serde_json::Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO crm_contact_events (id, tenant_id, location_id, kind, crm_contact_id, payload)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(Uuid::now_v7())
    .bind(tenant.0)
    .bind(location_id)
    .bind(kind)
    .bind(crm_contact_id)
    .bind(payload)
    .execute(db)
    .await?;
    Ok(())
}

/// Tenants whose connection works (the nightly pull's list).
pub async fn connected_tenants(db: impl PgExecutor<'_>) -> Result<Vec<TenantId>> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT c.tenant_id FROM crm_connections c JOIN tenants t ON t.id = c.tenant_id
         WHERE c.status = 'connected' AND t.status = 'active' ORDER BY c.tenant_id",
    )
    .fetch_all(db)
    .await?;
    Ok(ids.into_iter().map(TenantId).collect())
}

/// Whether the tenant has a pull that has not started yet (queued or
/// deferred): a new contact event is then already covered by it.
pub async fn pull_pending(db: impl PgExecutor<'_>, tenant: TenantId) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE tenant_id = $1 AND kind = 'crm_pull'
                          AND status IN ('queued', 'deferred'))",
    )
    .bind(tenant.0)
    .fetch_one(db)
    .await?)
}

/// The last successful pull's high-water mark (HighLevel's `dateUpdated`).
pub async fn pulled_through(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
) -> Result<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar::<_, Option<DateTime<Utc>>>(
        "SELECT pulled_through FROM crm_connections WHERE tenant_id = $1",
    )
    .bind(tenant.0)
    .fetch_optional(db)
    .await?
    .flatten())
}

/// Move the high-water mark forward (never back).
pub async fn set_pulled_through(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "UPDATE crm_connections SET pulled_through = greatest(pulled_through, $2)
         WHERE tenant_id = $1",
    )
    .bind(tenant.0)
    .bind(at)
    .execute(db)
    .await?;
    Ok(())
}

/// Of these (HighLevel id, content hash) pairs, the ones whose content is
/// not what was last staged from that contact.
pub async fn changed_since_pulled(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    ids: &[String],
    hashes: &[Vec<u8>],
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT t.id FROM unnest($2::text[], $3::bytea[]) AS t(id, hash)
         WHERE NOT EXISTS (SELECT 1 FROM crm_pulled p WHERE p.tenant_id = $1
                             AND p.crm_contact_id = t.id AND p.content_hash = t.hash)",
    )
    .bind(tenant.0)
    .bind(ids)
    .bind(hashes)
    .fetch_all(db)
    .await?)
}

/// Remember what was staged from these HighLevel contacts.
pub async fn record_pulled(
    db: impl PgExecutor<'_>,
    tenant: TenantId,
    ids: &[String],
    hashes: &[Vec<u8>],
) -> Result<()> {
    sqlx::query(
        "INSERT INTO crm_pulled (tenant_id, crm_contact_id, content_hash)
         SELECT $1, id, hash FROM unnest($2::text[], $3::bytea[]) AS t(id, hash)
         ON CONFLICT (tenant_id, crm_contact_id) DO UPDATE
             SET content_hash = excluded.content_hash, pulled_at = now()",
    )
    .bind(tenant.0)
    .bind(ids)
    .bind(hashes)
    .execute(db)
    .await?;
    Ok(())
}
