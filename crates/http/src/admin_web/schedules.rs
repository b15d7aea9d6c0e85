//! Each cron schedule: its expression, last tick and the jobs it made, next tick.

use super::page::{maybe_time, status, PageError};
use super::session::Operator;
use crate::routes::admin_schedules::views;
use crate::state::AppState;
use axum::extract::State;
use maud::{html, Markup};

pub async fn page(State(state): State<AppState>, op: Operator) -> Result<Markup, PageError> {
    let schedules = views(&state).await?;
    let body = html! {
        table.grid { thead { tr { th { "schedule" } th { "cron (UTC; with seconds)" } th { "last tick" } th { "its jobs" } th { "next tick" } } }
            tbody { @for s in &schedules { tr {
                td { a href={ "/admin/jobs?kind=" (s.name) } { (s.name) } }
                td { code { (s.cron) } }
                td { (maybe_time(s.last_tick)) }
                td { @if s.last_tick_jobs.is_empty() { "none" }
                     @for (st, n) in &s.last_tick_jobs { (status(st)) " " (n) " " } }
                td { (maybe_time(s.next_tick)) }
            } } } }
    };
    Ok(super::page::shell(
        &op,
        "Schedules",
        "/admin/schedules",
        body,
    ))
}
