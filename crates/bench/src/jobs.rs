//! `bizcontacts-bench jobs`: the job platform measured end to end.
//!
//! A scratch database (`<database>_bench`, recreated) and a fresh Redis prefix,
//! so nothing of a real deployment is touched. Worker processes are this same
//! binary (its hidden `worker` command: the product's kinds plus
//! `bench_noop`). Two runs:
//! 1. throughput: enqueue N no-op platform jobs through the ledger's enqueue
//!    path in batches of 1,000, as fast as possible, while the workers run
//!    them; N / (first enqueue .. last job succeeded in the ledger).
//! 2. latency: an offered load of `rate` jobs/s, one job per enqueue (each its
//!    own transaction and push, like an API call), for `seconds`; percentiles
//!    of `started_at - created_at` from the ledger (one clock: Postgres).

use crate::noop::NoopArgs;
use anyhow::Context;
use bizcontacts::runtime;
use bizcontacts_config::{ExposeSecret, Settings};
use bizcontacts_queue::args::JobArgs;
use bizcontacts_queue::job::NewJob;
use bizcontacts_queue::ledger::Ledger;
use bizcontacts_store::Store;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A worker process of this binary against the scratch database and prefix.
pub(crate) fn spawn_worker(
    url: &str,
    prefix: &str,
    concurrency: Option<usize>,
) -> anyhow::Result<tokio::process::Child> {
    spawn_worker_with(url, prefix, concurrency, &[])
}

/// [`spawn_worker`] with more settings (`BIZCONTACTS__...` variables).
pub(crate) fn spawn_worker_with(
    url: &str,
    prefix: &str,
    concurrency: Option<usize>,
    env: &[(&str, &str)],
) -> anyhow::Result<tokio::process::Child> {
    let mut cmd = tokio::process::Command::new(std::env::current_exe()?);
    cmd.envs(env.iter().copied());
    cmd.arg("worker")
        .env("DATABASE_URL", url)
        .env("BIZCONTACTS__REDIS__KEY_PREFIX", prefix)
        .env("BIZCONTACTS__WORKER__HTTP_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    if let Some(c) = concurrency {
        cmd.env("BIZCONTACTS__JOBS__DEFAULT_CONCURRENCY", c.to_string());
    }
    cmd.spawn().context("starting a worker process")
}

