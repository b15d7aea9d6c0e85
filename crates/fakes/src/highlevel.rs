//! A fake HighLevel API v2 (`../shared/crm-api/`): `POST /oauth/token`
//! (authorization codes and refresh tokens, each usable once; client
//! credentials checked; `user_type=Location`), `GET /locations/{id}`
//! (`Version: 2021-07-28` required; 401 for an unknown, expired or foreign
//! token), with counters the tests read.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const CLIENT_ID: &str = "fake-client-id";
pub const CLIENT_SECRET: &str = "fake-client-secret-0xFACE";

#[derive(Default)]
struct Inner {
    codes: HashMap<String, Grant>,
    /// token -> (location, expires)
    access: HashMap<String, (String, Instant)>,
    /// refresh token -> (grant, spent)
    refresh: HashMap<String, (Grant, bool)>,
    /// Private Integration key -> location
    keys: HashMap<String, String>,
    locations: HashMap<String, String>,
    refresh_calls: usize,
    /// Lifetime of issued access tokens.
    access_ttl: Duration,
    /// Tokens to hand out next, instead of random ones (planted secrets).
    next_tokens: Vec<(String, String)>,
    /// Contacts per Location: id -> fields.
    contacts: HashMap<String, Vec<(String, serde_json::Value)>>,
    /// Request times per Location, for the 100 per 10 s limit.
    requests: HashMap<String, Vec<Instant>>,
    /// (requests, window) allowed per Location.
    limit: (usize, Duration),
    rejected_429: usize,
    /// 429s to answer before admitting anything (budget spent elsewhere).
    reject_next: usize,
    contact_calls: usize,
    /// When each admitted contact call arrived.
    admitted: Vec<Instant>,
}

#[derive(Clone)]
struct Grant {
    location: String,
    scopes: String,
}

#[derive(Clone)]
pub struct FakeHighLevel {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeHighLevel {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            access_ttl: Duration::from_secs(86_399),
            limit: (100, Duration::from_secs(10)),
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/oauth/token", post(token))
            .route("/locations/{id}", get(location))
            .route("/contacts/upsert", post(upsert))
            .route("/contacts/search", post(search))
            .route("/contacts/search/duplicate", get(duplicate))
            .route("/contacts/{id}", axum::routing::put(update))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeHighLevel { base, inner }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    pub fn add_location(&self, id: &str, name: &str) {
        self.lock().locations.insert(id.into(), name.into());
    }

    /// A code as HighLevel gives the browser after consent.
    pub fn grant(&self, location: &str, scopes: &str) -> String {
        let code = format!("code-{}", uuid::Uuid::new_v4().simple());
        self.lock().codes.insert(
            code.clone(),
            Grant {
                location: location.into(),
                scopes: scopes.into(),
            },
        );
        code
    }

    /// A Private Integration key for a Location.
    pub fn private_key(&self, key: &str, location: &str) {
        self.lock().keys.insert(key.into(), location.into());
    }

    /// Issued access tokens live this long.
    pub fn set_access_ttl(&self, ttl: Duration) {
        self.lock().access_ttl = ttl;
    }

    /// The next token response hands out these (access, refresh).
    pub fn plant_tokens(&self, access: &str, refresh: &str) {
        self.lock()
            .next_tokens
            .push((access.into(), refresh.into()));
    }

    /// Every access token now fails with 401 (as after expiry or revocation).
    pub fn expire_access_tokens(&self) {
        for (_, (_, at)) in self.lock().access.iter_mut() {
            *at = Instant::now() - Duration::from_secs(1);
        }
    }

    /// Every refresh token is now refused (the app was uninstalled, say).
    pub fn revoke_refresh_tokens(&self) {
        for (_, (_, spent)) in self.lock().refresh.iter_mut() {
            *spent = true;
        }
    }

    /// Contacts made in HighLevel itself (what a pull reads): `n` of them,
    /// numbered from `from`, with email, phone, names, company and address.
    pub fn add_contacts(&self, location: &str, from: usize, n: usize) {
        let mut s = self.lock();
        let list = s.contacts.entry(location.to_string()).or_default();
        for i in from..from + n {
            list.push((
                format!("hl-seed-{i:06}"),
                json!({
                    "email": format!("crm{i}@pull.example"),
                    "phone": format!("+4420794{i:05}"),
                    "firstName": "Pat", "lastName": format!("Lee{i}"),
                    "companyName": format!("Pulled {i} Ltd"),
                    "address1": "1 High Street", "city": "London", "postalCode": "EC1A 1BB",
                    "country": "GB", "website": format!("https://pulled{i}.example"),
                    "tags": ["vip"],
                    "dateUpdated": stamp(i as i64),
                }),
            ));
        }
    }

