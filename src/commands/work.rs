//! `worker` and `scheduler`: the background processes.

use crate::runtime;
use anyhow::Context;
use bizcontacts_config::Settings;
use bizcontacts_queue::handler::Registry;
use bizcontacts_queue::ledger::Ledger;
use tokio_util::sync::CancellationToken;

/// Everything a worker or scheduler process needs.
pub struct Background {
    pub ledger: Ledger,
    pub registry: Registry,
}

pub async fn background(settings: &Settings, registry: Registry) -> anyhow::Result<Background> {
    let store = runtime::store(settings).await?;
    if !store.migrations_current().await? {
        anyhow::bail!("database migrations are pending; run `bizcontacts migrate` first");
    }
    let redis = runtime::redis(settings).await?;
    let ledger = runtime::ledger(settings, &store, &redis, &registry);
    Ok(Background { ledger, registry })
}

/// `/healthz` and `/metrics` for this process, until `shutdown`.
pub async fn serve_ops(settings: &Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(settings.worker.http_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (worker.http_addr)",
                settings.worker.http_addr
            )
        })?;
    tracing::info!(addr = %listener.local_addr()?, "ops endpoint listening");
    axum_serve(listener, shutdown).await
}

async fn axum_serve(
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    bizcontacts_http::serve_router(listener, bizcontacts_http::ops_app(), shutdown).await?;
    Ok(())
}

pub async fn worker(settings: &Settings) -> anyhow::Result<()> {
    // CRM jobs open sealed tokens: a worker without the key must not start
    // (building the registry checks it).
    let redis = runtime::redis(settings).await?;
    worker_with(settings, runtime::registry(settings, &redis)?).await
}

/// A worker process running the kinds of `registry` (the benchmarks add
/// their own no-op kind to the product's).
pub async fn worker_with(settings: &Settings, registry: Registry) -> anyhow::Result<()> {
    let bg = background(settings, registry).await?;
    let shutdown = runtime::shutdown_on_signals();
    let ops = tokio::spawn({
        let (s, t) = (settings.clone(), shutdown.clone());
        async move { serve_ops(&s, t).await }
    });
    bizcontacts_queue::worker::run(
        bg.ledger,
        bg.registry,
        runtime::worker_config(settings),
        shutdown.clone(),
    )
    .await?;
    shutdown.cancel();
    ops.await??;
    Ok(())
}

pub async fn scheduler(settings: &Settings) -> anyhow::Result<()> {
    // Its registry knows every kind it enqueues (the nightly pulls too).
    let redis = runtime::redis(settings).await?;
    let bg = background(settings, runtime::registry(settings, &redis)?).await?;
    let shutdown = runtime::shutdown_on_signals();
    let ops = tokio::spawn({
        let (s, t) = (settings.clone(), shutdown.clone());
        async move { serve_ops(&s, t).await }
    });
    bizcontacts_queue::scheduler::run(bg.ledger, bizcontacts_jobs::schedules(), shutdown.clone())
        .await;
    ops.await??;
    Ok(())
}
