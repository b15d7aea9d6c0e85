//! The worker process: one apalis worker per job kind, all sharing one claim
//! batcher, one heartbeat and one relay.
//!
//! apalis is the transport here: it fetches deliveries from Redis and runs our
//! handler with bounded concurrency. The handler always returns `Ok` to
//! apalis; the run's real outcome goes to the ledger (retry with backoff,
//! failed, dead). Worker names are unique per process (host, pid, random
//! suffix, restart count), so a restarted process never collides with the
//! name of one that crashed.

use crate::claim::{self, Batcher, Claimed, Finish};
use crate::handler::{JobContext, JobError, Registry};
use crate::job::JobMessage;
use crate::ledger::Ledger;
use crate::metrics;
use crate::presence;
use crate::relay::{self, RelaySettings};
use apalis::prelude::*;
use bizcontacts_domain::TenantId;
use futures::FutureExt;
use std::collections::{BTreeMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Per kind; others use `default_concurrency`.
    pub concurrency: BTreeMap<String, usize>,
    pub default_concurrency: usize,
    pub lease: Duration,
    pub heartbeat: Duration,
    pub poll_interval: Duration,
    pub claim_batch: usize,
    pub shutdown_timeout: Duration,
    pub relay: RelaySettings,
}

/// State shared by every handler invocation of this process.
struct Shared {
    ledger: Ledger,
    registry: Registry,
    batcher: Batcher,
    /// Runs in progress here (by run id): renewed by the heartbeat, released
    /// on shutdown.
    running: Mutex<HashSet<Uuid>>,
}

/// One kind's slice of the worker: the shared state plus the kind's own limit.
struct KindSlot {
    shared: Arc<Shared>,
    /// The kind's configured concurrency. apalis's own limit is set wider (see
    /// [`apalis_window`]); this one decides how many runs happen at once.
    permits: tokio::sync::Semaphore,
}

/// How many deliveries apalis may hold at once for a kind with `concurrency`.
///
/// In apalis 1.0 a worker whose `concurrency` limit is full can park its fetch
/// loop until its heartbeat timer fires: measured here as enqueue-to-start
/// stalls of seconds, and ~11,500 instead of ~15,000 jobs/s, when apalis's
/// limit was our limit. Keeping apalis's limit well above ours means it is
/// almost never full; deliveries beyond our limit wait on our semaphore before
/// they claim anything (the ledger still says `queued`, so nothing is promised
/// early), and the short transport heartbeat bounds what stall remains.
fn apalis_window(concurrency: usize) -> usize {
    (concurrency * 4).max(256)
}

/// A name no other live or dead worker process has used.
pub fn worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let suffix = &Uuid::new_v4().simple().to_string()[..6];
    format!("{host}-{}-{suffix}", std::process::id())
}

/// Run workers for every registered kind until `shutdown`; then stop fetching,
/// give in-flight jobs `shutdown_timeout` to finish, and release the rest.
pub async fn run(
    ledger: Ledger,
    registry: Registry,
    config: WorkerConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let id = worker_id();
    let shared = Arc::new(Shared {
        batcher: Batcher::start(ledger.clone(), id.clone(), config.lease, config.claim_batch),
        ledger: ledger.clone(),
        registry: registry.clone(),
        running: Mutex::new(HashSet::new()),
    });
    tracing::info!(worker = %id, kinds = ?registry.kinds().collect::<Vec<_>>(), "worker starting");
    let kinds: std::collections::BTreeMap<String, usize> = registry
        .kinds()
        .map(|k| {
            let n = config
                .concurrency
                .get(k)
                .copied()
                .unwrap_or(config.default_concurrency);
            (k.to_string(), n.max(1))
        })
        .collect();
    if let Err(e) = presence::register(ledger.pool(), &id, &kinds).await {
        // Presence is for operators; a worker that cannot write it still works.
        tracing::warn!(error = %e, "could not register the worker's presence");
    }

    let background = CancellationToken::new();
    let heartbeat = tokio::spawn(heartbeat_loop(
        shared.clone(),
        id.clone(),
        config.lease,
        config.heartbeat,
        background.clone(),
    ));
    let relay = tokio::spawn(relay::run(
        ledger.clone(),
        registry.kinds().collect(),
        config.relay.clone(),
        background.clone(),
    ));

    let mut monitor = Monitor::new()
        .should_restart(|ctx, err| {
            // Redis restarts and blips end a worker's run; come back, always.
            tracing::warn!(worker = ctx.name(), error = %err, "apalis worker stopped; restarting");
            true
        })
        .shutdown_timeout(config.shutdown_timeout);
    for kind in registry.kinds() {
        let storage = ledger
            .transport()
            .storage(kind)
            .ok_or_else(|| anyhow::anyhow!("no queue for kind {kind}"))?;
        let concurrency = config
            .concurrency
            .get(kind)
            .copied()
            .unwrap_or(config.default_concurrency)
            .max(1);
        let name = format!("{id}-{kind}");
        let slot = Arc::new(KindSlot {
            shared: shared.clone(),
            permits: tokio::sync::Semaphore::new(concurrency),
        });
        let poll = config.poll_interval;
        monitor = monitor.register(move |restarts| {
            // Restarts follow Redis trouble: back off (0.25 s doubling to 10 s)
            // before fetching again; the name changes per restart, so a
            // restart never collides with its own previous heartbeat.
            let backoff = if restarts == 0 {
                Duration::ZERO
            } else {
                (Duration::from_millis(250) * 2u32.pow(restarts.min(6) as u32))
                    .min(Duration::from_secs(10))
            };
            let backend = storage
                .clone()
                .before_start(move |_| async move {
                    tokio::time::sleep(backoff).await;
                    Ok::<(), apalis_redis::Error>(())
                })
                .poll_with_interval(poll);
            WorkerBuilder::new(format!("{name}-{restarts}"))
                .backend(backend)
                .data(slot.clone())
                .concurrency(apalis_window(concurrency))
                .parallelize(tokio::spawn)
                .build(deliver)
        });
    }
    let signal = shutdown.clone();
    let result = monitor
        .run_with_signal(async move {
            signal.cancelled().await;
            Ok(())
        })
        .await;
    if let Err(e) = &result {
        tracing::warn!(error = %e, "monitor stopped with an error");
    }

    // Whatever did not finish within the timeout goes back to the queue now,
    // instead of waiting for its lease to expire.
    let unfinished: Vec<Uuid> = shared
        .running
        .lock()
        .expect("lock")
        .iter()
        .copied()
        .collect();
    match claim::release(&ledger, &unfinished).await {
        Ok(n) if n > 0 => tracing::info!(released = n, "released unfinished jobs"),
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "could not release unfinished jobs; their leases will expire")
        }
    }
    background.cancel();
    let _ = tokio::join!(heartbeat, relay);
    if let Err(e) = presence::stopped(ledger.pool(), &id).await {
        tracing::warn!(error = %e, "could not mark the worker stopped; it will show as lost");
    }
    tracing::info!(worker = %id, "worker stopped");
    Ok(())
}