    /// Contacts edited in HighLevel: `dateUpdated` moves to now (in list
    /// order), and `change` edits their fields.
    pub fn touch(&self, location: &str, ids: &[&str], change: impl Fn(&mut serde_json::Value)) {
        let mut s = self.lock();
        let list = s.contacts.entry(location.to_string()).or_default();
        let now = chrono_now_ms();
        for (n, id) in ids.iter().enumerate() {
            if let Some((_, f)) = list.iter_mut().find(|(i, _)| i == id) {
                change(f);
                f["dateUpdated"] = stamp(now + n as i64);
            }
        }
    }

    /// HighLevel's per-Location limit (100 per 10 s by default).
    pub fn set_limit(&self, requests: usize, window: Duration) {
        self.lock().limit = (requests, window);
    }

    /// The Location's contacts: (id, fields).
    pub fn contacts(&self, location: &str) -> Vec<(String, serde_json::Value)> {
        self.lock()
            .contacts
            .get(location)
            .cloned()
            .unwrap_or_default()
    }

    /// Answer the next `n` contact calls with 429 and `Retry-After: 1`.
    pub fn reject_next(&self, n: usize) {
        self.lock().reject_next = n;
    }

    /// 429s answered so far.
    pub fn rejected(&self) -> usize {
        self.lock().rejected_429
    }

    /// Admitted contact calls per `window` (the rate a client achieved):
    /// all of them over the span from the first to the last plus one
    /// window, as the last burst has a whole window to itself.
    pub fn admitted_rate(&self, window: Duration) -> f64 {
        let s = self.lock();
        match (s.admitted.first(), s.admitted.last()) {
            (Some(a), Some(b)) => {
                let span = b.duration_since(*a) + window;
                s.admitted.len() as f64 / span.as_secs_f64() * window.as_secs_f64()
            }
            _ => 0.0,
        }
    }

    /// Contact calls answered (not counting 429s).
    pub fn contact_calls(&self) -> usize {
        self.lock().contact_calls
    }

    pub fn refresh_calls(&self) -> usize {
        self.lock().refresh_calls
    }

    /// Whether `token` is a live access token.
    pub fn is_live(&self, token: &str) -> bool {
        self.lock()
            .access
            .get(token)
            .is_some_and(|(_, at)| *at > Instant::now())
    }
}

fn unauthorized(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "statusCode": 401, "message": message })),
    )
        .into_response()
}

fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "statusCode": 400, "message": message })),
    )
        .into_response()
}

async fn token(
    State(inner): State<Arc<Mutex<Inner>>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if field("client_id") != CLIENT_ID || field("client_secret") != CLIENT_SECRET {
        return unauthorized("invalid client credentials");
    }
    if field("user_type") != "Location" {
        return bad_request("user_type must be Location or Company");
    }
    // Refreshing takes a moment, so that two callers would overlap.
    if field("grant_type") == "refresh_token" {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut s = inner.lock().unwrap();
    let grant = match field("grant_type") {
        "authorization_code" => match s.codes.remove(field("code")) {
            Some(g) => g,
            None => return unauthorized("Invalid grant: authorization code is invalid"),
        },
        "refresh_token" => {
            s.refresh_calls += 1;
            match s.refresh.get_mut(field("refresh_token")) {
                Some((g, spent)) if !*spent => {
                    *spent = true;
                    g.clone()
                }
                _ => return unauthorized("Invalid grant: refresh token is invalid"),
            }
        }
        _ => return bad_request("grant_type is invalid"),
    };
    let (access, refresh) = s.next_tokens.pop().unwrap_or_else(|| {
        (
            format!("at-{}", uuid::Uuid::new_v4().simple()),
            format!("rt-{}", uuid::Uuid::new_v4().simple()),
        )
    });
    let ttl = s.access_ttl;
    s.access.insert(
        access.clone(),
        (grant.location.clone(), Instant::now() + ttl),
    );
    s.refresh.insert(refresh.clone(), (grant.clone(), false));
    Json(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ttl.as_secs(),
        "refresh_token": refresh,
        "scope": grant.scopes,
        "userType": "Location",
        "locationId": grant.location,
        "companyId": "company-1",
        "userId": "user-1",
    }))
    .into_response()
}

