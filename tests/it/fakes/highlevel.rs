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
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/oauth/token", post(token))
            .route("/locations/{id}", get(location))
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
