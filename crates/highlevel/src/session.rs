//! A tenant's HighLevel session: the token every CRM call uses, kept valid.
//!
//! OAuth access tokens last about a day and each refresh spends the refresh
//! token it used, so refreshing is serialized per connection: the refresher
//! holds the connection's row (`SELECT ... FOR UPDATE`) from reading the
//! refresh token to storing the new pair, and a process that waited on the
//! lock finds the version moved on and uses the new token instead of
//! spending the old refresh token a second time. A refused refresh, or a
//! refused Private Integration key (they never refresh), marks the
//! connection `needs_reconnect`, audits it, and ends the caller's work with
//! [`SessionError::NeedsReconnect`]: an admin must act, retrying cannot help.

use crate::oauth::App;
use crate::{Client, Error};
use bizcontacts_domain::TenantId;
use bizcontacts_security::sealing::Keyring;
use bizcontacts_store::crm::{self, Method, Status};
use bizcontacts_store::{audit, StoreError};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use std::future::Future;
use std::sync::Arc;

/// Refresh this long before the access token expires.
pub const REFRESH_MARGIN: chrono::Duration = chrono::Duration::minutes(5);

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the tenant has no CRM connection")]
    NotConnected,
    #[error("the CRM connection needs an admin to connect again: {0}")]
    NeedsReconnect(String),
    /// A configuration fault, not the connection's: the key that sealed a
    /// stored secret is not configured (see `bizcontacts secrets rotate`).
    #[error("a stored CRM secret cannot be opened: {0}")]
    Unreadable(String),
    #[error(transparent)]
    HighLevel(#[from] Error),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl SessionError {
    /// Whether a later attempt may succeed (outages, rate limits).
    pub fn is_transient(&self) -> bool {
        match self {
            SessionError::HighLevel(e) => e.is_transient(),
            SessionError::Store(_) => true,
            _ => false,
        }
    }
}

impl From<sqlx::Error> for SessionError {
    fn from(e: sqlx::Error) -> Self {
        SessionError::Store(e.into())
    }
}

/// What sessions are made from: the client, our app, the keys, the pool.
#[derive(Clone)]
pub struct Crm {
    pub client: Client,
    pub app: App,
    pub keyring: Arc<Keyring>,
    pub pool: sqlx::PgPool,
}

/// One tenant's open session.
pub struct HighLevelSession {
    crm: Crm,
    pub tenant: TenantId,
    pub method: Method,
    pub location_id: String,
    token: SecretString,
    version: i64,
}

impl Crm {
    /// The tenant's session, its token refreshed first when it expires
    /// within [`REFRESH_MARGIN`].
    pub async fn session(&self, tenant: TenantId) -> Result<HighLevelSession, SessionError> {
        let mut tx = self.pool.begin().await?;
        let t = crm::lock_tokens(&mut tx, tenant)
            .await?
            .ok_or(SessionError::NotConnected)?;
        tx.commit().await?;
        match t.status {
            Status::Connected => {}
            Status::NeedsReconnect => {
                return Err(SessionError::NeedsReconnect(
                    "marked earlier; connect again".into(),
                ))
            }
            Status::Disconnected => return Err(SessionError::NotConnected),
        }
        let sealed = t.token.ok_or(SessionError::NotConnected)?;
        let token = self.open(tenant, "token", &sealed)?;
        let mut session = HighLevelSession {
            crm: self.clone(),
            tenant,
            method: t.method,
            location_id: t.location_id.unwrap_or_default(),
            token,
            version: t.version,
        };
        if t.method == Method::Oauth && expiring(t.expires_at) {
            session.refresh().await?;
        }
        Ok(session)
    }

    fn open(
        &self,
        tenant: TenantId,
        which: &str,
        sealed: &bizcontacts_security::sealing::Sealed,
    ) -> Result<SecretString, SessionError> {
        self.keyring
            .open(sealed, &crm::secret_place(tenant, which))
            .map_err(|e| SessionError::Unreadable(format!("{which}: {e}")))
    }

