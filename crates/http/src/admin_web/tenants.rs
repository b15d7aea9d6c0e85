//! Tenants: package, today's usage against its limits, suspension, and a
//! link to their jobs. Paged by id (the primary key).

use super::page::{maybe_time, status, PageError};
use super::session::Operator;
use crate::state::AppState;
use axum::extract::{Query, State};
use bizcontacts_domain::TenantId;
use bizcontacts_store::{packages, tenants, usage};
use chrono::Utc;
use maud::{html, Markup};
use std::collections::HashMap;

const PAGE: i64 = 50;

#[derive(serde::Deserialize)]
pub struct Paging {
    after: Option<uuid::Uuid>,
}

fn used(n: i32, max: i32) -> Markup {
    html! { span class=[(n >= max).then_some("at-limit")] { (n) " / " (max) } }
}

pub async fn page(
    State(state): State<AppState>,
    op: Operator,
    Query(p): Query<Paging>,
) -> Result<Markup, PageError> {
    let pool = &state.store.pool;
    let mut list = tenants::list(pool, p.after.map(TenantId), PAGE + 1).await?;
    let more = list.len() as i64 > PAGE;
    list.truncate(PAGE as usize);
    let ids: Vec<TenantId> = list.iter().map(|t| t.id).collect();
    let today = usage::get_many(pool, &ids, Utc::now().date_naive()).await?;
    let mut limits = HashMap::new();
    for t in &list {
        if let std::collections::hash_map::Entry::Vacant(e) = limits.entry(t.package) {
            e.insert(packages::get(pool, t.package).await?);
        }
    }
    let body = html! {
        table.grid { thead { tr { th { "tenant" } th { "package" } th { "state" } th.num { "searches today" }
                th.num { "jobs today" } th.num { "import rows today" } th.num { "jobs at once" } th { "" } } }
            tbody { @for t in &list {
                @let u = today.get(&t.id).cloned().unwrap_or_default();
                @let l = &limits[&t.package];
                tr {
                    td { (t.name) br; small { (t.id.0) } }
                    td { (t.package.as_str()) }
                    td { (status(t.status.as_str()))
                         @if let Some(r) = &t.suspended_reason { br; small { (r) " since " (maybe_time(t.suspended_at)) } } }
                    td.num { (used(u.searches, l.searches_per_day)) }
                    td.num { (used(u.jobs, l.jobs_per_day)) }
                    td.num { (used(u.import_rows, l.import_rows_per_day)) }
                    td.num { (l.concurrent_jobs) }
                    td { a href={ "/admin/jobs?tenant_id=" (t.id.0) } { "jobs" } }
                }
            } } }
        @if more { @if let Some(last) = list.last() {
            p.paging { a href={ "/admin/tenants?after=" (last.id.0) } { "More tenants →" } } } }
    };
    Ok(super::page::shell(&op, "Tenants", "/admin/tenants", body))
}