async fn location(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if headers.get("version").and_then(|v| v.to_str().ok()) != Some("2021-07-28") {
        return bad_request("Version header is missing or unsupported");
    }
    let Some(token) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return unauthorized("No token");
    };
    let s = inner.lock().unwrap();
    let for_location = match (s.access.get(token), s.keys.get(token)) {
        (Some((loc, at)), _) if *at > Instant::now() => loc.clone(),
        (_, Some(loc)) => loc.clone(),
        _ => return unauthorized("Invalid JWT"),
    };
    let Some(name) = s.locations.get(&id) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "statusCode": 404, "message": "Location not found" })),
        )
            .into_response();
    };
    if for_location != id {
        return unauthorized("The token is not authorized for this location");
    }
    Json(json!({ "location": { "id": id, "name": name, "companyId": "company-1" } }))
        .into_response()
}

/// A contact call's way in: the token's Location (which must be the one a
/// body names), then the Location's rate limit.
#[allow(clippy::result_large_err)]
fn enter(
    s: &mut Inner,
    headers: &HeaderMap,
    body: Option<&serde_json::Value>,
) -> Result<(String, Limits), Response> {
    let location = authorized(s, headers)?;
    if body.is_some_and(|b| b["locationId"].as_str() != Some(location.as_str())) {
        return Err(unauthorized(
            "The token is not authorized for this location",
        ));
    }
    let limits = admit(s, &location)?;
    Ok((location, limits))
}

/// The token's Location, or the 401 HighLevel answers. (The error is the
/// handler's own response; a fake has no use for boxing it.)
#[allow(clippy::result_large_err)]
fn authorized(s: &Inner, headers: &HeaderMap) -> Result<String, Response> {
    if headers.get("version").and_then(|v| v.to_str().ok()) != Some("2021-07-28") {
        return Err(bad_request("Version header is missing or unsupported"));
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("No token"))?;
    match (s.access.get(token), s.keys.get(token)) {
        (Some((loc, at)), _) if *at > Instant::now() => Ok(loc.clone()),
        (_, Some(loc)) => Ok(loc.clone()),
        _ => Err(unauthorized("Invalid JWT")),
    }
}

/// HighLevel's burst limit per Location, with its headers; a 429 past it.
#[allow(clippy::result_large_err)]
fn admit(s: &mut Inner, location: &str) -> Result<Limits, Response> {
    let (max, window) = s.limit;
    let now = Instant::now();
    if s.reject_next > 0 {
        // Another app spent this Location's budget: a 429 that says when.
        s.reject_next -= 1;
        s.rejected_429 += 1;
        let mut res = (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({ "statusCode": 429, "message": "Too many requests" })),
        )
            .into_response();
        res.headers_mut().insert("retry-after", 1.into());
        return Err(res);
    }
    let times = s.requests.entry(location.to_string()).or_default();
    times.retain(|t| now.duration_since(*t) < window);
    if times.len() >= max {
        s.rejected_429 += 1;
        let mut res = (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({ "statusCode": 429, "message": "Too many requests" })),
        )
            .into_response();
        let h = res.headers_mut();
        h.insert("x-ratelimit-max", max.into());
        h.insert("x-ratelimit-remaining", 0.into());
        h.insert(
            "x-ratelimit-interval-milliseconds",
            (window.as_millis() as u64).into(),
        );
        return Err(res);
    }
    times.push(now);
    let remaining = max - times.len();
    s.contact_calls += 1;
    s.admitted.push(now);
    Ok(Limits {
        max,
        remaining,
        window,
    })
}

/// The rate-limit headers HighLevel sends with every answer.
struct Limits {
    max: usize,
    remaining: usize,
    window: Duration,
}

impl Limits {
    fn on(&self, mut res: Response) -> Response {
        let h = res.headers_mut();
        h.insert("x-ratelimit-max", self.max.into());
        h.insert("x-ratelimit-remaining", self.remaining.into());
        h.insert(
            "x-ratelimit-interval-milliseconds",
            (self.window.as_millis() as u64).into(),
        );
        res
    }
}

