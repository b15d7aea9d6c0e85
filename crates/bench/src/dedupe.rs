//! `bizcontacts-bench dedupe-quality` and `dedupe`: the dedupe job measured
//! on generated contacts ([`crate::corpus`]).
//!
//! Records are staged through the import's own normalization (the
//! `Stager`) into an approved batch, then one worker process of this binary
//! runs the `dedupe` job as in production. Times are the ledger's
//! (`started_at` to `finished_at` of the job); memory is the worker's VmHWM.
//!
//! Quality: merge pairs against the truth. Two records are a predicted pair
//! when they landed in one contact, a true pair when they came from one
//! entity; precision = true predicted pairs / predicted pairs, recall = true
//! predicted pairs / true pairs. Rows left for a reviewer count as unmerged.

use crate::corpus::{labelled, Entity, Mode, HEADER};
use crate::import::{cpu_secs, vm_hwm_kib};
use crate::jobs::{cleanup_redis, spawn_worker};
use anyhow::Context;
use bizcontacts::runtime;
use bizcontacts_config::Settings;
use bizcontacts_demo::Rng;
use bizcontacts_domain::batch::{ImportStatus, Source};
use bizcontacts_domain::{PackageName, TenantId};
use bizcontacts_ingest::{Layout, Stager};
use bizcontacts_jobs::DedupeArgs;
use bizcontacts_queue::args::JobArgs;
use bizcontacts_store::imports::{self, NewImport};
use bizcontacts_store::staged_rows::{self, CopyRows};
use bizcontacts_store::Store;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use uuid::Uuid;

struct Bench {
    settings: Settings,
    store: Store,
    redis: bizcontacts_queue::Redis,
    tenant: TenantId,
    url: String,
}

impl Bench {
    async fn new(settings: &Settings) -> anyhow::Result<Self> {
        let (settings, url, store, redis) = crate::jobs::scratch(settings).await?;
        let tenant =
            bizcontacts_store::tenants::create(&store.pool, "Bench", PackageName::Enterprise)
                .await?
                .id;
        Ok(Bench {
            settings,
            store,
            redis,
            tenant,
            url,
        })
    }

    /// Stage records as one approved batch; returns it and each record's row id.
    async fn stage(
        &self,
        records: impl Iterator<Item = Vec<String>>,
    ) -> anyhow::Result<(Uuid, Vec<Uuid>)> {
        self.stage_leniently(records, false).await
    }

    /// [`Self::stage`]; with `lenient`, rows the import would refuse are
    /// approved too (FEBRL's people have no company).
    async fn stage_leniently(
        &self,
        records: impl Iterator<Item = Vec<String>>,
        lenient: bool,
    ) -> anyhow::Result<(Uuid, Vec<Uuid>)> {
        let layout = Layout::from_header(b',', HEADER).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let stager = Stager::new(&layout);
        let mut tx = self.store.pool.begin().await?;
        let new = NewImport {
            tenant_id: self.tenant,
            source: Source::Api,
            status: ImportStatus::Processing,
            idempotency_key: None,
            filename: None,
            created_by: None,
        };
        let import = imports::create(&mut tx, new).await?.context("batch")?;
        tx.commit().await?;
        let mut ids = Vec::new();
        let mut rows = CopyRows::new(import.id);
        let mut invalid = 0;
        let mut conn = self.store.pool.acquire().await?;
        for (i, record) in records.enumerate() {
            let record = csv::StringRecord::from(record);
            let staged = stager.stage(i as i32 + 1, &record);
            invalid += !staged.errors.is_empty() as usize;
            ids.push(rows.push(&staged));
            if rows.len() == 10_000 {
                staged_rows::copy(&mut conn, &rows, rows.len()).await?;
                rows = CopyRows::new(import.id);
            }
        }
        staged_rows::copy(&mut conn, &rows, rows.len()).await?;
        anyhow::ensure!(
            lenient || invalid == 0,
            "{invalid} generated records did not validate"
        );
        // Leniently staged rows drop the errors the import found (no
        // company): an approved row has none.
        sqlx::query(
            "UPDATE staged_rows SET status = 'approved', errors = NULL WHERE import_id = $1",
        )
        .bind(import.id)
        .execute(&mut *conn)
        .await?;
        sqlx::query("UPDATE imports SET status = 'staged', finished_at = now() WHERE id = $1")
            .bind(import.id)
            .execute(&mut *conn)
            .await?;
        sqlx::query("VACUUM ANALYZE staged_rows")
            .execute(&mut *conn)
            .await?;
        Ok((import.id, ids))
    }

