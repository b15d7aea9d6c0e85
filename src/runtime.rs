//! What every long-running subcommand needs: settings, connections, shutdown.

use anyhow::Context;
use bizcontacts_billing::Billing;
use bizcontacts_config::{ExposeSecret, LogFormat, Settings};
use bizcontacts_highlevel::oauth::App;
use bizcontacts_highlevel::session::Crm;
use bizcontacts_highlevel::webhook::Verifier;
use bizcontacts_http::throttle::{SignInGuard, SignInSettings};
use bizcontacts_http::StateInner;
use bizcontacts_queue::handler::Registry;
use bizcontacts_queue::ledger::Ledger;
use bizcontacts_queue::relay::RelaySettings;
use bizcontacts_queue::transport::Transport;
use bizcontacts_queue::worker::WorkerConfig;
use bizcontacts_queue::Redis;
use bizcontacts_security::sealing::Keyring;
use bizcontacts_security::PasswordHasherConfig;
use bizcontacts_store::search_pool::SearchPool;
use bizcontacts_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub fn init_logging(settings: &Settings, default_filter: Option<&str>) {
    let format = match settings.log.format {
        LogFormat::Json => bizcontacts_telemetry::Format::Json,
        LogFormat::Pretty => bizcontacts_telemetry::Format::Pretty,
    };
    bizcontacts_telemetry::init(format, default_filter.unwrap_or(&settings.log.filter));
}

pub async fn store(settings: &Settings) -> anyhow::Result<Store> {
    Store::connect(
        settings.database.url.expose_secret(),
        settings.database.max_connections,
        Duration::from_secs(settings.database.acquire_timeout_secs),
    )
    .await
    .context("cannot connect to Postgres (DATABASE_URL)")
}

/// Create the database when missing, then migrate.
pub async fn migrated_store(settings: &Settings) -> anyhow::Result<Store> {
    let url = settings.database.url.expose_secret();
    if Store::create_database_if_missing(url)
        .await
        .context("cannot reach Postgres to create the database (DATABASE_URL)")?
    {
        tracing::info!("created database");
    }
    let store = store(settings).await?;
    store.migrate().await.context("migrations failed")?;
    Ok(store)
}

pub async fn redis(settings: &Settings) -> anyhow::Result<Redis> {
    Redis::connect(
        settings.redis.url.expose_secret(),
        &settings.redis.key_prefix,
    )
    .await
    .context("cannot connect to Redis (REDIS_URL)")
}

pub fn passwords(settings: &Settings) -> anyhow::Result<PasswordHasherConfig> {
    let a = &settings.auth;
    Ok(PasswordHasherConfig::new(
        a.argon2_memory_kib,
        a.argon2_iterations,
        a.argon2_parallelism,
    )?)
}

/// The job ledger over `store`, with a queue per registered kind.
pub fn ledger(settings: &Settings, store: &Store, redis: &Redis, registry: &Registry) -> Ledger {
    let transport = Transport::new(
        redis.clone(),
        registry.kinds(),
        Duration::from_millis(settings.jobs.transport_heartbeat_ms),
        Duration::from_secs(settings.jobs.lease_secs),
    );
    Ledger::new(store.pool.clone(), transport)
}

pub fn worker_config(settings: &Settings) -> WorkerConfig {
    let j = &settings.jobs;
    WorkerConfig {
        concurrency: j.concurrency.clone(),
        default_concurrency: j.default_concurrency,
        lease: Duration::from_secs(j.lease_secs),
        heartbeat: Duration::from_secs(j.heartbeat_secs),
        poll_interval: Duration::from_millis(j.poll_interval_ms),
        claim_batch: j.claim_batch,
        shutdown_timeout: Duration::from_secs(j.shutdown_timeout_secs),
        relay: RelaySettings {
            interval: Duration::from_millis(j.relay_interval_ms),
            push_grace: Duration::from_secs(j.push_grace_secs),
            stale_after: Duration::from_secs(j.stale_push_secs),
            retention: Duration::from_secs(j.retention_days * 86_400),
            batch: 1000,
        },
    }
}

pub async fn app_state(
    settings: &Settings,
    store: Store,
) -> anyhow::Result<bizcontacts_http::State> {
    let redis = redis(settings).await?;
    let registry = registry(settings, &redis)?;
    let ledger = ledger(settings, &store, &redis, &registry);
    let store_pool = store.pool.clone();
    let a = &settings.auth;
    let sign_in = SignInGuard::new(
        redis.clone(),
        SignInSettings {
            free_failures: a.login_free_failures,
            address_free_failures: a.login_address_free_failures,
            backoff_base: Duration::from_millis(a.login_backoff_base_ms),
            backoff_max: Duration::from_secs(a.login_backoff_max_secs),
            window: Duration::from_secs(a.login_failure_window_secs),
            max_concurrent_hashes: a.max_concurrent_hashes,
        },
    );
    let search = SearchPool::connect(
        settings.database.url.expose_secret(),
        settings.database.search_max_connections,
        Duration::from_secs(settings.database.acquire_timeout_secs),
    )
    .await
    .context("cannot connect to Postgres for searches (DATABASE_URL)")?;
    Ok(bizcontacts_http::State::new(StateInner {
        store,
        search,
        redis,
        ledger,
        registry,
        passwords: passwords(settings)?,
        session_ttl: chrono::Duration::seconds(settings.auth.session_ttl_secs),
        secure_cookies: settings.environment == "production",
        invitation_ttl: chrono::Duration::hours(settings.auth.invitation_ttl_hours),
        json_body_limit: settings.http.json_body_limit_bytes,
        upload_limit: settings.imports.max_upload_bytes,
        api_import_max_rows: settings.imports.api_max_rows,
        api_import_body_limit: settings.imports.api_max_body_bytes,
        body_idle_timeout: Duration::from_secs(settings.http.body_idle_timeout_secs),
        header_read_timeout: Duration::from_secs(settings.http.header_read_timeout_secs),
        upload_timeout: Duration::from_secs(settings.imports.upload_timeout_secs),
        uploads_per_tenant: settings.imports.max_concurrent_uploads_per_tenant,
        sign_in,
        crm: crm(settings, &store_pool)?,
        crm_authorize_url: settings.highlevel.authorize_url.clone(),
        crm_whitelabel_authorize_url: settings.highlevel.whitelabel_authorize_url.clone(),
        billing: billing(settings),
        worker_heartbeat: Duration::from_secs(settings.jobs.heartbeat_secs),
        deletion_grace: chrono::Duration::days(i64::from(settings.retention.deletion_grace_days)),
        export_ttl: chrono::Duration::days(i64::from(settings.retention.export_days)),
        webhooks: Verifier::new(
            &settings.highlevel.webhook_rsa_public_key,
            &settings.highlevel.webhook_ed25519_public_key,
        )?,
    }))
}