async fn upsert(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> Response {
    let mut s = inner.lock().unwrap();
    let (location, limits) = match enter(&mut s, &headers, Some(&body)) {
        Ok(entered) => entered,
        Err(r) => return r,
    };
    let contacts = s.contacts.entry(location).or_default();
    // Matched by email, else phone (the Location's duplicate setting).
    let same =
        |c: &serde_json::Value, f: &str| body[f].as_str().is_some_and(|v| c[f].as_str() == Some(v));
    if let Some((id, fields)) = contacts
        .iter_mut()
        .find(|(_, c)| same(c, "email") || same(c, "phone"))
    {
        *fields = body.clone();
        return limits.on(Json(json!({ "new": false, "contact": { "id": id } })).into_response());
    }
    let id = format!("hl-{}", uuid::Uuid::new_v4().simple());
    contacts.push((id.clone(), body));
    limits.on(Json(json!({ "new": true, "contact": { "id": id } })).into_response())
}

async fn update(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> Response {
    let mut s = inner.lock().unwrap();
    let location = match authorized(&s, &headers) {
        Ok(l) => l,
        Err(r) => return r,
    };
    if body.get("companyName").is_some() || body.get("locationId").is_some() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(
                json!({ "statusCode": 422, "message": ["property companyName should not exist"] }),
            ),
        )
            .into_response();
    }
    let limits = match admit(&mut s, &location) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let contacts = s.contacts.entry(location).or_default();
    match contacts.iter_mut().find(|(i, _)| *i == id) {
        Some((_, fields)) => {
            for (k, v) in body.as_object().unwrap() {
                fields[k] = v.clone();
            }
            limits.on(Json(json!({ "succeded": true, "contact": { "id": id } })).into_response())
        }
        None => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "statusCode": 400, "message": "Contact not found" })),
        )
            .into_response(),
    }
}

async fn duplicate(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    let mut s = inner.lock().unwrap();
    let (location, limits) = match enter(&mut s, &headers, None) {
        Ok(entered) => entered,
        Err(r) => return r,
    };
    let found = s.contacts.get(&location).and_then(|cs| {
        cs.iter().find(|(_, c)| {
            q.get("email")
                .is_some_and(|e| c["email"].as_str() == Some(e))
                || q.get("number")
                    .is_some_and(|p| c["phone"].as_str() == Some(p))
        })
    });
    limits.on(Json(json!({ "contact": found.map(|(id, _)| json!({ "id": id })) })).into_response())
}

/// `POST /contacts/search`: `page` and `pageLimit` (at most 500) up to
/// 10,000 records; past that only `searchAfter` works. Contacts come in
/// the order they were added, each with its `searchAfter`.
async fn search(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> Response {
    let mut s = inner.lock().unwrap();
    let (location, limits) = match enter(&mut s, &headers, Some(&body)) {
        Ok(entered) => entered,
        Err(r) => return r,
    };
    let limit = body["pageLimit"].as_u64().unwrap_or(20) as usize;
    if limit > 500 {
        return bad_request("pageLimit must not be greater than 500");
    }
    let start = match (&body["page"], &body["searchAfter"]) {
        (serde_json::Value::Number(p), _) => {
            let p = p.as_u64().unwrap_or(1).max(1) as usize;
            if p * limit > 10_000 {
                return bad_request("page paging is limited to 10,000 records; use searchAfter");
            }
            (p - 1) * limit
        }
        (_, serde_json::Value::Array(a)) => a
            .get(1)
            .and_then(|v| v.as_u64())
            .map(|i| i as usize + 1)
            .unwrap_or(0),
        _ => 0,
    };
    // In order of last update, filtered by `dateUpdated >= gte` if asked.
    let since = body["filters"][0]["value"]["gte"]
        .as_str()
        .map(str::to_string);
    let mut all = s.contacts.get(&location).cloned().unwrap_or_default();
    all.sort_by(|a, b| {
        a.1["dateUpdated"]
            .as_str()
            .cmp(&b.1["dateUpdated"].as_str())
    });
    if let Some(since) = since {
        all.retain(|(_, f)| {
            f["dateUpdated"]
                .as_str()
                .is_some_and(|d| d >= since.as_str())
        });
    }
    let page: Vec<serde_json::Value> = all
        .iter()
        .enumerate()
        .skip(start)
        .take(limit)
        .map(|(i, (id, f))| {
            let mut c = f.clone();
            c["id"] = id.clone().into();
            c["searchAfter"] = json!([i as u64 * 1000, i]);
            c
        })
        .collect();
    limits.on(Json(json!({ "contacts": page, "total": all.len() })).into_response())
}

/// Milliseconds since the epoch, now.
fn chrono_now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A `dateUpdated` as HighLevel writes it (UTC, milliseconds): `ms` after
/// the epoch, or, for small numbers, that many seconds into 2026.
fn stamp(ms: i64) -> serde_json::Value {
    let ms = if ms < 1_000_000_000_000 {
        1_767_225_600_000 + ms * 1000
    } else {
        ms
    };
    let at = chrono::DateTime::from_timestamp_millis(ms).expect("a time in range");
    json!(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}