    /// Run the batch's dedupe job on one worker process; (seconds, peak MB,
    /// worker CPU seconds).
    async fn dedupe(&self, import_id: Uuid) -> anyhow::Result<(f64, f64, f64)> {
        let registry = bizcontacts_jobs::registry(
            &self.settings.dedupe,
            None,
            bizcontacts::runtime::billing(&self.settings),
            self.settings.retention.clone(),
        );
        let ledger = runtime::ledger(&self.settings, &self.store, &self.redis, &registry);
        let mut tx = self.store.pool.begin().await?;
        let mut job = DedupeArgs::batch(import_id).job().tenant(self.tenant);
        // A failed run is a failed measurement: no retry hides it.
        job.max_attempts = 1;
        let (enqueued, pending) = ledger.enqueue(&mut tx, job).await?;
        tx.commit().await?;
        ledger.push(pending).await;
        let job_id = enqueued.job.id;
        let mut worker = spawn_worker(&self.url, &self.settings.redis.key_prefix, Some(1))?;
        let pid = worker.id().context("worker pid")?;
        let (mut peak, mut cpu) = (0, 0.0);
        loop {
            peak = peak.max(vm_hwm_kib(pid).unwrap_or(0));
            // Read while the process lives; the last reading is at most
            // half a second before the job ended (the worker idles then).
            cpu = cpu_secs(pid).unwrap_or(cpu);
            let status: String = sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
                .bind(job_id)
                .fetch_one(&self.store.pool)
                .await?;
            match status.as_str() {
                "succeeded" => break,
                "failed" | "dead" | "cancelled" => anyhow::bail!("the dedupe job ended {status}"),
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
        let _ = worker.start_kill();
        let _ = worker.wait().await;
        let secs: f64 = sqlx::query_scalar(
            "SELECT extract(epoch FROM finished_at - started_at)::float8 FROM jobs WHERE id = $1",
        )
        .bind(job_id)
        .fetch_one(&self.store.pool)
        .await?;
        Ok((secs, peak as f64 / 1024.0, cpu))
    }

    async fn done(self) {
        cleanup_redis(&self.redis).await;
    }
}

fn pairs(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

/// Where `dedupe-quality` takes its records from, and in how many batches.
pub struct QualityRun {
    pub entities: usize,
    pub mode: Mode,
    /// 1: every record in one batch; 2: each entity's first record, then
    /// the rest in a second batch (duplicates meet the corpus, not each other).
    pub batches: u8,
    pub febrl: Option<std::path::PathBuf>,
}

pub async fn quality(settings: &Settings, run: QualityRun) -> anyhow::Result<()> {
    let QualityRun {
        entities,
        mode,
        batches,
        febrl,
    } = run;
    let records = match &febrl {
        Some(dir) => {
            let records = crate::febrl::load(dir)?;
            println!(
                "bench dedupe-quality (FEBRL 4a+4b): {} records, {batches} batch(es); \
                 rows without company, email or website staged leniently",
                records.len()
            );
            records
        }
        None => {
            let set = labelled(entities, 0x5EED_DED0_0E11_0001, mode);
            let noise = match mode {
                Mode::Classic => {
                    "legal form 40%, upper case 15%, typo 10%, swapped names 10%, email case 25%, \
                     national phone 50%, bare domain 50%, St 20%, one of email/phone/website missing 45%, \
                     postcode missing 15%, address missing 10%"
                }
                Mode::Hard => {
                    "legal form 40%, company typo 10%; first name, surname and street: one edit 25%, \
                     two edits 8%; suburb: one edit 15%, two 5%; swapped names 10%; St 20%; postcode digit 15%; \
                     no exact key at all 33% (no email, no website, phone digits transposed); otherwise \
                     phone transposed 15%, email missing 50%, website missing 50%; first name, surname \
                     missing 5% each, street and postcode 10% each"
                }
            };
            println!(
                "bench dedupe-quality ({mode:?}, {batches} batch(es)): {} entities, {} records \
                 (5% branches and 5% colleagues as hard negatives; duplicates: {noise})",
                set.entities,
                set.records.len()
            );
            set.records
        }
    };
    let bench = Bench::new(settings).await?;
    // Batch of each record: the first one seen of an entity goes first.
    let mut seen = std::collections::HashSet::new();
    let batch_of: Vec<usize> = records
        .iter()
        .map(|(e, _)| usize::from(batches > 1 && !seen.insert(*e)))
        .collect();
    let mut row_ids = vec![Uuid::nil(); records.len()];
    let (mut imports, mut secs, mut peak) = (vec![], 0.0, 0f64);
    for b in 0..usize::from(batches.max(1)) {
        let mine: Vec<usize> = (0..records.len()).filter(|i| batch_of[*i] == b).collect();
        let (import_id, ids) = bench
            .stage_leniently(mine.iter().map(|i| records[*i].1.clone()), febrl.is_some())
            .await?;
        for (i, id) in mine.iter().zip(ids) {
            row_ids[*i] = id;
        }
        let (s, p, _) = bench.dedupe(import_id).await?;
        println!("batch {}: {} rows in {s:.1} s", b + 1, mine.len());
        (secs, peak) = (secs + s, peak.max(p));
        imports.push(import_id);
    }
    let links: HashMap<Uuid, Option<Uuid>> = sqlx::query_as::<_, (Uuid, Option<Uuid>)>(
        "SELECT id, contact_id FROM staged_rows WHERE import_id = ANY($1)",
    )
    .bind(&imports)
    .fetch_all(&bench.store.pool)
    .await?
    .into_iter()
    .collect();
    let (mut by_entity, mut by_contact, mut both) =
        (HashMap::new(), HashMap::new(), HashMap::new());
    let mut waiting = 0;
    for ((entity, _), row) in records.iter().zip(&row_ids) {
        *by_entity.entry(*entity).or_insert(0u64) += 1;
        match links.get(row).copied().flatten() {
            Some(contact) => {
                *by_contact.entry(contact).or_insert(0u64) += 1;
                *both.entry((contact, *entity)).or_insert(0u64) += 1;
            }
            None => waiting += 1,
        }
    }
    let truth: u64 = by_entity.values().map(|n| pairs(*n)).sum();
    let predicted: u64 = by_contact.values().map(|n| pairs(*n)).sum();
    let correct: u64 = both.values().map(|n| pairs(*n)).sum();
    let precision = if predicted == 0 {
        1.0
    } else {
        correct as f64 / predicted as f64
    };
    let recall = correct as f64 / truth.max(1) as f64;
    let f1 = 2.0 * precision * recall / (precision + recall).max(f64::EPSILON);
    println!(
        "dedupe: {} rows in {secs:.1} s; {} contacts for {} entities; {waiting} rows wait for a reviewer",
        records.len(),
        by_contact.len(),
        by_entity.len()
    );
    println!("pairs: {truth} true, {predicted} predicted, {correct} correct");
    println!(
        "precision {precision:.4} (target >= 0.99), recall {recall:.4} (target >= 0.95), F1 {f1:.4}; worker peak {peak:.0} MB"
    );
    bench.done().await;
    Ok(())
}

pub async fn speed(settings: &Settings, corpus: usize, rows: usize) -> anyhow::Result<()> {
    let bench = Bench::new(settings).await?;
    let mut rng = Rng(0x00C0_FFEE_D00D_0001);
    let entities: Vec<Entity> = (0..corpus).map(|i| Entity::new(&mut rng, i)).collect();
    let started = Instant::now();
    let (seed, _) = bench.stage(entities.iter().map(Entity::record)).await?;
    println!(
        "bench dedupe: corpus of {corpus} staged in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (secs, peak, cpu) = bench.dedupe(seed).await?;
    println!("corpus: {corpus} rows into an empty corpus in {secs:.1} s ({:.0} rows/s), worker peak {peak:.0} MB, worker CPU {cpu:.1} s", corpus as f64 / secs);

    // Half the new rows are variants of corpus contacts, half new businesses.
    let incoming = (0..rows).map(|i| {
        if i % 2 == 0 {
            let of = rng.below(corpus as u64) as usize;
            entities[of].variant(&mut rng)
        } else {
            Entity::new(&mut rng, corpus + i).record()
        }
    });
    let staged_at = Instant::now();
    let (batch, _) = bench
        .stage(incoming.collect::<Vec<_>>().into_iter())
        .await?;
    println!(
        "{rows} approved rows staged in {:.1} s",
        staged_at.elapsed().as_secs_f64()
    );
    let (secs, peak, cpu) = bench.dedupe(batch).await?;
    let (merged, created, waiting): (i32, i32, i64) = sqlx::query_as(
        "SELECT merged_rows, created_rows, (SELECT count(*) FROM staged_rows WHERE import_id = $1 AND status = 'approved')
         FROM imports WHERE id = $1",
    )
    .bind(batch)
    .fetch_one(&bench.store.pool)
    .await?;
    println!(
        "dedupe: {rows} rows against a {corpus}-contact corpus in {secs:.1} s ({:.0} rows/s; target < 300 s): \
         {merged} merged, {created} created, {waiting} for review; worker peak {peak:.0} MB, worker CPU {cpu:.1} s",
        rows as f64 / secs
    );
    bench.done().await;
    Ok(())
}
