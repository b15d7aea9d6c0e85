//! The job list: filters (kind, status, tenant, created between, text in
//! the last error), newest first with keyset paging, and bulk retry or
//! cancel of the selection (each job audited as the API's actions are).

use super::job::{act, Action};
use super::page::{status, time, PageError, STATUSES};
use super::session::Operator;
use crate::auth::perm;
use crate::error::ApiError;
use crate::extract::RequestId;
use crate::routes::admin_jobs::error_filter;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use bizcontacts_domain::TenantId;
use bizcontacts_queue::job::JobStatus;
use bizcontacts_queue::ledger::JobFilter;
use chrono::{DateTime, NaiveDateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

const PAGE: i64 = 50;
/// A bulk action takes at most a page's selection.
const MAX_BULK: usize = 200;

#[derive(Deserialize, Default, Clone)]
pub struct Filters {
    kind: Option<String>,
    status: Option<String>,
    tenant_id: Option<String>,
    /// `YYYY-MM-DDTHH:MM` (a datetime-local field), UTC.
    from: Option<String>,
    to: Option<String>,
    error: Option<String>,
    /// The last id of the previous page.
    before: Option<Uuid>,
    /// What the last bulk action did (shown once).
    done: Option<String>,
}

fn blank(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn when(field: &'static str, v: &Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    blank(v)
        .map(|s| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
                .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
                .map(|t| t.and_utc())
                .map_err(|_| {
                    ApiError::field(field, "must be a date and time, YYYY-MM-DDTHH:MM (UTC)")
                })
        })
        .transpose()
}

impl Filters {
    fn to_filter(&self, state: &AppState) -> Result<JobFilter, ApiError> {
        let kind = blank(&self.kind).map(str::to_string);
        if let Some(k) = &kind {
            if !state.registry.kinds().any(|known| known == k) {
                return Err(ApiError::field("kind", "is not a job kind of this build"));
            }
        }
        let status = blank(&self.status)
            .map(|s| {
                s.parse::<JobStatus>()
                    .map_err(|e| ApiError::field("status", &e))
            })
            .transpose()?;
        let tenant_id = match blank(&self.tenant_id) {
            None => None,
            Some("platform") => Some(None),
            Some(t) => Some(Some(t.parse::<TenantId>().map_err(|_| {
                ApiError::field("tenant_id", "must be a tenant id or 'platform'")
            })?)),
        };
        Ok(JobFilter {
            tenant_id,
            kind,
            status,
            created_after: when("from", &self.from)?,
            created_before: when("to", &self.to)?,
            error_contains: error_filter(self.error.clone())?,
        })
    }

    /// The query string of these filters (without paging), for links.
    fn query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("kind", &self.kind),
            ("status", &self.status),
            ("tenant_id", &self.tenant_id),
            ("from", &self.from),
            ("to", &self.to),
            ("error", &self.error),
        ] {
            if let Some(v) = blank(v) {
                q.append_pair(k, v);
            }
        }
        q.finish()
    }
}

