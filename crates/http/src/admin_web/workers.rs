//! Worker processes: live ones, and those that stopped or were lost
//! (heartbeat stale: killed, or cut off) in the last day.

use super::page::{ago, maybe_time, status, time, PageError};
use super::session::Operator;
use crate::state::AppState;
use axum::extract::State;
use bizcontacts_queue::presence;
use maud::{html, Markup};

pub async fn page(State(state): State<AppState>, op: Operator) -> Result<Markup, PageError> {
    let workers = presence::list(&state.store.pool, state.worker_heartbeat).await?;
    let body = html! {
        @if workers.is_empty() { p.empty { "No worker has run in the last day." } } @else {
        table.grid.workers { thead { tr { th { "state" } th { "host" } th.num { "pid" } th { "kinds (concurrency)" }
                th.num { "in flight" } th { "started" } th { "last heartbeat" } th { "stopped" } } }
            tbody { @for w in &workers { tr {
                td { (status(&w.state)) }
                td { (w.host) br; small { (w.id) } }
                td.num { (w.pid) }
                td { @if let Some(kinds) = w.kinds.as_object() {
                        @for (k, n) in kinds { span.kind { (k) " ×" (n) } " " } } }
                td.num { (w.in_flight) }
                td { (time(w.started_at)) }
                td { (ago(w.heartbeat_at)) }
                td { (maybe_time(w.stopped_at)) }
            } } } }
        }
    };
    Ok(super::page::shell(&op, "Workers", "/admin/workers", body))
}
