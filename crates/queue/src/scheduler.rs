//! Periodic jobs from cron schedules (UTC, seconds field first).
//!
//! Every replica computes the same ticks and enqueues each with an
//! idempotency key made of the schedule's name and the tick's time, so any
//! number of schedulers produce exactly one job per tick without a leader.
//! On start, the most recent tick at or before now is enqueued too: a tick
//! missed while every scheduler was down runs once (and a tick that did run is
//! deduplicated by its key).

use crate::job::NewJob;
use crate::ledger::{Ledger, LedgerError};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sqlx::PgPool;
use std::str::FromStr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Builds the jobs of one tick (a daily job, or one per connected tenant).
pub type TickJobs = Arc<
    dyn Fn(DateTime<Utc>, PgPool) -> BoxFuture<'static, anyhow::Result<Vec<NewJob>>> + Send + Sync,
>;

#[derive(Clone)]
pub struct Schedule {
    pub name: &'static str,
    pub cron: cron::Schedule,
    pub jobs: TickJobs,
}

impl Schedule {
    pub fn new(name: &'static str, expr: &str, jobs: TickJobs) -> Result<Self, cron::error::Error> {
        Ok(Self {
            name,
            cron: cron::Schedule::from_str(expr)?,
            jobs,
        })
    }

    /// The latest tick at or before `now`, looking back at most a week.
    pub fn last_tick(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .after(&(now - chrono::Duration::days(7)))
            .take_while(|t| *t <= now)
            .take(100_000)
            .last()
    }

    pub fn next_tick(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.after(&after).next()
    }

    /// The idempotency key of a tick (prefixed by the job's own key, if any).
    pub fn tick_key(&self, tick: DateTime<Utc>, job_key: Option<&str>) -> String {
        let base = format!(
            "schedule:{}:{}",
            self.name,
            tick.format("%Y-%m-%dT%H:%M:%SZ")
        );
        match job_key {
            Some(k) => format!("{base}:{k}"),
            None => base,
        }
    }
}

/// Enqueue the jobs of one tick; returns how many were new.
pub async fn fire(
    ledger: &Ledger,
    schedule: &Schedule,
    tick: DateTime<Utc>,
) -> Result<usize, LedgerError> {
    let jobs = (schedule.jobs)(tick, ledger.pool().clone())
        .await
        .map_err(|e| LedgerError::Conflict(format!("schedule {}: {e:#}", schedule.name)))?;
    if jobs.is_empty() {
        return Ok(0);
    }
    let jobs: Vec<NewJob> = jobs
        .into_iter()
        .map(|mut j| {
            j.idempotency_key = Some(schedule.tick_key(tick, j.idempotency_key.as_deref()));
            j
        })
        .collect();
    let mut tx = ledger.pool().begin().await?;
    let (out, pending) = ledger.enqueue_many(&mut tx, jobs).await?;
    tx.commit().await?;
    ledger.push(pending).await;
    Ok(out.iter().filter(|e| e.created).count())
}

/// Catch up the latest tick of every schedule, then fire ticks as they come.
pub async fn run(ledger: Ledger, schedules: Vec<Schedule>, shutdown: CancellationToken) {
    let now = Utc::now();
    for s in &schedules {
        if let Some(tick) = s.last_tick(now) {
            match fire(&ledger, s, tick).await {
                Ok(n) if n > 0 => {
                    tracing::info!(schedule = s.name, %tick, jobs = n, "caught up a missed tick")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(schedule = s.name, error = %e, "catch-up failed"),
            }
        }
    }
    let mut last = now;
    loop {
        let next = schedules
            .iter()
            .filter_map(|s| s.next_tick(last).map(|t| (t, s)))
            .min_by_key(|(t, _)| *t);
        let Some((tick, _)) = next else {
            tracing::warn!("no schedule has a future tick; scheduler idle");
            shutdown.cancelled().await;
            return;
        };
        let wait = (tick - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        for s in schedules.iter().filter(|s| s.next_tick(last) == Some(tick)) {
            // A failed tick is retried a few times; the key keeps it single.
            for attempt in 1..=5 {
                match fire(&ledger, s, tick).await {
                    Ok(n) => {
                        tracing::info!(schedule = s.name, %tick, jobs = n, "fired");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(schedule = s.name, %tick, attempt, error = %e, "tick failed");
                        tokio::time::sleep(std::time::Duration::from_secs(attempt)).await;
                    }
                }
            }
        }
        last = tick;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop() -> TickJobs {
        Arc::new(|_, _| Box::pin(async { Ok(vec![]) }))
    }

    #[test]
    fn daily_midnight_ticks_and_keys() {
        let s = Schedule::new("quota_reset", "0 0 0 * * *", noop()).unwrap();
        let now: DateTime<Utc> = "2026-11-23T15:04:05Z".parse().unwrap();
        assert_eq!(
            s.last_tick(now).unwrap().to_rfc3339(),
            "2026-11-23T00:00:00+00:00"
        );
        assert_eq!(
            s.next_tick(now).unwrap().to_rfc3339(),
            "2026-11-24T00:00:00+00:00"
        );
        assert_eq!(
            s.tick_key(s.last_tick(now).unwrap(), None),
            "schedule:quota_reset:2026-11-23T00:00:00Z"
        );
    }
}
