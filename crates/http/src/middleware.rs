//! Cross-cutting layers: request ids, problem+json for every error, metrics.

use crate::error::{Problem, PROBLEM_JSON};
use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Instant;

pub const REQUEST_ID: &str = "x-request-id";

/// Largest error body we will re-read to rewrite it; ours are tiny.
const MAX_ERROR_BODY: usize = 64 * 1024;

fn request_id_of(req: &Request) -> Option<String> {
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Every error response becomes problem+json with `request_id` and `instance`:
/// ours gain the two fields; axum's and tower's plain-text rejections (unknown
/// route, 405, 413 from the body limit, bad path parameters) are rewritten.
pub async fn problem_responses(req: Request, next: Next) -> Response {
    let request_id = request_id_of(&req);
    // A path can carry a credential (an invitation token): never echo one.
    let instance = bizcontacts_telemetry::redact(req.uri().path());
    let method = req.method().clone();
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    // The admin dashboard's error pages are HTML for a browser.
    if res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"))
    {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let is_problem = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    let bytes = axum::body::to_bytes(body, MAX_ERROR_BODY)
        .await
        .unwrap_or_default();
    let mut problem = if is_problem {
        serde_json::from_slice::<Problem>(&bytes).unwrap_or_else(|_| Problem::new(status, "error"))
    } else {
        let text = String::from_utf8_lossy(&bytes).trim().to_string();
        let detail = match status {
            StatusCode::NOT_FOUND => format!("no route for {method} {instance}"),
            StatusCode::METHOD_NOT_ALLOWED => {
                format!("method {method} is not allowed on {instance}")
            }
            StatusCode::PAYLOAD_TOO_LARGE => "request body is larger than the limit".to_string(),
            // Never echo text of an unexpected server error.
            s if s.is_server_error() => {
                "an internal error occurred; quote the request id to support".to_string()
            }
            _ if text.is_empty() => status.canonical_reason().unwrap_or("error").to_string(),
            _ => text,
        };
        Problem::new(status, detail)
    };
    problem.request_id = request_id;
    problem.instance = Some(instance);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    Response::from_parts(parts, Body::from(body))
}

/// Request count and latency by route template (never the raw path: ids would
/// explode the label set).
pub async fn http_metrics(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let started = Instant::now();
    let res = next.run(req).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", res.status().as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    res
}

/// Panics become a logged 500 problem instead of a dropped connection.
pub fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = msg, "handler panicked");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "an internal error occurred; quote the request id to support",
    )
    .into_response()
}
