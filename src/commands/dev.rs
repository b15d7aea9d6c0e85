//! `dev`: the whole platform in one process on local defaults.
//!
//! Creates the database if missing, migrates, seeds a demo tenant with an org
//! admin and a demo corpus (`demo.corpus_contacts`) on first start, and on
//! every start issues a fresh demo API key (the
//! previous one is revoked: only hashes are stored, so an old key cannot be
//! shown again). Prints `BIZCONTACTS_URL=` and `BIZCONTACTS_DEMO_API_KEY=` once
//! the intake listens.

use super::serve;
use crate::runtime;
use anyhow::Context;
use bizcontacts_config::Settings;
use bizcontacts_domain::locks::{self, AdvisoryLock};
use bizcontacts_domain::{PackageName, Permission, Role};
use bizcontacts_http::identity::{create_user, issue_api_key};
use bizcontacts_security::new_password;
use bizcontacts_store::audit::{self, Actor, NewEvent};
use bizcontacts_store::{api_keys, tenants, users, Store};
use serde_json::json;
use std::io::Write;

const DEMO_KEY_NAME: &str = "dev demo key";

pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    let store = runtime::migrated_store(settings).await?;
    let key = seed_demo(settings, &store).await?;
    seed_corpus(settings, &store).await?;
    let state = runtime::app_state(settings, store).await?;
    let listener = serve::bind(settings).await?;
    let shutdown = runtime::shutdown_on_signals();
    let url = format!("http://{}", listener.local_addr()?);
    let url = if settings.http.public_url.is_empty() {
        url
    } else {
        settings.public_url()
    };
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "BIZCONTACTS_URL={url}")?;
        writeln!(out, "BIZCONTACTS_DEMO_API_KEY={key}")?;
        out.flush()?;
    }
    // Worker and scheduler in this same process, on the same shutdown signal.
    let worker = tokio::spawn({
        let (ledger, registry) = (state.ledger.clone(), state.registry.clone());
        let (config, token) = (runtime::worker_config(settings), shutdown.clone());
        async move { bizcontacts_queue::worker::run(ledger, registry, config, token).await }
    });
    let scheduler = tokio::spawn({
        let (ledger, token) = (state.ledger.clone(), shutdown.clone());
        async move {
            bizcontacts_queue::scheduler::run(ledger, bizcontacts_jobs::schedules(), token).await
        }
    });
    serve::intake(listener, state, settings, shutdown.clone()).await?;
    shutdown.cancel();
    worker.await??;
    scheduler.await?;
    Ok(())
}

/// Seed a small corpus into an empty one, so a newcomer's first search
/// finds contacts. Another `dev` starting at the same moment may seed too;
/// that only means more demo contacts.
async fn seed_corpus(settings: &Settings, store: &Store) -> anyhow::Result<()> {
    let n = settings.demo.corpus_contacts;
    let empty: bool = sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM contacts)")
        .fetch_one(&store.pool)
        .await?;
    if n > 0 && empty {
        tracing::info!(contacts = n, "seeding a demo corpus");
        // As the demo tenant's batch: `dev` makes no tenant besides it.
        let demo = tenants::find_by_name(&store.pool, &settings.demo.tenant_name).await?;
        super::seed::run(settings, n, demo.map(|t| t.id), false).await?;
    }
    Ok(())
}

/// Seed the demo tenant and admin once; issue a fresh demo key every time.
async fn seed_demo(settings: &Settings, store: &Store) -> anyhow::Result<String> {
    let demo = &settings.demo;
    let package: PackageName = demo
        .package
        .parse()
        .map_err(|e| anyhow::anyhow!("demo.package: {e}"))?;
    let mut tx = store.pool.begin().await?;
    // Serialise concurrent `dev` starts against one database.
    sqlx::query(locks::SQL)
        .bind(AdvisoryLock::DemoSeed.class())
        .bind("")
        .execute(&mut *tx)
        .await?;
    let tenant = match tenants::find_by_name(&mut *tx, &demo.tenant_name).await? {
        Some(t) => t,
        None => {
            let t = tenants::create(&mut *tx, &demo.tenant_name, package).await?;
            tracing::info!(tenant_id = %t.id, "seeded demo tenant");
            t
        }
    };
    let user = match users::find_by_email(&mut *tx, &demo.admin_email).await? {
        Some(u) => u,
        None => {
            let password = new_password();
            let hasher = runtime::passwords(settings)?;
            let u = create_user(&mut tx, &hasher, &demo.admin_email, &password)
                .await
                .map_err(|e| anyhow::anyhow!("seeding demo user: {e}"))?;
            // Shown once, on the terminal of the person who started `dev`.
            eprintln!("demo org admin: {} / password {password}", demo.admin_email);
            u
        }
    };
    if users::membership(&mut *tx, tenant.id, user.id)
        .await?
        .is_none()
    {
        users::add_member(&mut tx, tenant.id, user.id, Role::OrgAdmin).await?;
    }
    api_keys::revoke_named(&mut *tx, tenant.id, user.id, DEMO_KEY_NAME).await?;
    let issued = issue_api_key(
        &mut tx,
        Some(tenant.id),
        user.id,
        DEMO_KEY_NAME,
        Permission::TENANT,
        None,
    )
    .await
    .map_err(|e| anyhow::anyhow!("issuing demo key: {e}"))?;
    audit::record(
        &mut *tx,
        NewEvent {
            tenant_id: Some(tenant.id),
            actor: Actor::system(),
            action: "api_key.created",
            target_type: Some("api_key"),
            target_id: Some(issued.key.id.to_string()),
            details: json!({ "via": "dev", "name": DEMO_KEY_NAME, "prefix": issued.key.prefix }),
            request_id: None,
        },
    )
    .await?;
    tx.commit().await.context("seeding the demo tenant")?;
    Ok(issued.secret)
}
