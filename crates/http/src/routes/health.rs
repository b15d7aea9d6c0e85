//! Liveness, readiness and metrics.

use crate::error::Problem;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    status: &'static str,
    /// Per dependency: "ok" or what is wrong.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    checks: BTreeMap<&'static str, String>,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        checks: BTreeMap::new(),
    })
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

async fn check<E: std::fmt::Display>(
    fut: impl std::future::Future<Output = Result<bool, E>>,
) -> String {
    match tokio::time::timeout(CHECK_TIMEOUT, fut).await {
        Ok(Ok(true)) => "ok".into(),
        Ok(Ok(false)) => "pending migrations".into(),
        // Errors are logged, not returned: they can name hosts and users.
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            "unreachable".into()
        }
        Err(_) => "timed out".into(),
    }
}

/// Postgres and Redis reachable and migrations applied; 503 otherwise.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = Problem)))]
async fn readyz(State(state): State<AppState>) -> Response {
    let (postgres, migrations, redis) = tokio::join!(
        check(async { state.store.ping().await.map(|_| true) }),
        check(state.store.migrations_current()),
        check(async { state.redis.ping().await.map(|_| true) }),
    );
    let checks = BTreeMap::from([
        ("postgres", postgres),
        ("migrations", migrations),
        ("redis", redis),
    ]);
    if checks.values().all(|v| v == "ok") {
        return Json(Health {
            status: "ready",
            checks,
        })
        .into_response();
    }
    let detail = checks
        .iter()
        .filter(|(_, v)| *v != "ok")
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("not ready: {detail}"),
    )
    .into_response()
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, content_type = "text/plain")))]
pub(crate) async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        bizcontacts_telemetry::prometheus().render(),
    )
}