/// Every job kind, the CRM kinds with HighLevel, the secrets keys and the
/// per-Location request budget in `redis`.
pub fn registry(settings: &Settings, redis: &Redis) -> anyhow::Result<Registry> {
    let h = &settings.highlevel;
    let (client, app) = highlevel(settings)?;
    let crm = bizcontacts_jobs::CrmWork {
        client,
        app,
        keyring: Arc::new(keyring(settings)?),
        limiter: bizcontacts_highlevel::limiter::Limiter::new(
            redis.conn(),
            redis.prefix(),
            bizcontacts_highlevel::limiter::Budget {
                burst: h.burst_limit,
                window: Duration::from_millis(h.burst_window_ms),
                daily: h.daily_limit,
            },
        ),
    };
    Ok(bizcontacts_jobs::registry(
        &settings.dedupe,
        Some(crm),
        billing(settings),
        settings.retention.clone(),
    ))
}

/// Stripe, the prices and the grace period (intake and workers alike).
pub fn billing(settings: &Settings) -> Billing {
    Billing::new(&settings.stripe, &settings.billing)
}

/// What CRM sessions are made from (intake and workers alike).
pub fn crm(settings: &Settings, pool: &sqlx::PgPool) -> anyhow::Result<Crm> {
    let (client, app) = highlevel(settings)?;
    Ok(Crm {
        client,
        app,
        keyring: Arc::new(keyring(settings)?),
        pool: pool.clone(),
    })
}

/// The HighLevel client and our app, from `highlevel.*`.
fn highlevel(settings: &Settings) -> anyhow::Result<(bizcontacts_highlevel::Client, App)> {
    let h = &settings.highlevel;
    let client =
        bizcontacts_highlevel::Client::new(&h.api_base_url, Duration::from_secs(h.timeout_secs))?;
    let app = App {
        client_id: h.client_id.clone(),
        client_secret: h.client_secret.clone(),
        redirect_url: settings.highlevel_redirect_url(),
    };
    Ok((client, app))
}

/// The keys secrets are sealed with. Production refuses to start without
/// `secrets.encryption_key`; on a developer machine (`local`) a missing key
/// is made once and kept in [`LOCAL_SECRETS`], which later starts read.
pub fn keyring(settings: &Settings) -> anyhow::Result<Keyring> {
    let s = &settings.secrets;
    if s.encryption_key.expose_secret().trim().is_empty() && settings.environment == "local" {
        let key = local_key()?;
        return Ok(Keyring::new(&key.into(), &s.previous_encryption_keys)?);
    }
    Ok(Keyring::new(
        &s.encryption_key,
        &s.previous_encryption_keys,
    )?)
}

/// The developer machine's key: the one [`LOCAL_SECRETS`] holds (another
/// start, or another process, may have made it since these settings were
/// read), else a new one written there. Once per process.
fn local_key() -> anyhow::Result<String> {
    static KEY: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    let mut made = KEY.lock().expect("local key lock");
    if let Some(key) = made.as_ref() {
        return Ok(key.clone());
    }
    let stored = || -> anyhow::Result<Option<String>> {
        let key = Settings::load()?.secrets.encryption_key;
        let key = key.expose_secret().trim();
        Ok((!key.is_empty()).then(|| key.to_string()))
    };
    let key = match stored()? {
        Some(key) => key,
        None => {
            let key = Keyring::generate_key();
            match write_local_secret(&key) {
                Ok(()) => {
                    tracing::info!(
                        file = LOCAL_SECRETS,
                        "made a secrets.encryption_key for this machine"
                    );
                    key
                }
                // Another process made it first: use theirs.
                Err(e) => stored()?.ok_or(e)?,
            }
        }
    };
    *made = Some(key.clone());
    Ok(key)
}

/// Where a developer machine keeps the key `local` made (git ignores it).
pub const LOCAL_SECRETS: &str = bizcontacts_config::LOCAL_SECRETS_FILE;

fn write_local_secret(key: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let path = std::path::Path::new(LOCAL_SECRETS);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot create {LOCAL_SECRETS}; set secrets.encryption_key"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    writeln!(
        file,
        "# Made by bizcontacts on first start: the key CRM secrets are sealed with on\n\
         # this machine. Keep it; losing it means connecting the CRM again.\nsecrets:\n  encryption_key: \"{key}\""
    )?;
    Ok(())
}

/// A token cancelled on SIGINT or SIGTERM.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let fire = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler can be installed");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown signal received");
        fire.cancel();
    });
    token
}
