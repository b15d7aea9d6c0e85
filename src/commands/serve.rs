//! `serve`: the HTTP intake.

use crate::runtime;
use anyhow::Context;
use bizcontacts_config::Settings;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    let store = runtime::store(settings).await?;
    if !store.migrations_current().await? {
        // Keep serving: /readyz says "pending migrations" until `migrate` runs.
        tracing::warn!("database migrations are pending; run `bizcontacts migrate`");
    }
    let state = runtime::app_state(settings, store).await?;
    let listener = bind(settings).await?;
    let shutdown = runtime::shutdown_on_signals();
    intake(listener, state, settings, shutdown).await
}

pub async fn bind(settings: &Settings) -> anyhow::Result<TcpListener> {
    TcpListener::bind(settings.http.addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (BIZCONTACTS_HTTP_ADDR)",
                settings.http.addr
            )
        })
}

pub async fn intake(
    listener: TcpListener,
    state: bizcontacts_http::State,
    settings: &Settings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "intake listening");
    let grace = Duration::from_secs(settings.http.shutdown_timeout_secs);
    bizcontacts_http::serve(listener, state, shutdown, grace).await?;
    tracing::info!("intake stopped");
    Ok(())
}
