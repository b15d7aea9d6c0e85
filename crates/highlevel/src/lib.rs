//! HighLevel API v2, as Business Contacts uses it.
//!
//! - [`Client`]: the calls we make with a Location's token (an OAuth access
//!   token or a Private Integration key, used alike): `Authorization:
//!   Bearer`, `Version: 2021-07-28`, the base URL from config
//!   (`highlevel.api_base_url`), a time bound on every call.
//! - [`oauth`]: the consent URL, the code exchange and the refresh (the
//!   `oauth2` crate, form-encoded with `user_type=Location`).
//! - [`limiter`]: the per-Location request budget in Redis, shared by every
//!   worker process (a sliding window and a daily count, one Lua script).
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

pub mod limiter;
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
    /// Per Location, when HighLevel last said its burst budget was spent
    /// (`X-RateLimit-Remaining: 0`): no request before the instant it gave.
    hold: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>>,
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
            hold: Default::default(),
            http,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    /// Slow down early: HighLevel's `X-RateLimit-Remaining` at 0 holds the
    /// Location's next request for `X-RateLimit-Interval-Milliseconds` (or
    /// `Retry-After`), before any 429 (our own budget should keep it from
    /// happening; this covers what else spends the same Location's budget).
    fn note_limits(&self, location: &str, headers: &reqwest::header::HeaderMap) {
        let remaining = headers
            .get("x-ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if remaining == Some(0) {
            let until = std::time::Instant::now() + rate_limit_wait(headers);
            self.hold
                .lock()
                .expect("hold lock")
                .insert(location.to_string(), until);
        }
    }

    /// Wait out a hold [`Self::note_limits`] set for the Location.
    pub async fn wait_for(&self, location: &str) {
        let until = self.hold.lock().expect("hold lock").get(location).copied();
        if let Some(until) = until {
            tokio::time::sleep_until(until.into()).await;
        }
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

/// A contact as we send it to HighLevel (`POST /contacts/upsert`; the
/// update by id takes the same fields but `companyName`, which HighLevel's
/// `PUT /contacts/{id}` does not accept).
#[derive(Debug, Clone, Default, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ContactBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    pub source: String,
}

/// HighLevel's answer to an upsert: the contact's id and whether it is new.
#[derive(Debug, Clone)]
pub struct Upserted {
    pub id: String,
    pub new: bool,
}

impl Client {
    fn authed(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &SecretString,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token.expose_secret())
            .header("Version", API_VERSION)
            .header("Accept", "application/json")
    }

    /// `POST /contacts/upsert`: HighLevel matches an existing contact of
    /// the Location by email or phone, else creates one.
    pub async fn upsert_contact(
        &self,
        token: &SecretString,
        location: &str,
        body: &ContactBody,
    ) -> Result<Upserted, Error> {
        #[derive(Deserialize)]
        struct Contact {
            id: String,
        }
        #[derive(Deserialize)]
        struct Body {
            #[serde(default)]
            new: bool,
            contact: Contact,
        }
        let call = "POST /contacts/upsert";
        let mut json = serde_json::to_value(body).expect("a contact body serializes");
        json["locationId"] = location.into();
        let res = self
            .authed(reqwest::Method::POST, "/contacts/upsert", token)
            .json(&json)
            .send()
            .await
            .map_err(|e| transport(call, e))?;
        self.note_limits(location, res.headers());
        let b: Body = read(call, res).await?;
        Ok(Upserted {
            id: b.contact.id,
            new: b.new,
        })
    }

    /// `PUT /contacts/{id}`: update the contact we pushed before.
    pub async fn update_contact(
        &self,
        token: &SecretString,
        id: &str,
        body: &ContactBody,
    ) -> Result<(), Error> {
        let call = "PUT /contacts/{contactId}";
        let mut json = serde_json::to_value(body).expect("a contact body serializes");
        if let Some(o) = json.as_object_mut() {
            o.remove("companyName");
        }
        let path: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
        let res = self
            .authed(reqwest::Method::PUT, &format!("/contacts/{path}"), token)
            .json(&json)
            .send()
            .await
            .map_err(|e| transport(call, e))?;
        let _: serde_json::Value = read(call, res).await?;
        Ok(())
    }

    /// `GET /contacts/search/duplicate`: the Location's contact with this
    /// email or phone, if any (to settle a push whose outcome was lost).
    pub async fn find_duplicate(
        &self,
        token: &SecretString,
        location: &str,
        email: Option<&str>,
        phone: Option<&str>,
    ) -> Result<Option<String>, Error> {
        #[derive(Deserialize)]
        struct Contact {
            id: String,
        }
        #[derive(Deserialize)]
        struct Body {
            contact: Option<Contact>,
        }
        let call = "GET /contacts/search/duplicate";
        let mut query = vec![("locationId", location)];
        if let Some(e) = email {
            query.push(("email", e));
        }
        if let Some(p) = phone {
            query.push(("number", p));
        }
        let res = self
            .authed(reqwest::Method::GET, "/contacts/search/duplicate", token)
            .query(&query)
            .send()
            .await
            .map_err(|e| transport(call, e))?;
        self.note_limits(location, res.headers());
        let b: Body = read(call, res).await?;
        Ok(b.contact.map(|c| c.id))
    }
}

/// Where a contact search continues: a page number while under HighLevel's
/// 10,000-record page limit, then the `searchAfter` of the last contact.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchFrom {
    Page(u32),
    After(serde_json::Value),
}

/// How many records page numbers reach (HighLevel's limit).
pub const PAGE_PAGING_LIMIT: u32 = 10_000;

/// One page of `POST /contacts/search`: the contacts as HighLevel sent
/// them, and where the next page starts (None at the end).
pub struct ContactPage {
    pub contacts: Vec<serde_json::Value>,
    pub next: Option<SearchFrom>,
}

impl Client {
    /// `POST /contacts/search` in order of last update, `page_limit` per
    /// page; with `updated_since`, only contacts updated at or after it.
    pub async fn search_contacts(
        &self,
        token: &SecretString,
        location: &str,
        page_limit: u32,
        from: &SearchFrom,
        updated_since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<ContactPage, Error> {
        #[derive(Deserialize)]
        struct Body {
            #[serde(default)]
            contacts: Vec<serde_json::Value>,
        }
        let call = "POST /contacts/search";
        let mut body = serde_json::json!({
            "locationId": location,
            "pageLimit": page_limit,
            "sort": [{ "field": "dateUpdated", "direction": "asc" }],
        });
        if let Some(since) = updated_since {
            body["filters"] = serde_json::json!([{
                "field": "dateUpdated",
                "operator": "range",
                "value": { "gte": since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true) },
            }]);
        }
        match from {
            SearchFrom::Page(p) => body["page"] = (*p).into(),
            SearchFrom::After(a) => body["searchAfter"] = a.clone(),
        }
        let res = self
            .authed(reqwest::Method::POST, "/contacts/search", token)
            .json(&body)
            .send()
            .await
            .map_err(|e| transport(call, e))?;
        self.note_limits(location, res.headers());
        let b: Body = read(call, res).await?;
        let next = if (b.contacts.len() as u32) < page_limit {
            None
        } else {
            match from {
                // The next page would reach past the page-number limit.
                SearchFrom::Page(p) if (p + 1) * page_limit <= PAGE_PAGING_LIMIT => {
                    Some(SearchFrom::Page(p + 1))
                }
                _ => b
                    .contacts
                    .last()
                    .and_then(|c| c.get("searchAfter").cloned())
                    .map(SearchFrom::After),
            }
        };
        Ok(ContactPage {
            contacts: b.contacts,
            next,
        })
    }
}