pub async fn run(
    settings: &Settings,
    jobs: usize,
    workers: usize,
    concurrency: usize,
    rate: u64,
    seconds: u64,
) -> anyhow::Result<()> {
    let mut settings = settings.clone();
    let url = bench_database(&settings).await?;
    settings.database.url = url.clone().into();
    settings.redis.key_prefix =
        format!("bench:{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let store = runtime::migrated_store(&settings).await?;
    let redis = runtime::redis(&settings).await?;
    let registry = crate::noop::registry(&settings).await?;
    let ledger = runtime::ledger(&settings, &store, &redis, &registry);

    let mut children = Vec::new();
    for _ in 0..workers {
        children.push(spawn_worker(
            &url,
            &settings.redis.key_prefix,
            Some(concurrency),
        )?);
    }
    // Let the workers register before timing starts.
    tokio::time::sleep(Duration::from_secs(2)).await;

    println!("bench jobs: {workers} worker process(es), concurrency {concurrency} per worker");
    let started = Instant::now();
    let batch_size = 1000;
    let mut sent = 0;
    while sent < jobs {
        let n = batch_size.min(jobs - sent);
        let mut tx = store.pool.begin().await?;
        let (_, pending) = ledger
            .enqueue_many(&mut tx, (0..n).map(|_| noop()).collect())
            .await?;
        tx.commit().await?;
        ledger.push(pending).await;
        sent += n;
    }
    let enqueued = started.elapsed();
    wait_all_succeeded(&store, jobs as i64, Duration::from_secs(600)).await?;
    // Timed by the ledger itself (one clock), not by how often we poll it.
    let elapsed: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM max(finished_at) - min(created_at))::float8 FROM jobs",
    )
    .fetch_one(&store.pool)
    .await?;
    println!(
        "throughput: {jobs} jobs enqueued in {:.2} s ({:.0}/s), all succeeded in {elapsed:.2} s: {:.0} jobs/s end to end",
        enqueued.as_secs_f64(),
        jobs as f64 / enqueued.as_secs_f64(),
        jobs as f64 / elapsed
    );

    sqlx::query("TRUNCATE jobs CASCADE")
        .execute(&store.pool)
        .await?;
    let total = (rate * seconds) as usize;
    let ledger = Arc::new(ledger);
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let offered_from = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..total {
        tick.tick().await;
        let (ledger, pool) = (ledger.clone(), store.pool.clone());
        let permit = gate.clone().acquire_owned().await?;
        tasks.spawn(async move {
            let _permit = permit;
            enqueue_one(&ledger, &pool).await
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let offered = total as f64 / offered_from.elapsed().as_secs_f64();
    wait_all_succeeded(&store, total as i64, Duration::from_secs(120)).await?;
    let latency = |from: &'static str, to: &'static str| {
        let pool = store.pool.clone();
        async move {
            sqlx::query_as::<_, (f64, f64, f64)>(&format!(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY ms),
                        max(ms)
                 FROM (SELECT (extract(epoch FROM {to} - {from}) * 1000)::float8 AS ms FROM jobs) l"
            ))
            .fetch_one(&pool)
            .await
        }
    };
    let (p50, p99, max) = latency("created_at", "started_at").await?;
    println!(
        "latency: {total} jobs offered at {offered:.0}/s (target {rate}/s): enqueue-to-start p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms"
    );
    let (p50, p99, _) = latency("created_at", "pushed_at").await?;
    println!(
        "  of which enqueue to pushed (commit + Redis push): p50 {p50:.1} ms, p99 {p99:.1} ms"
    );

    for mut c in children {
        let _ = c.start_kill();
        let _ = c.wait().await;
    }
    cleanup_redis(&redis).await;
    Ok(())
}

fn noop() -> NewJob {
    NoopArgs {}.job()
}

async fn enqueue_one(ledger: &Ledger, pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    let (_, pending) = ledger.enqueue(&mut tx, noop()).await?;
    tx.commit().await?;
    ledger.push(pending).await;
    Ok(())
}

async fn wait_all_succeeded(store: &Store, n: i64, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'succeeded'")
            .fetch_one(&store.pool)
            .await?;
        if done >= n {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {done} of {n} jobs succeeded in time"
        );
        // Rarely: counting a large table often would steal the CPU being measured.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `<database>_bench`, dropped and created afresh.
pub(crate) async fn bench_database(settings: &Settings) -> anyhow::Result<String> {
    let base = settings.database.url.expose_secret().to_string();
    let (server, name) = base
        .rsplit_once('/')
        .context("DATABASE_URL has no database name")?;
    let name = name.split('?').next().unwrap_or(name);
    let bench = format!("{server}/{name}_bench");
    let admin = Store::connect(&format!("{server}/postgres"), 1, Duration::from_secs(5)).await?;
    sqlx::query(&format!(
        "DROP DATABASE IF EXISTS \"{name}_bench\" WITH (FORCE)"
    ))
    .execute(&admin.pool)
    .await?;
    admin.pool.close().await;
    Ok(bench)
}

/// A scratch database (recreated, migrated) and a fresh Redis prefix:
/// (settings pointing at both, the database URL, store, Redis).
pub(crate) async fn scratch(
    settings: &Settings,
) -> anyhow::Result<(Settings, String, Store, bizcontacts_queue::Redis)> {
    let mut settings = settings.clone();
    let url = bench_database(&settings).await?;
    settings.database.url = url.clone().into();
    settings.redis.key_prefix =
        format!("bench:{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let store = runtime::migrated_store(&settings).await?;
    let redis = runtime::redis(&settings).await?;
    Ok((settings, url, store, redis))
}

pub(crate) async fn cleanup_redis(redis: &bizcontacts_queue::Redis) {
    let mut conn = redis.conn();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", redis.prefix()))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
    }
}