async fn heartbeat_loop(
    shared: Arc<Shared>,
    id: String,
    lease: Duration,
    every: Duration,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let runs: Vec<Uuid> = shared
            .running
            .lock()
            .expect("lock")
            .iter()
            .copied()
            .collect();
        if let Err(e) = claim::renew_leases(&shared.ledger, &runs, lease).await {
            tracing::warn!(error = %e, "lease renewal failed");
        }
        if let Err(e) = presence::beat(shared.ledger.pool(), &id, runs.len()).await {
            tracing::warn!(error = %e, "worker presence heartbeat failed");
        }
    }
}

/// The apalis handler: wait for a slot, claim, run, record. Always `Ok` to apalis.
async fn deliver(message: JobMessage, slot: Data<Arc<KindSlot>>) -> Result<(), BoxDynError> {
    let Ok(_permit) = slot.permits.acquire().await else {
        return Ok(());
    };
    let shared = &slot.shared;
    let Some(claimed) = shared.batcher.claim(message).await else {
        return Ok(());
    };
    let waited = (chrono::Utc::now() - claimed.queued_at)
        .to_std()
        .unwrap_or_default();
    metrics::started(&claimed.kind, waited);
    shared.running.lock().expect("lock").insert(claimed.run_id);
    let (job_id, run_id) = (claimed.job_id, claimed.run_id);
    let finish = execute(shared, claimed).await;
    shared.batcher.finish(job_id, run_id, finish).await;
    shared.running.lock().expect("lock").remove(&run_id);
    Ok(())
}

async fn execute(shared: &Shared, c: Claimed) -> Finish {
    let Some(handler) = shared.registry.get(&c.kind).cloned() else {
        return Finish::Failed {
            error: format!("no handler for job kind {:?} in this worker", c.kind),
        };
    };
    let mut ctx = JobContext {
        job_id: c.job_id,
        tenant_id: c.tenant_id.map(TenantId),
        params: c.params,
        attempt: c.attempt,
        run_id: c.run_id,
        ledger: shared.ledger.clone(),
        completed_in_tx: false,
    };
    let started = Instant::now();
    let span = tracing::info_span!("job", job_id = %c.job_id, kind = %c.kind, tenant_id = ?c.tenant_id, attempt = c.attempt);
    let outcome = {
        let _enter = span.enter();
        AssertUnwindSafe(handler.run(&mut ctx)).catch_unwind().await
    };
    metrics::ran(&c.kind, started.elapsed());
    let error = match outcome {
        Ok(Ok(())) if ctx.completed_in_tx => return Finish::AlreadyCompleted(c.tenant_id),
        Ok(Ok(())) => return Finish::Succeeded,
        Ok(Err(JobError::Cancelled)) => return Finish::Cancelled,
        Ok(Err(JobError::Wait { reason, delay })) => {
            tracing::info!(job_id = %c.job_id, ?delay, reason, "job waits");
            return Finish::Wait { reason, delay };
        }
        Ok(Err(JobError::Permanent(e))) => {
            let error = clean(&format!("{e:#}"));
            tracing::warn!(job_id = %c.job_id, error, "job failed permanently");
            return Finish::Failed { error };
        }
        Ok(Err(JobError::Retryable(e))) => clean(&format!("{e:#}")),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            clean(&format!("handler panicked: {msg}"))
        }
    };
    if c.attempt >= c.max_attempts {
        tracing::warn!(job_id = %c.job_id, attempt = c.attempt, error, "job dead after its last attempt");
        Finish::Dead { error }
    } else {
        let delay = handler.retry().backoff(c.attempt);
        tracing::info!(job_id = %c.job_id, attempt = c.attempt, ?delay, error, "job will retry");
        Finish::Retry { error, delay }
    }
}

/// Errors are kept in the ledger and shown to users: never a secret, never huge.
fn clean(error: &str) -> String {
    let mut e = bizcontacts_telemetry::redact(error);
    if e.len() > 2000 {
        let mut cut = 2000;
        while !e.is_char_boundary(cut) {
            cut -= 1;
        }
        e.truncate(cut);
        e.push('…');
    }
    e
}
