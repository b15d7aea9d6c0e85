//! One job: params (secrets never enter them: handlers read those from
//! their encrypted stores), progress, the timeline, each run with its
//! worker and error (failed ones from `job_runs`, the running or succeeded
//! one from the job's row), the batch or CRM connection it belongs to; retry and
//! cancel for platform admins.

use super::page::{maybe_time, status, time, PageError};
use super::session::Operator;
use crate::auth::perm;
use crate::extract::RequestId;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use bizcontacts_queue::monitor;
use bizcontacts_store::audit;
use maud::{html, Markup};
use serde_json::json;
use uuid::Uuid;

#[derive(Clone, Copy)]
pub enum Action {
    Retry,
    Cancel,
}

impl Action {
    pub fn past(self) -> &'static str {
        match self {
            Action::Retry => "Retried",
            Action::Cancel => "Cancelled",
        }
    }
}

/// Retry or cancel one job through the ledger, audited as the API does.
pub async fn act<P>(
    state: &AppState,
    op: &Operator<P>,
    request_id: Option<&str>,
    id: Uuid,
    action: Action,
) -> Result<(), PageError> {
    let (job, event) = match action {
        Action::Retry => (state.ledger.retry(id).await?, "job.retried"),
        Action::Cancel => (state.ledger.cancel(None, id).await?, "job.cancelled"),
    };
    audit::record(
        &state.store.pool,
        op.principal.event(
            job.tenant_id,
            event,
            ("job", id.to_string()),
            json!({ "kind": job.kind, "via": "admin dashboard" }),
            request_id,
        ),
    )
    .await?;
    Ok(())
}

pub async fn page(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<Uuid>,
) -> Result<Markup, PageError> {
    let pool = &state.store.pool;
    let job = state.ledger.get(None, id).await?;
    let runs = monitor::runs(pool, id).await?;
    let pushed_at = monitor::pushed_at(pool, id).await?;
    let import_id = job
        .params
        .get("import_id")
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse::<Uuid>().ok());
    let crm = match (job.kind.starts_with("crm_"), job.tenant_id) {
        (true, Some(t)) => monitor::crm_connection(pool, t.0).await?,
        _ => None,
    };
    let params = serde_json::to_string_pretty(&job.params).unwrap_or_default();
    let current = matches!(job.status.as_str(), "running" | "succeeded");
    let terminal = matches!(
        job.status.as_str(),
        "succeeded" | "failed" | "dead" | "cancelled"
    );
    let body = html! {
        dl.facts {
            dt { "Kind" } dd { (job.kind) }
            dt { "Status" } dd { (status(job.status.as_str()))
                @if job.cancel_requested && !terminal { " (cancel requested)" } }
            dt { "Tenant" } dd { @match job.tenant_id {
                Some(t) => { a href={ "/admin/jobs?tenant_id=" (t.0) } { (t.0) } },
                None => { "platform" } } }
            dt { "Attempts" } dd { (job.attempts) " of " (job.max_attempts) }
            dt { "Progress" } dd { (job.progress_done) @if let Some(t) = job.progress_total { " / " (t) }
                @if let Some(m) = &job.progress_message { " — " (m) } }
            @if let Some(w) = &job.waiting_reason { dt { "Waiting" } dd { (w) } }
            @if let Some(e) = &job.last_error { dt { "Last error" } dd.error { (e) } }
            @if let Some(i) = import_id { dt { "Import batch" } dd { code { (i) } } }
            @if let Some((c, location)) = &crm { dt { "CRM connection" } dd { code { (c) } " (location " (location) ")" } }
            dt { "Worker" } dd { (job.worker_id.as_deref().unwrap_or("–")) }
        }
        @if op.can_operate() {
            div.actions {
                // What `Ledger::retry` takes: a failed or dead job.
                @if matches!(job.status.as_str(), "failed" | "dead") {
                    form method="post" action={ "/admin/jobs/" (id) "/retry" } {
                        input type="hidden" name="csrf" value=(op.csrf);
                        button #retry type="submit" { "Retry" }
                    }
                }
                @if !terminal {
                    form method="post" action={ "/admin/jobs/" (id) "/cancel" } {
                        input type="hidden" name="csrf" value=(op.csrf);
                        button #cancel type="submit" { "Cancel" }
                    }
                }
            }
        }
        h2 { "Timeline" }
        table.grid { tbody {
            tr { td { "created" } td { (time(job.created_at)) } }
            tr { td { "queued (last)" } td { (time(job.queued_at)) } }
            tr { td { "handed to Redis" } td { (maybe_time(pushed_at)) } }
            tr { td { "started (last run)" } td { (maybe_time(job.started_at)) } }
            tr { td { "last heartbeat" } td { (maybe_time(job.heartbeat_at)) } }
            tr { td { "finished" } td { (maybe_time(job.finished_at)) } }
        } }
        h2 { "Runs" }
        @if runs.is_empty() && !current { p.empty { "No run yet." } } @else {
            table.grid.runs { thead { tr { th.num { "attempt" } th { "worker" } th { "started" } th { "ended" } th { "outcome" } th { "error" } } }
                tbody {
                    @for r in &runs { tr {
                        td.num { (r.attempt) } td { (r.worker_id.as_deref().unwrap_or("–")) }
                        td { (maybe_time(r.started_at)) } td { (time(r.ended_at)) }
                        td { (status(&r.outcome)) @if let Some(n) = &r.note { br; small { (n) } } }
                        td.error { (r.error.as_deref().unwrap_or("")) }
                    } }
                    // The running or succeeded run is the job's own row.
                    @if current { tr {
                        td.num { (job.attempts) } td { (job.worker_id.as_deref().unwrap_or("–")) }
                        td { (maybe_time(job.started_at)) } td { (maybe_time(job.finished_at)) }
                        td { (status(job.status.as_str())) } td {}
                    } }
                } }
        }
        h2 { "Params" }
        pre.params { (params) }
    };
    Ok(super::page::shell(
        &op,
        &format!("Job {}", &id.to_string()[..8]),
        "/admin/jobs",
        body,
    ))
}

/// `POST /admin/jobs/{id}/retry` and `.../cancel`: the form carries the CSRF token.
pub async fn one(
    State(state): State<AppState>,
    op: Operator<perm::AdminOperate>,
    RequestId(request_id): RequestId,
    Path((id, action)): Path<(Uuid, String)>,
    body: Bytes,
) -> Result<Response, PageError> {
    let action = match action.as_str() {
        "retry" => Action::Retry,
        "cancel" => Action::Cancel,
        _ => return Err(crate::error::ApiError::NotFound("action").into()),
    };
    let csrf = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned());
    op.check_csrf(csrf.as_deref())?;
    act(&state, &op, request_id.as_deref(), id, action).await?;
    Ok(Redirect::to(&format!("/admin/jobs/{id}")).into_response())
}
