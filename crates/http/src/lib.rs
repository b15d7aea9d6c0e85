//! The HTTP intake of Business Contacts.
//!
//! Thin by design: authenticate, validate, record, enqueue. Where to look:
//! - [`auth`]: the extractors that enforce the role/permission matrix
//!   (`TenantScope<P>`, `SystemScope<P>`); handlers cannot skip them.
//! - [`error`]: `ApiError`, the one error type, rendered as problem+json.
//! - [`routes`]: one module per resource, each with its own `router()`.
//! - [`app`]: assembles routes, layers and the OpenAPI document; [`serve`]
//!   runs it until a shutdown token fires.

pub mod admin_web;
pub mod auth;
mod enqueue;
pub mod error;
pub mod extract;
mod idempotency;
pub mod identity;
pub mod json_rows;
pub mod middleware;
mod openapi;
pub mod pagination;
pub mod reference;
pub mod routes;
pub mod state;
pub mod throttle;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use state::AppState;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use state::{AppState as State, Inner as StateInner};

#[derive(OpenApi)]
#[openapi(
    info(title = "Business Contacts API", description = "Search a governed corpus of business contacts, stage imports for review, push approved leads to HighLevel."),
    modifiers(&BearerAuth),
    tags((name = "identity"), (name = "usage"), (name = "imports"), (name = "jobs"), (name = "admin"), (name = "operations"))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A session token from /v1/auth/login, or an API key"))
                    .build(),
            ),
        );
    }
}

/// Routes plus the OpenAPI document generated from them: those with JSON
/// bodies, and the upload routes, whose bodies may be far larger.
pub fn api() -> (
    Router<AppState>,
    Router<AppState>,
    Router<AppState>,
    utoipa::openapi::OpenApi,
) {
    let (json, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::router())
        .split_for_parts();
    let (uploads, upload_doc) = routes::imports::upload_router().split_for_parts();
    openapi.merge(upload_doc);
    let (api_imports, api_import_doc) = routes::imports::api_import_router().split_for_parts();
    openapi.merge(api_import_doc);
    // After the merges: the routes' operations exist only now.
    utoipa::Modify::modify(&openapi::TruthfulErrors, &mut openapi);
    (json, uploads, api_imports, openapi)
}

/// The whole application: routes, `/openapi.json`, and the layers every
/// request passes through (outermost first: request id, trace span, problem
/// rendering, metrics, panic catching, body limit).
pub fn app(state: AppState) -> Router {
    // Install the recorder before the first request records anything.
    bizcontacts_telemetry::prometheus();
    let (json, uploads, api_imports, openapi) = api();
    let openapi = std::sync::Arc::new(openapi);
    let request_id = HeaderName::from_static(middleware::REQUEST_ID);
    // Uploads stream to a spool file and count their own bytes;
    // DefaultBodyLimit bounds the multipart extractor on the same route. An
    // API import is parsed in memory, so its limit is far lower.
    let uploads = uploads.layer(DefaultBodyLimit::max(state.upload_limit));
    let api_imports = api_imports.layer(DefaultBodyLimit::max(state.api_import_body_limit));
    json.route("/openapi.json", get(move || async move { Json(openapi.as_ref().clone()) }))
        .fallback(|| async { StatusCode::NOT_FOUND.into_response() })
        .layer(RequestBodyLimitLayer::new(state.json_body_limit))
        .merge(uploads)
        .merge(api_imports)
        .merge(admin_web::router())
        // Inside the problem layer, so a 408's body is a problem too; every
        // body, JSON or upload, ends once its client goes quiet.
        .layer(RequestBodyTimeoutLayer::new(state.body_idle_timeout))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(axum::middleware::from_fn(middleware::http_metrics))
        .layer(axum::middleware::from_fn(middleware::problem_responses))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &axum::http::Request<_>| {
                    let id = req
                        .headers()
                        .get(middleware::REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    // The path, never the query string: it may carry cursors or worse.
                    tracing::info_span!("request", request_id = %id, method = %req.method(),
                        path = %req.uri().path(), tenant_id = tracing::field::Empty, user_id = tracing::field::Empty)
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// The small HTTP surface of worker and scheduler processes: `/healthz` and
/// `/metrics` (their job metrics live in their own process).
pub fn ops_app() -> Router {
    bizcontacts_telemetry::prometheus();
    Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/metrics", get(routes::health::metrics))
}

/// Serve until `shutdown` fires, then let in-flight requests finish for up to
/// `grace`.
///
/// Our own accept loop instead of `axum::serve`: it bounds how long a
/// connection may take to send its request headers (a slowloris otherwise
/// holds a socket forever), and hands every request its client address
/// (`ConnectInfo<SocketAddr>`), which sign-in throttling keys on.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use tower::Service;

    let header_timeout = state.header_read_timeout;
    let app = app(state);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let app = app.clone();
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                app.clone().call(req.map(axum::body::Body::new))
            });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // Client resets and timeouts end connections; nothing to report.
            let _ = conn.await;
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => {
            tracing::warn!("shutdown grace period over; dropping remaining connections");
        }
    }
    Ok(())
}

/// Serve any router until `shutdown` (no grace period: for ops endpoints).
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
