//! The admin dashboard, served under `/admin` for the system roles
//! (`platform_admin` acts, `support` reads; tenant users and API keys get
//! nothing). Server-rendered HTML ([`maud`]), every asset in the binary.
//!
//! - [`session`]: sign-in with email and password into a session cookie
//!   (`HttpOnly`, `SameSite=Strict`, `Secure` in production), the
//!   [`session::Operator`] extractor and the CSRF token every form carries.
//! - [`page`]: the shell (navigation, headers: a Content-Security-Policy
//!   without inline script), error pages, small formatting helpers.
//! - [`overview`] (with [`chart`], server-drawn SVG), [`jobs`], [`job`],
//!   [`workers`], [`schedules`], [`tenants`]: one file per page.
//! - `assets/`: the stylesheet and the one script (live refresh of the
//!   overview, "select all" on the job list).
//!
//! The pages read what the JSON admin API reads (`bizcontacts_queue::ledger`,
//! `::monitor`, `::presence`); actions go through the same ledger calls and
//! are audited the same way.

mod chart;
mod job;
mod jobs;
mod overview;
mod page;
mod schedules;
mod session;
mod tenants;
mod workers;

use crate::state::AppState;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

pub use session::COOKIE;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(overview::page))
        .route("/admin/live", get(overview::live))
        .route("/admin/login", get(session::form).post(session::submit))
        .route("/admin/logout", post(session::logout))
        .route("/admin/jobs", get(jobs::page))
        .route("/admin/jobs/bulk", post(jobs::bulk))
        .route("/admin/jobs/{job_id}", get(job::page))
        .route("/admin/jobs/{job_id}/{action}", post(job::one))
        .route("/admin/workers", get(workers::page))
        .route("/admin/schedules", get(schedules::page))
        .route("/admin/tenants", get(tenants::page))
        .route("/admin/assets/{file}", get(asset))
        // Forms are small (a bulk action of 200 ids is 8 KB).
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .layer(axum::middleware::from_fn(page::headers))
}

/// The stylesheet and script, compiled in (no CDN at run time).
async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> impl IntoResponse {
    let (body, kind) = match file.as_str() {
        "admin.css" => (include_str!("assets/admin.css"), "text/css; charset=utf-8"),
        "admin.js" => (
            include_str!("assets/admin.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
