//! HighLevel API v2, as Business Contacts uses it.
//!
//! - [`Client`]: the calls we make with a Location's token (an OAuth access
//!   token or a Private Integration key, used alike): `Authorization:
//!   Bearer`, `Version: 2021-07-28`, the base URL from config
//!   (`highlevel.api_base_url`), a time bound on every call.
//! - [`oauth`]: the consent URL, the code exchange and the refresh (the
//!   `oauth2` crate, form-encoded with `user_type=Location`).
//! - [`session`]: [`session::Crm`] hands CRM jobs a [`session::HighLevelSession`]
//!   for a tenant: the connection's token opened, refreshed before expiry
//!   and once on a 401, one refresh at a time per connection across every
//!   worker process (the connection's row lock).
//! - [`webhook`]: signature checks over the raw body (`x-wh-signature`
//!   RSA-SHA256, `x-ghl-signature` Ed25519) and the events we act on.
//!
//! Errors name the call that failed and why (status, HighLevel's message),
//! never a token: tokens travel as [`SecretString`]s and are only exposed
//! into the `Authorization` header.

pub mod oauth;
pub mod session;
pub mod webhook;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::time::Duration;

/// The API version every call sends.
pub const API_VERSION: &str = "2021-07-28";

/// The scopes a connection needs: read and write contacts, read the Location.
pub const SCOPES: [&str; 3] = ["contacts.readonly", "contacts.write", "locations.readonly"];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The token was refused: expired or revoked (OAuth), or a wrong key.
    #[error("HighLevel {call}: the token was refused ({status})")]
    Unauthorized { call: &'static str, status: u16 },
    #[error("HighLevel {call}: rate limited; retry in {retry_after:?}")]
    RateLimited {
        call: &'static str,
        retry_after: Duration,
    },
    #[error("HighLevel {call}: {status}: {message}")]
    Status {
        call: &'static str,
        status: u16,
        message: String,
    },
    #[error("HighLevel {call}: {reason}")]
    Transport { call: &'static str, reason: String },
}

impl Error {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::RateLimited { .. } | Error::Transport { .. } => true,
            Error::Status { status, .. } => *status >= 500,
            Error::Unauthorized { .. } => false,
        }
    }
}

/// A client of one HighLevel API base URL.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish()
    }
}

/// A sub-account as `GET /locations/{id}` describes it (the fields we keep).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub company_id: Option<String>,
}

impl Client {
    pub fn new(base: &str, timeout: Duration) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            // A redirect would carry the token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Transport {
                call: "client",
                reason: e.to_string(),
            })?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `GET /locations/{id}`: the cheap call that proves a token works for
    /// the Location.
    pub async fn location(&self, token: &SecretString, id: &str) -> Result<Location, Error> {
        #[derive(Deserialize)]
        struct Body {
            location: Location,
        }
        let call = "GET /locations/{locationId}";
        let path: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
        let res = self
            .http
            .get(format!("{}/locations/{path}", self.base))
            .bearer_auth(token.expose_secret())
            .header("Version", API_VERSION)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| transport(call, e))?;
        let body: Body = read(call, res).await?;
        Ok(body.location)
    }
}

fn transport(call: &'static str, e: reqwest::Error) -> Error {
    // reqwest's message carries the URL, never headers: no token in it.
    Error::Transport {
        call,
        reason: e.without_url().to_string(),
    }
}

/// A response's JSON, or the error its status means.
pub(crate) async fn read<T: serde::de::DeserializeOwned>(
    call: &'static str,
    res: reqwest::Response,
) -> Result<T, Error> {
    let status = res.status();
    if status.is_success() {
        return res.json().await.map_err(|e| Error::Transport {
            call,
            reason: format!("unreadable response: {}", e.without_url()),
        });
    }
    let retry_after = rate_limit_wait(res.headers());
    let body = res.text().await.unwrap_or_default();
    Err(match status.as_u16() {
        401 | 403 => Error::Unauthorized {
            call,
            status: status.as_u16(),
        },
        429 => Error::RateLimited { call, retry_after },
        s => Error::Status {
            call,
            status: s,
            message: message_of(&body),
        },
    })
}

/// How long HighLevel asks us to wait: `Retry-After`, else the burst
/// interval of `X-RateLimit-Interval-Milliseconds`, else ten seconds (the
/// documented burst window).
pub fn rate_limit_wait(h: &reqwest::header::HeaderMap) -> Duration {
    let number = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    number("retry-after")
        .map(Duration::from_secs)
        .or_else(|| number("x-ratelimit-interval-milliseconds").map(Duration::from_millis))
        .unwrap_or(Duration::from_secs(10))
}

/// HighLevel's `message` (a string or a list of strings), short; else the
/// start of the body.
fn message_of(body: &str) -> String {
    let text = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) => match &v["message"] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            _ => v["error"].as_str().unwrap_or("").to_string(),
        },
        Err(_) => body.to_string(),
    };
    text.chars().take(200).collect()
}
