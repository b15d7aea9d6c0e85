//! The overview: jobs per kind and status, Redis depth beside the ledger's
//! queued count, throughput and failures per kind (last hour and day),
//! enqueue-to-start latency, running jobs per tenant against their limit,
//! deferred jobs and why they wait. `/admin/live` is the same section alone,
//! which the page's script fetches every few seconds.

use super::chart;
use super::page::{shell, PageError, STATUSES};
use super::session::Operator;
use crate::state::AppState;
use axum::extract::State;
use bizcontacts_queue::monitor::{self, Bucket};
use chrono::{Duration, Utc};
use maud::{html, Markup};

pub async fn page(State(state): State<AppState>, op: Operator) -> Result<Markup, PageError> {
    let live = section(&state).await?;
    Ok(shell(
        &op,
        "Overview",
        "/admin",
        html! { div #live data-refresh="/admin/live" { (live) } },
    ))
}

pub async fn live(State(state): State<AppState>, _op: Operator) -> Result<Markup, PageError> {
    section(&state).await
}

fn of<'a>(all: &'a [Bucket], kind: &str) -> Vec<&'a Bucket> {
    all.iter().filter(|b| b.kind == kind).collect()
}

async fn section(state: &AppState) -> Result<Markup, PageError> {
    let pool = &state.store.pool;
    let kinds: Vec<&'static str> = state.registry.kinds().collect();
    let stats = state.ledger.stats(&kinds).await?;
    let hour = monitor::buckets(pool, 3600, 300).await?;
    let day = monitor::buckets(pool, 86_400, 3600).await?;
    let (p50, p99, started) = monitor::latency(pool, 3600).await?;
    let load = monitor::running_per_tenant(pool).await?;
    let (waiting, waiting_total) = monitor::deferred(pool, 20).await?;
    let now = Utc::now();
    Ok(html! {
        p.updated { "Updated " (now.format("%H:%M:%S")) " UTC" }
        section.cards {
            div.card { h3 { "Last hour" } p.big { (stats.last_hour.succeeded) " ok · " (stats.last_hour.failed) " failed" }
                p { (format!("{:.2}", stats.last_hour.throughput_per_sec)) " jobs/s · failure rate "
                    (format!("{:.1} %", stats.last_hour.failure_rate * 100.0)) } }
            div.card { h3 { "Last day" } p.big { (stats.last_day.succeeded) " ok · " (stats.last_day.failed) " failed" }
                p { (format!("{:.3}", stats.last_day.throughput_per_sec)) " jobs/s · failure rate "
                    (format!("{:.1} %", stats.last_day.failure_rate * 100.0)) } }
            div.card { h3 { "Enqueue to start (last hour)" }
                p.big { "p50 " (format!("{p50:.2}")) " s · p99 " (format!("{p99:.2}")) " s" }
                p { (started) " jobs started and finished" } }
        }
        h2 { "Jobs per kind" }
        table.grid {
            thead { tr {
                th { "kind" }
                @for s in STATUSES { th.num { (s) } }
                th.num title="tasks waiting in Redis" { "in Redis" }
                th { "last hour (5 min bars)" } th { "last day (hourly bars)" }
            } }
            tbody {
                @for kind in &kinds {
                    @let counts = stats.counts.get(*kind);
                    @let n = |s: &str| counts.and_then(|c| c.get(s)).copied().unwrap_or(0);
                    @let depth = stats.queue_depth.get(*kind).copied().unwrap_or(0);
                    tr {
                        td { a href={ "/admin/jobs?kind=" (kind) } { (kind) } }
                        @for s in STATUSES {
                            td.num { @if n(s) > 0 { a href={ "/admin/jobs?kind=" (kind) "&status=" (s) } { (n(s)) } } @else { "0" } }
                        }
                        td.num class=[(depth as i64 != n("queued")).then_some("gap")]
                            title="the relay re-pushes queued jobs Redis lost, and Redis keeps deliveries of jobs that were cancelled or already ran" {
                            (depth) @if depth as i64 != n("queued") { " ≠ " (n("queued")) }
                        }
                        td { (chart::bars(&of(&hour, kind), Duration::minutes(5), 12, now)) }
                        td { (chart::bars(&of(&day, kind), Duration::hours(1), 24, now)) }
                    }
                }
            }
        }
        h2 { "Running per tenant" }
        @if load.is_empty() { p.empty { "No tenant has a job running." } } @else {
            table.grid { thead { tr { th { "tenant" } th.num { "running" } th.num { "limit" } th { "" } } }
                tbody { @for t in &load { tr {
                    td { a href={ "/admin/jobs?tenant_id=" (t.tenant_id) } { (t.name) } }
                    td.num { (t.running) } td.num { (t.limit) }
                    td { meter min="0" max=(t.limit.max(1)) value=(t.running) {} }
                } } } }
        }
        h2 { "Deferred (" (waiting_total) ")" }
        @if waiting.is_empty() { p.empty { "No job is waiting for its tenant's room." } } @else {
            table.grid { thead { tr { th { "job" } th { "kind" } th { "tenant" } th { "why it waits" } th { "created" } } }
                tbody { @for w in &waiting { tr {
                    td { a href={ "/admin/jobs/" (w.id) } { (w.id.to_string()[..8]) "…" } }
                    td { (w.kind) }
                    td { @if let Some(t) = w.tenant_id { a href={ "/admin/jobs?tenant_id=" (t) } { (t.to_string()[..8]) "…" } } @else { "platform" } }
                    td { (w.reason.as_deref().unwrap_or("")) }
                    td { (super::page::time(w.created_at)) }
                } } } }
        }
    })
}