pub async fn page(
    State(state): State<AppState>,
    op: Operator,
    Query(f): Query<Filters>,
) -> Result<Markup, PageError> {
    let filter = f.to_filter(&state)?;
    let mut jobs = state.ledger.list(&filter, f.before, PAGE + 1).await?;
    let more = jobs.len() as i64 > PAGE;
    jobs.truncate(PAGE as usize);
    let kinds: Vec<&str> = state.registry.kinds().collect();
    let selected = |v: &Option<String>, x: &str| blank(v) == Some(x);
    let body = html! {
        form.filters method="get" action="/admin/jobs" {
            label { "Kind" select name="kind" { option value="" { "any" }
                @for k in &kinds { option value=(k) selected[selected(&f.kind, k)] { (k) } } } }
            label { "Status" select name="status" { option value="" { "any" }
                @for s in STATUSES { option value=(s) selected[selected(&f.status, s)] { (s) } } } }
            label { "Tenant" input type="text" name="tenant_id" placeholder="tenant id or platform"
                value=(f.tenant_id.clone().unwrap_or_default()); }
            label { "Created from (UTC)" input type="datetime-local" name="from" value=(f.from.clone().unwrap_or_default()); }
            label { "to" input type="datetime-local" name="to" value=(f.to.clone().unwrap_or_default()); }
            label { "Error contains" input type="search" name="error" value=(f.error.clone().unwrap_or_default()); }
            button type="submit" { "Filter" }
            a href="/admin/jobs" { "Clear" }
        }
        @if let Some(done) = blank(&f.done) { p.notice { (done) } }
        form #bulk method="post" action={ "/admin/jobs/bulk?" (f.query()) } {
            input type="hidden" name="csrf" value=(op.csrf);
            @if op.can_operate() {
                div.bulk {
                    "Selected: "
                    button type="submit" name="action" value="retry" { "Retry" }
                    button type="submit" name="action" value="cancel" { "Cancel" }
                }
            }
            table.grid.jobs {
                thead { tr {
                    th { @if op.can_operate() { input type="checkbox" #select-all title="select all"; } }
                    th { "job" } th { "kind" } th { "status" } th { "tenant" } th.num { "attempts" }
                    th { "created" } th { "last error" }
                } }
                tbody {
                    @for j in &jobs { tr {
                        td { @if op.can_operate() { input type="checkbox" name="id" value=(j.id); } }
                        td { a href={ "/admin/jobs/" (j.id) } { (j.id.to_string()[..8]) "…" } }
                        td { (j.kind) }
                        td { (status(j.status.as_str())) }
                        td { @match j.tenant_id { Some(t) => { a href={ "/admin/jobs?tenant_id=" (t.0) } { (t.0.to_string()[..8]) "…" } }, None => { "platform" } } }
                        td.num { (j.attempts) "/" (j.max_attempts) }
                        td { (time(j.created_at)) }
                        td.error { (j.last_error.as_deref().map(|e| e.chars().take(120).collect::<String>()).unwrap_or_default()) }
                    } }
                }
            }
        }
        @if jobs.is_empty() { p.empty { "No job matches." } }
        @if more {
            @if let Some(last) = jobs.last() {
                p.paging { a href={ "/admin/jobs?" (f.query()) "&before=" (last.id) } { "Older jobs →" } }
            }
        }
    };
    Ok(super::page::shell(&op, "Jobs", "/admin/jobs", body))
}

/// The bulk form: `csrf`, `action` (retry or cancel) and repeated `id`s.
pub async fn bulk(
    State(state): State<AppState>,
    op: Operator<perm::AdminOperate>,
    RequestId(request_id): RequestId,
    Query(f): Query<Filters>,
    body: Bytes,
) -> Result<Response, PageError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let one = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    op.check_csrf(one("csrf"))?;
    let action = match one("action") {
        Some("retry") => Action::Retry,
        Some("cancel") => Action::Cancel,
        _ => return Err(ApiError::field("action", "must be retry or cancel").into()),
    };
    let ids = pairs
        .iter()
        .filter(|(k, _)| k == "id")
        .map(|(_, v)| {
            v.parse::<Uuid>()
                .map_err(|_| ApiError::field("id", "must be job ids"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() || ids.len() > MAX_BULK {
        return Err(ApiError::field("id", "select 1 to 200 jobs").into());
    }
    let (mut ok, mut refused) = (0, 0);
    for id in ids {
        // One job's conflict (already finished, say) does not stop the rest.
        match act(&state, &op, request_id.as_deref(), id, action).await {
            Ok(()) => ok += 1,
            Err(PageError(ApiError::Conflict(_) | ApiError::NotFound(_))) => refused += 1,
            Err(e) => return Err(e),
        }
    }
    let done = format!(
        "{} {ok} job(s); {refused} could not be (finished, or no longer there).",
        action.past()
    );
    let mut q = f.query();
    if !q.is_empty() {
        q.push('&');
    }
    let back = format!(
        "/admin/jobs?{q}{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("done", &done)
            .finish()
    );
    Ok(Redirect::to(&back).into_response())
}
