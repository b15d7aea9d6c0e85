//! `seed --contacts N [--tenant ID]`: a realistic demo corpus, through the
//! real import path.
//!
//! The generated businesses (`bizcontacts-demo`: countries in proportion,
//! MCCs from the ISO 18245 list, segments, types, names, domains, phones
//! valid for their country) are staged as one batch with the import's own
//! `Stager` and binary `COPY`, in checkpointed chunks like the `import` job,
//! approved with the review's own rule (every valid row), and taken into the
//! corpus by the batch's `dedupe` job. The stored result is exactly what a
//! tenant's reviewed import gives: contacts, blocking keys, provenance rows,
//! survivorship. The rows are an operator's, so they are not charged to the
//! tenant's daily import rows. A worker runs in this process until the
//! dedupe job ends (any other worker may take part).

use crate::runtime;
use anyhow::Context;
use bizcontacts_config::Settings;
use bizcontacts_demo::{Business, Rng, BUSINESS_HEADER};
use bizcontacts_domain::batch::{ImportStatus, Source};
use bizcontacts_domain::{PackageName, TenantId};
use bizcontacts_ingest::{Layout, Stager};
use bizcontacts_jobs::DedupeArgs;
use bizcontacts_queue::args::JobArgs;
use bizcontacts_store::imports::{self, NewImport, Progress};
use bizcontacts_store::staged_rows::{self, Approve, CopyRows};
use bizcontacts_store::{tenants, Store};
use indicatif::{ProgressBar, ProgressStyle};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Rows per staging transaction, as the import job.
const CHUNK: usize = 5_000;
/// The tenant a corpus is seeded for when none is named.
pub const DEMO_CORPUS_TENANT: &str = "Demo corpus";

/// What a seeding run did.
pub struct Seeded {
    pub import_id: Uuid,
    pub staged: usize,
    pub created: i64,
}

pub async fn run(
    settings: &Settings,
    contacts: usize,
    tenant: Option<TenantId>,
    show_progress: bool,
) -> anyhow::Result<Seeded> {
    let started = Instant::now();
    let store = runtime::store(settings).await?;
    anyhow::ensure!(
        store.migrations_current().await?,
        "database migrations are pending; run `bizcontacts migrate` first"
    );
    let tenant = match tenant {
        Some(t) => {
            tenants::get(&store.pool, t)
                .await
                .with_context(|| format!("no tenant {t}"))?
                .id
        }
        None => match tenants::find_by_name(&store.pool, DEMO_CORPUS_TENANT).await? {
            Some(t) => t.id,
            None => {
                tenants::create(&store.pool, DEMO_CORPUS_TENANT, PackageName::Enterprise)
                    .await?
                    .id
            }
        },
    };
    let bar = |len: usize, what: &str| {
        let bar = if show_progress {
            ProgressBar::new(len as u64)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>8} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, {eta} left)",
            )
            .expect("static template"),
        );
        bar.set_message(what.to_string());
        bar
    };

    let import_id = stage(&store, tenant, contacts, bar(contacts, "staged")).await?;
    let mut tx = store.pool.begin().await?;
    let outcome = staged_rows::review(&mut tx, import_id, Approve::AllValid, &[], None).await?;
    let redis = runtime::redis(settings).await?;
    let registry = bizcontacts_jobs::registry(
        &settings.dedupe,
        None,
        crate::runtime::billing(settings),
        settings.retention.clone(),
    );
    let ledger = runtime::ledger(settings, &store, &redis, &registry);
    let job = DedupeArgs::batch(import_id).job().tenant(tenant);
    let (enqueued, pending) = ledger.enqueue(&mut tx, job).await?;
    tx.commit().await?;
    ledger.push(pending).await;

    let stop = CancellationToken::new();
    let worker = tokio::spawn({
        let (ledger, stop) = (ledger.clone(), stop.clone());
        let config = runtime::worker_config(settings);
        async move { bizcontacts_queue::worker::run(ledger, registry, config, stop).await }
    });
    let merging = bar(outcome.approved as usize, "corpus");
    let job = loop {
        let job = ledger.get(None, enqueued.job.id).await?;
        merging.set_position(job.progress_done.max(0) as u64);
        if job.status.is_terminal() {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    merging.finish();
    stop.cancel();
    worker.await??;
    anyhow::ensure!(
        job.status == bizcontacts_queue::job::JobStatus::Succeeded,
        "the dedupe job ended {}: {}",
        job.status,
        job.last_error.unwrap_or_default()
    );
    if contacts as i64 >= staged_rows::ANALYZE_AFTER_ROWS {
        bizcontacts_store::search::vacuum_corpus(&store.pool).await?;
    }
    let created: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM staged_rows WHERE import_id = $1 AND outcome = 'created'",
    )
    .bind(import_id)
    .fetch_one(&store.pool)
    .await?;
    eprintln!(
        "seeded {created} contacts ({} rows staged, {} merged into existing contacts) for tenant {tenant} in {:.1} s",
        contacts,
        outcome.approved as i64 - created,
        started.elapsed().as_secs_f64()
    );
    Ok(Seeded {
        import_id,
        staged: contacts,
        created,
    })
}

/// Stage `n` generated businesses as one batch, a checkpointed chunk per
/// transaction; returns the batch.
async fn stage(
    store: &Store,
    tenant: TenantId,
    n: usize,
    bar: ProgressBar,
) -> anyhow::Result<Uuid> {
    let layout = Layout::from_header(b',', BUSINESS_HEADER).map_err(|e| anyhow::anyhow!("{e}"))?;
    let stager = Stager::new(&layout);
    let mut tx = store.pool.begin().await?;
    let import = imports::create(
        &mut tx,
        NewImport {
            tenant_id: tenant,
            source: Source::Api,
            status: ImportStatus::Processing,
            idempotency_key: None,
            filename: Some("bizcontacts seed".into()),
            created_by: None,
        },
    )
    .await?
    .context("a batch without a key cannot conflict")?;
    imports::set_layout(
        &mut *tx,
        import.id,
        ",",
        &layout.header,
        &layout.mapping_names(),
    )
    .await?;
    tx.commit().await?;
    // A seed of its own per run: a second run adds other businesses.
    let mut rng = Rng(0x5EED_0000_0000_0001 ^ import.id.as_u128() as u64 | 1);
    let mut done = 0usize;
    while done < n {
        let take = CHUNK.min(n - done);
        let mut rows = CopyRows::new(import.id);
        let (mut valid, mut invalid) = (0, 0);
        for i in done..done + take {
            let record = csv::StringRecord::from(Business::new(&mut rng, i).0.to_vec());
            let staged = stager.stage(i as i32 + 1, &record);
            if staged.errors.is_empty() {
                valid += 1;
            } else {
                invalid += 1;
            }
            rows.push(&staged);
        }
        let mut tx = store.pool.begin().await?;
        staged_rows::copy(&mut tx, &rows, rows.len()).await?;
        imports::advance(
            &mut *tx,
            import.id,
            Progress {
                after_row: done as i32,
                last_row: (done + take) as i32,
                valid,
                invalid,
                not_staged: 0,
            },
        )
        .await?;
        tx.commit().await?;
        done += take;
        bar.set_position(done as u64);
    }
    let mut conn = store.pool.acquire().await?;
    imports::finish(&mut conn, import.id, ImportStatus::Staged, None).await?;
    bar.finish();
    Ok(import.id)
}