    /// Mark the connection `needs_reconnect` and audit why.
    async fn give_up(&self, tenant: TenantId, why: &str) -> Result<SessionError, SessionError> {
        let mut tx = self.pool.begin().await?;
        crm::needs_reconnect(&mut *tx, tenant, why).await?;
        audit::record(
            &mut *tx,
            audit::NewEvent {
                tenant_id: Some(tenant),
                actor: audit::Actor::system(),
                action: "crm.needs_reconnect",
                target_type: Some("crm_connection"),
                target_id: Some(tenant.0.to_string()),
                details: serde_json::json!({ "reason": why }),
                request_id: None,
            },
        )
        .await?;
        tx.commit().await?;
        tracing::warn!(tenant_id = %tenant.0, reason = why, "CRM connection needs reconnecting");
        Ok(SessionError::NeedsReconnect(why.to_string()))
    }
}

fn expiring(at: Option<DateTime<Utc>>) -> bool {
    at.is_some_and(|at| at - Utc::now() < REFRESH_MARGIN)
}

impl HighLevelSession {
    pub fn client(&self) -> &Client {
        &self.crm.client
    }

    /// Run one HighLevel call with the session's token. A 401 refreshes
    /// (OAuth) and tries once more; a second refusal, or any refusal of a
    /// Private Integration key, ends in `needs_reconnect`.
    pub async fn call<T, F, Fut>(&mut self, f: F) -> Result<T, SessionError>
    where
        F: Fn(Client, SecretString) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        match f(self.crm.client.clone(), self.token.clone()).await {
            Err(Error::Unauthorized { call, status }) => {
                if self.method == Method::PrivateIntegration {
                    let why =
                        format!("HighLevel refused the Private Integration key ({call}: {status})");
                    return Err(self.crm.give_up(self.tenant, &why).await?);
                }
                self.refresh().await?;
                match f(self.crm.client.clone(), self.token.clone()).await {
                    Err(Error::Unauthorized { call, status }) => {
                        let why =
                            format!("HighLevel refused a fresh access token ({call}: {status})");
                        Err(self.crm.give_up(self.tenant, &why).await?)
                    }
                    other => Ok(other?),
                }
            }
            other => Ok(other?),
        }
    }

    /// Refresh the access token, once per connection at a time: under the
    /// row lock, and only if nobody refreshed since this session read it.
    pub async fn refresh(&mut self) -> Result<(), SessionError> {
        let crm = self.crm.clone();
        let mut tx = crm.pool.begin().await?;
        let t = crm::lock_tokens(&mut tx, self.tenant)
            .await?
            .ok_or(SessionError::NotConnected)?;
        if t.status != Status::Connected {
            return Err(SessionError::NeedsReconnect(format!(
                "the connection is {}",
                t.status.as_str()
            )));
        }
        if t.version != self.version && !expiring(t.expires_at) {
            // Another process refreshed while we waited: use its token.
            let sealed = t.token.ok_or(SessionError::NotConnected)?;
            self.token = crm.open(self.tenant, "token", &sealed)?;
            self.version = t.version;
            return Ok(());
        }
        let Some(refresh) = t.refresh else {
            drop(tx);
            return Err(crm.give_up(self.tenant, "no refresh token stored").await?);
        };
        let refresh = crm.open(self.tenant, "refresh", &refresh)?;
        match crm.client.refresh(&crm.app, &refresh).await {
            Ok(new) => {
                let expires_at = new
                    .expires_in
                    .and_then(|d| chrono::Duration::from_std(d).ok())
                    .map(|d| Utc::now() + d);
                let place = |which| crm::secret_place(self.tenant, which);
                let token = crm.keyring.seal(
                    secrecy::ExposeSecret::expose_secret(&new.access_token),
                    &place("token"),
                );
                let refresh = new.refresh_token.as_ref().map(|r| {
                    crm.keyring
                        .seal(secrecy::ExposeSecret::expose_secret(r), &place("refresh"))
                });
                crm::store_refreshed(&mut tx, self.tenant, token, refresh, expires_at).await?;
                let version: i64 = sqlx::query_scalar(
                    "SELECT token_version FROM crm_connections WHERE tenant_id = $1",
                )
                .bind(self.tenant.0)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                self.token = new.access_token;
                self.version = version;
                tracing::info!(tenant_id = %self.tenant.0, "HighLevel access token refreshed");
                Ok(())
            }
            Err(Error::Unauthorized { status, .. }) => {
                drop(tx);
                let why = format!("HighLevel refused the refresh token ({status})");
                Err(crm.give_up(self.tenant, &why).await?)
            }
            Err(e) => Err(e.into()),
        }
    }
}
