//! Prometheus metrics of the job platform, named in one place.

use crate::job::JobMessage;
use std::time::Duration;

pub(crate) fn pushed(messages: &[(String, JobMessage)]) {
    for (kind, _) in messages {
        metrics::counter!("jobs_enqueued_total", "kind" => kind.clone()).increment(1);
    }
}

pub(crate) fn deferred(kind: &str) {
    metrics::counter!("jobs_deferred_total", "kind" => kind.to_string()).increment(1);
}

pub(crate) fn started(kind: &str, waited: Duration) {
    metrics::counter!("jobs_started_total", "kind" => kind.to_string()).increment(1);
    metrics::histogram!("job_enqueue_to_start_seconds", "kind" => kind.to_string())
        .record(waited.as_secs_f64());
}

pub(crate) fn ran(kind: &str, took: Duration) {
    metrics::histogram!("job_duration_seconds", "kind" => kind.to_string())
        .record(took.as_secs_f64());
}

/// `status` is the ledger status after the run: succeeded, failed, dead,
/// cancelled, or queued (a retry).
pub(crate) fn finished(kind: &str, status: &str) {
    let name = match status {
        "succeeded" => "jobs_succeeded_total",
        "failed" => "jobs_failed_total",
        "dead" => "jobs_dead_total",
        "cancelled" => "jobs_cancelled_total",
        _ => "jobs_retried_total",
    };
    metrics::counter!(name, "kind" => kind.to_string()).increment(1);
}

pub(crate) fn lease_expired(kind: &str) {
    metrics::counter!("job_lease_expiries_total", "kind" => kind.to_string()).increment(1);
}

pub(crate) fn queue_depth(kind: &str, depth: u64) {
    metrics::gauge!("job_queue_depth", "kind" => kind.to_string()).set(depth as f64);
}
