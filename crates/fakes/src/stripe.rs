//! A fake Stripe: the calls billing makes, as Stripe's API reference says
//! they behave.
//!
//! - Every call needs `Authorization: Bearer <secret key>`; another key is a
//!   401 with Stripe's error body.
//! - `POST /v1/checkout/sessions`: form-encoded (a JSON body is a 400, as at
//!   Stripe); `mode=subscription` needs `line_items[0][price]` of a known
//!   price, `success_url` and `cancel_url`. An `Idempotency-Key` seen
//!   before returns the first answer again. Each request's form is kept
//!   for the tests to read.
//! - `GET /v1/subscriptions/{id}`: the subscription as it is now (canceled
//!   ones too); 404 with `resource_missing` for an unknown id.
//! - `GET /v1/subscriptions?status=all&limit=&starting_after=`: newest
//!   first, `limit` 1 to 100 (default 10), `has_more`.
//! - Events: [`FakeStripe::event`] makes a signed webhook delivery.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Inner {
    secret_key: String,
    prices: Vec<String>,
    /// By id; `order` keeps creation order.
    subscriptions: HashMap<String, Value>,
    order: Vec<String>,
    checkouts: Vec<BTreeMap<String, String>>,
    idempotent: HashMap<String, Value>,
    /// Requests seen per path, for tests that count calls.
    calls: Vec<String>,
    next: u64,
}

pub struct FakeStripe {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

type Shared = Arc<Mutex<Inner>>;

impl FakeStripe {
    /// A fake that accepts `secret_key` and sells `prices`.
    pub async fn start(secret_key: &str, prices: &[&str]) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            secret_key: secret_key.into(),
            prices: prices.iter().map(|p| p.to_string()).collect(),
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/v1/checkout/sessions", post(create_checkout))
            .route("/v1/subscriptions", get(list_subscriptions))
            .route("/v1/subscriptions/{id}", get(get_subscription))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeStripe { base, inner }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    /// Create or replace a subscription (as the Stripe dashboard or a
    /// payment would); returns it. `created` orders the list.
    pub fn put_subscription(
        &self,
        id: &str,
        customer: &str,
        price: &str,
        status: &str,
        tenant_id: Option<&str>,
    ) -> Value {
        let mut inner = self.lock();
        inner.next += 1;
        let created = 1_700_000_000 + inner.next as i64;
        let metadata = match tenant_id {
            Some(t) => json!({ "tenant_id": t }),
            None => json!({}),
        };
        let sub = json!({
            "id": id,
            "object": "subscription",
            "customer": customer,
            "status": status,
            "created": inner.subscriptions.get(id).map(|s| s["created"].clone()).unwrap_or(json!(created)),
            "metadata": metadata,
            "items": { "object": "list", "has_more": false, "data": [{
                "id": format!("si_{id}"),
                "price": { "id": price, "object": "price" },
                "current_period_end": 1_900_000_000,
            }]},
        });
        if inner
            .subscriptions
            .insert(id.to_string(), sub.clone())
            .is_none()
        {
            inner.order.push(id.to_string());
        }
        sub
    }

    /// The forms of the Checkout Sessions created so far.
    pub fn checkouts(&self) -> Vec<BTreeMap<String, String>> {
        self.lock().checkouts.clone()
    }

    /// Paths called so far.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// A webhook delivery of `kind` about `object`, signed with `secret` at
    /// `t` (unix seconds): (body, Stripe-Signature header).
    pub fn event(id: &str, kind: &str, object: Value, secret: &str, t: i64) -> (String, String) {
        let body = json!({
            "id": id,
            "object": "event",
            "type": kind,
            "created": t,
            "api_version": "2025-03-31.basil",
            "livemode": false,
            "data": { "object": object },
        })
        .to_string();
        let header = bizcontacts_billing::signature::sign(secret, t, body.as_bytes());
        (body, header)
    }
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "type": kind, "message": message } })),
    )
        .into_response()
}

/// The Bearer check every call makes; records the call. The refusal is
/// built by the caller ([`unauthorized`]).
fn authorized(state: &Shared, headers: &HeaderMap, path: &str) -> bool {
    let mut inner = state.lock().unwrap();
    inner.calls.push(path.to_string());
    let expected = format!("Bearer {}", inner.secret_key);
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
}

fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        "Invalid API Key provided",
    )
}

async fn create_checkout(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if !authorized(&state, &headers, "/v1/checkout/sessions") {
        return unauthorized();
    }
    let is_form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "form-encoded body expected",
        );
    }
    let form: BTreeMap<String, String> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let mut inner = state.lock().unwrap();
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(seen) = key.as_ref().and_then(|k| inner.idempotent.get(k)) {
        return Json(seen.clone()).into_response();
    }
    for field in ["success_url", "cancel_url", "line_items[0][price]"] {
        if !form.contains_key(field) {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("Missing required param: {field}."),
            );
        }
    }
    if form.get("mode").map(String::as_str) != Some("subscription") {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "mode must be subscription here",
        );
    }
    if !inner.prices.contains(&form["line_items[0][price]"]) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "No such price",
        );
    }
    inner.next += 1;
    let id = format!("cs_test_{}", inner.next);
    let session = json!({
        "id": id,
        "object": "checkout.session",
        "mode": "subscription",
        "url": format!("https://checkout.stripe.test/c/pay/{id}"),
        "client_reference_id": form.get("client_reference_id"),
        "customer": form.get("customer"),
        "subscription": null,
    });
    inner.checkouts.push(form);
    if let Some(k) = key {
        inner.idempotent.insert(k, session.clone());
    }
    Json(session).into_response()
}

async fn get_subscription(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !authorized(&state, &headers, &format!("/v1/subscriptions/{id}")) {
        return unauthorized();
    }
    match state.lock().unwrap().subscriptions.get(&id) {
        Some(sub) => Json(sub.clone()).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            &format!("No such subscription: '{id}'"),
        ),
    }
}

async fn list_subscriptions(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&state, &headers, "/v1/subscriptions") {
        return unauthorized();
    }
    let limit: usize = match q.get("limit").map(|l| l.parse()) {
        None => 10,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "limit must be between 1 and 100",
            )
        }
    };
    let inner = state.lock().unwrap();
    // Newest first, like Stripe.
    let newest_first: Vec<&String> = inner.order.iter().rev().collect();
    let start = match q.get("starting_after") {
        None => 0,
        Some(after) => match newest_first.iter().position(|id| *id == after) {
            Some(i) => i + 1,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "No such subscription for starting_after",
                )
            }
        },
    };
    let page: Vec<Value> = newest_first
        .iter()
        .skip(start)
        .take(limit)
        .map(|id| inner.subscriptions[*id].clone())
        .collect();
    let has_more = start + page.len() < newest_first.len();
    Json(
        json!({ "object": "list", "url": "/v1/subscriptions", "has_more": has_more, "data": page }),
    )
    .into_response()
}
