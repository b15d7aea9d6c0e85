//! Today's usage against the package's limits.

use crate::auth::{perm, TenantScope};
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use bizcontacts_domain::PackageLimits;
use bizcontacts_store::usage;
use chrono::{NaiveDate, Utc};
use serde::Serialize;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_usage))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Counter {
    used: i32,
    limit: i32,
    remaining: i32,
}

impl Counter {
    fn new(used: i32, limit: i32) -> Self {
        Counter {
            used,
            limit,
            remaining: (limit - used).max(0),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Usage {
    /// The UTC day these counters belong to.
    day: NaiveDate,
    searches: Counter,
    jobs: Counter,
    import_rows: Counter,
    limits: PackageLimits,
}

/// Today's counters (UTC) and the package limits.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/usage", tag = "usage", security(("bearer" = [])),
    params(("tenant_id" = uuid::Uuid, Path)),
    responses((status = 200, body = Usage), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn get_usage(
    State(state): State<AppState>,
    scope: TenantScope<perm::UsageRead>,
) -> Result<Json<Usage>, ApiError> {
    let day = Utc::now().date_naive();
    let db = &state.store.pool;
    let used = usage::get(db, scope.tenant_id(), day).await?;
    let limits = scope.limits.clone();
    Ok(Json(Usage {
        day,
        searches: Counter::new(used.searches, limits.searches_per_day),
        jobs: Counter::new(used.jobs, limits.jobs_per_day),
        import_rows: Counter::new(used.import_rows, limits.import_rows_per_day),
        limits,
    }))
}
