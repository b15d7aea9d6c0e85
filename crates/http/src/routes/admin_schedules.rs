//! The periodic jobs as operators see them (issue 20's schedules view):
//! each schedule, its cron, its last tick and what that tick enqueued, and
//! its next tick.

use crate::auth::{perm, SystemScope};
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(schedules))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ScheduleView {
    pub(crate) name: &'static str,
    /// Seconds, minutes, hours, day of month, month, day of week (UTC).
    pub(crate) cron: String,
    pub(crate) last_tick: Option<DateTime<Utc>>,
    /// Jobs the last tick enqueued, by status (one per tenant for per-tenant
    /// schedules; none if every scheduler was down then and since).
    #[schema(value_type = Object)]
    pub(crate) last_tick_jobs: BTreeMap<String, i64>,
    pub(crate) next_tick: Option<DateTime<Utc>>,
}

/// Every schedule with its last and next tick.
#[utoipa::path(get, path = "/v1/admin/schedules", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<ScheduleView>), (status = 403, body = Problem)))]
async fn schedules(
    State(state): State<AppState>,
    _scope: SystemScope<perm::AdminMonitor>,
) -> Result<Json<Vec<ScheduleView>>, ApiError> {
    Ok(Json(views(&state).await?))
}

/// Each schedule's last tick, the jobs it enqueued and its next tick (the
/// API's and the dashboard's).
pub(crate) async fn views(state: &AppState) -> Result<Vec<ScheduleView>, ApiError> {
    let now = Utc::now();
    let mut out = Vec::new();
    for s in bizcontacts_jobs::schedules() {
        let last = s.last_tick(now);
        let mut jobs = BTreeMap::new();
        if let Some(tick) = last {
            // The repeated LIKE 'schedule:%' lets the planner use the partial
            // index `jobs_schedule_key`.
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT status, count(*) FROM jobs
                 WHERE idempotency_key LIKE 'schedule:%' AND idempotency_key LIKE $1
                 GROUP BY status",
            )
            .bind(format!("{}%", s.tick_key(tick, None).replace('_', "\\_")))
            .fetch_all(&state.store.pool)
            .await?;
            jobs.extend(rows);
        }
        out.push(ScheduleView {
            name: s.name,
            cron: s.cron.to_string(),
            last_tick: last,
            last_tick_jobs: jobs,
            next_tick: s.next_tick(now),
        });
    }
    Ok(out)
}
