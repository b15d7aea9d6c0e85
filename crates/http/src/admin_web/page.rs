//! The dashboard's shell, response headers, error pages and formatting.

use super::session::Operator;
use crate::error::ApiError;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

/// Scripts and styles from this origin only (no inline script, no CDN);
/// forms post only here; no framing. Set on every `/admin` response.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub async fn headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        // Pages show live state and carry the CSRF token: never cached.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

const NAV: [(&str, &str); 5] = [
    ("/admin", "Overview"),
    ("/admin/jobs", "Jobs"),
    ("/admin/workers", "Workers"),
    ("/admin/schedules", "Schedules"),
    ("/admin/tenants", "Tenants"),
];

/// Job statuses in the order a job moves through them.
pub const STATUSES: [&str; 7] = [
    "queued",
    "deferred",
    "running",
    "succeeded",
    "failed",
    "dead",
    "cancelled",
];

fn head(title: &str, script: bool) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Business Contacts admin" }
            link rel="stylesheet" href="/admin/assets/admin.css";
            @if script { script src="/admin/assets/admin.js" defer {} }
        }
    }
}

/// A full page: navigation, who is signed in, a sign-out form, the body.
pub fn shell(op: &Operator, title: &str, active: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, true))
            body {
                header.top {
                    span.brand { "Business Contacts · admin" }
                    nav {
                        @for (href, label) in NAV {
                            a href=(href) class=[(href == active).then_some("active")] { (label) }
                        }
                    }
                    form.signout method="post" action="/admin/logout" {
                        input type="hidden" name="csrf" value=(op.csrf);
                        span.who { (op.email) " (" (op.role_label()) ")" }
                        button type="submit" { "Sign out" }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// A page outside the signed-in shell (sign-in, errors).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, false))
            body.bare { main { h1 { (title) } (body) } }
        }
    }
}

/// What a page handler fails with: an HTML page with the right status, or
/// the sign-in page when there is no valid session.
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e)
    }
}

impl From<sqlx::Error> for PageError {
    fn from(e: sqlx::Error) -> Self {
        PageError(e.into())
    }
}

impl From<bizcontacts_store::StoreError> for PageError {
    fn from(e: bizcontacts_store::StoreError) -> Self {
        PageError(e.into())
    }
}

impl From<bizcontacts_queue::ledger::LedgerError> for PageError {
    fn from(e: bizcontacts_queue::ledger::LedgerError) -> Self {
        PageError(crate::enqueue::ledger_error(e))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            ApiError::Unauthorized(_) => return Redirect::to("/admin/login").into_response(),
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let retry_after = match &self.0 {
            ApiError::Throttled { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        let detail = if status == StatusCode::INTERNAL_SERVER_ERROR {
            // Logged by the API error's own rendering; never echoed.
            let _ = self.0.into_response();
            "An internal error occurred; the request id is in the response headers.".to_string()
        } else {
            match &self.0 {
                ApiError::Validation(errors) => errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.reason))
                    .collect::<Vec<_>>()
                    .join("; "),
                other => other.to_string(),
            }
        };
        let title = status.canonical_reason().unwrap_or("Error");
        let body = bare(
            title,
            html! { p.error { (detail) } p { a href="/admin" { "Back to the dashboard" } } },
        );
        let mut res = (status, body).into_response();
        if let Some(secs) = retry_after {
            // Sign-in back-off: the browser's user sees the wait, a script its header.
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        res
    }
}

pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

pub fn maybe_time(t: Option<DateTime<Utc>>) -> String {
    t.map(time).unwrap_or_else(|| "–".into())
}

/// "3 s ago", "5 min ago": how fresh a heartbeat or tick is.
pub fn ago(t: DateTime<Utc>) -> String {
    let secs = (Utc::now() - t).num_seconds();
    match secs {
        s if s < 0 => "just now".into(),
        s if s < 120 => format!("{s} s ago"),
        s if s < 7200 => format!("{} min ago", s / 60),
        s if s < 172_800 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

/// A status as a coloured label.
pub fn status(s: &str) -> Markup {
    html! { span class={ "status status-" (s) } { (s) } }
}
