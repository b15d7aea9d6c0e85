//! `dedupe`: approved staged rows become canonical contacts, once.
//!
//! Two modes, one kind:
//! - `{import_id}` (enqueued by a review): the batch's approved rows, a
//!   chunk per transaction, in row order. Each chunk takes the corpus lock,
//!   loads the contacts sharing a blocking key with its rows, plans merges
//!   in memory ([`crate::dedupe_plan`]) and writes them with the rows'
//!   links and the batch's counters; when the recent level of the blocking
//!   index is full, the chunk moves it into the main one. While a chunk
//!   writes, the next one is read and planned on a second connection
//!   ([`crate::dedupe_chunk`], `dedupe.read_ahead`), so the worker's CPU
//!   and Postgres's writes overlap instead of taking turns.
//! - `{sweep: true, apply}` (platform admins): the whole corpus in chunks,
//!   see [`crate::dedupe_sweep`].
//!
//! Idempotent: a chunk's merges and its rows' new status commit together,
//! so a re-run after a crash only sees the rows not yet merged; a created
//! contact takes its first row's id, so it cannot be created twice.

use crate::dedupe_chunk::{Ahead, Chunker};
use crate::dedupe_sweep;
use anyhow::Context;
use async_trait::async_trait;
use bizcontacts_domain::batch::Source;
use bizcontacts_domain::Permission;
use bizcontacts_matching::Matcher;
use bizcontacts_queue::args::{JobArgs, Worker};
use bizcontacts_queue::handler::{JobContext, JobError, RetryPolicy, Starter};
use bizcontacts_store::{corpus, imports, staged_rows, term_frequencies, StoreError};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeArgs {
    /// The batch whose approved rows to take in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_id: Option<Uuid>,
    /// Re-check the whole corpus instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sweep: bool,
    /// With `sweep`: merge what scores as the same contact; otherwise only report.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub apply: bool,
}

impl DedupeArgs {
    /// Take in a batch's approved rows.
    pub fn batch(import_id: Uuid) -> Self {
        DedupeArgs {
            import_id: Some(import_id),
            ..Self::default()
        }
    }

    /// Re-check the whole corpus; merge only with `apply`.
    pub fn sweep(apply: bool) -> Self {
        DedupeArgs {
            sweep: true,
            apply,
            ..Self::default()
        }
    }
}

impl JobArgs for DedupeArgs {
    const KIND: &'static str = "dedupe";

    fn retry() -> RetryPolicy {
        RetryPolicy::new(8, Duration::from_secs(5), Duration::from_secs(300))
    }

    fn check(&self) -> Result<(), String> {
        match (self.import_id, self.sweep) {
            (Some(_), true) => Err("give either import_id or sweep, not both".into()),
            (None, false) => Err("give import_id, or sweep: true".into()),
            (Some(_), false) if self.apply => Err("apply only goes with sweep".into()),
            _ => Ok(()),
        }
    }
}

pub struct DedupeJob {
    pub matcher: Matcher,
    /// `dedupe.max_block_size`.
    pub max_block_size: usize,
    /// Rows (or contacts, when sweeping) per transaction.
    pub chunk: i64,
    /// `dedupe.recent_keys_max`.
    pub recent_keys_max: i64,
    /// `dedupe.term_frequency_*`.
    pub term_frequencies: term_frequencies::Policy,
    /// `dedupe.read_ahead`: plan the next chunk while this one writes.
    pub read_ahead: bool,
}

#[async_trait]
impl Worker for DedupeJob {
    type Args = DedupeArgs;

    fn starter(&self) -> Starter {
        Starter::Intake(Permission::ImportsReview)
    }

    #[tracing::instrument(skip_all, fields(job_id = %ctx.job_id))]
    async fn work(&self, ctx: &mut JobContext, params: DedupeArgs) -> Result<(), JobError> {
        if params.sweep && ctx.tenant_id.is_some() {
            // Sweeps span every tenant's contributions: platform only.
            return Err(JobError::Permanent(anyhow::anyhow!(
                "a sweep is started by a platform admin, never for a tenant"
            )));
        }
        match params.import_id {
            Some(id) => self.take_in(ctx, id).await,
            None => dedupe_sweep::run(ctx, self, params.apply).await,
        }
    }
}

impl DedupeJob {
    /// The matcher with the corpus's current term frequencies (counted
    /// first when stale, `term_frequencies::current`).
    pub(crate) async fn matcher(&self, pool: &sqlx::PgPool) -> Result<Matcher, JobError> {
        let tf = term_frequencies::current(pool, self.term_frequencies)
            .await
            .context("term frequencies")?;
        Ok(self.matcher.clone().with_term_frequencies(&tf))
    }

    /// End a chunk: [`corpus::move_recent_keys`] when the recent level is
    /// full (logged: a move holds the corpus lock for seconds at millions of
    /// keys), commit, then [`corpus::vacuum_keys`] after a move, so the
    /// next chunks' look-ups read the main level's index alone.
    pub(crate) async fn commit_chunk(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
        pool: &sqlx::PgPool,
    ) -> Result<(), JobError> {
        let started = std::time::Instant::now();
        let moved = corpus::move_recent_keys(&mut tx, self.recent_keys_max)
            .await
            .context("moving recent keys")?;
        tx.commit().await?;
        if moved > 0 {
            let ms = started.elapsed().as_millis() as u64;
            // The chunk is committed; a vacuum that fails costs look-up
            // speed, not correctness, and the next move tries again.
            if let Err(e) = corpus::vacuum_keys(pool).await {
                tracing::warn!(error = %e, "vacuum of contact_keys after a move failed");
            }
            let vacuum_ms = started.elapsed().as_millis() as u64 - ms;
            tracing::info!(
                moved,
                ms,
                vacuum_ms,
                "recent blocking keys moved into the main index"
            );
        }
        Ok(())
    }

    async fn take_in(&self, ctx: &mut JobContext, import_id: Uuid) -> Result<(), JobError> {
        let pool = ctx.pool().clone();
        let batch = match imports::get(&pool, ctx.tenant_id, import_id).await {
            Err(StoreError::NotFound) => {
                return Err(JobError::Permanent(anyhow::anyhow!(
                    "import {import_id} does not exist"
                )))
            }
            other => other.context("loading the batch")?,
        };
        let correction = batch.source == Source::Correction;
        let total = corpus::count_pending(&pool, import_id)
            .await
            .context("counting rows")?;
        if total >= staged_rows::ANALYZE_AFTER_ROWS {
            // The review just turned the batch's rows from valid to
            // approved: statistics taken before it say no row is approved,
            // and every chunk's read would walk the whole table
            // (docs/benchmarks.md, the 5,000,000-contact seed).
            staged_rows::analyze(&pool).await.context("analyze")?;
        }
        let matcher = self.matcher(&pool).await?;
        let (mut done, mut after) = (0i64, 0i32);
        let (mut merged, mut created, mut waiting) = (0i64, 0i64, 0i64);
        let mut capped = 0;
        let chunker = Chunker {
            import_id,
            limit: self.chunk,
            cap: self.max_block_size,
            matcher: &matcher,
            correction,
        };
        let mut ahead: Option<Ahead> = None;
        // The read ahead's connection, one per running job, taken here
        // while no lock is held; without one, every chunk is read under
        // the lock.
        let mut spare = match self.read_ahead {
            true => pool
                .acquire()
                .await
                .inspect_err(|e| tracing::warn!(error = %e, "no connection to read ahead with"))
                .ok(),
            false => None,
        };
        let (mut taken_ahead, mut read_again) = (0u64, 0u64);
        loop {
            ctx.checkpoint().await?;
            let mut tx = pool.begin().await?;
            let epoch = corpus::lock(&mut tx).await.context("corpus lock")?;
            // A quarantined batch contributes nothing more.
            let quarantined = imports::is_quarantined(&mut *tx, import_id)
                .await
                .context("batch")?;
            let chunk = match ahead.take() {
                _ if quarantined => None,
                Some(a) if a.holds(&mut tx, &chunker, after, epoch).await? => {
                    taken_ahead += 1;
                    Some(a.planned)
                }
                stale => {
                    read_again += u64::from(stale.is_some_and(|a| a.planned.last_row.is_some()));
                    Some(chunker.read_locked(&mut tx, after).await?)
                }
            };
            let Some((planned, last)) = chunk.and_then(|c| c.last_row.map(|l| (c, l))) else {
                ctx.complete_in(&mut tx).await?;
                tx.commit().await?;
                tracing::info!(
                    %import_id, merged, created, waiting, capped, taken_ahead, read_again,
                    "dedupe finished"
                );
                return Ok(());
            };
            after = last;
            let rows = planned.rows.len() as i64;
            (merged, created, waiting) = (
                merged + planned.merged,
                created + planned.created,
                waiting + planned.waiting,
            );
            capped += planned.plan.capped();
            let writes = planned.plan.into_writes();
            let write = corpus::write(&mut tx, import_id, &writes);
            if let Some(spare) = spare.as_deref_mut() {
                let next = chunker.read_ahead(spare, after, &writes, epoch);
                let (written, next) = tokio::join!(write, next);
                written.context("writing merges")?;
                // A failed read ahead costs its time: the chunk is read
                // again under the lock.
                ahead = next
                    .inspect_err(
                        |e| tracing::warn!(error = %e, "reading the next chunk ahead failed"),
                    )
                    .ok();
            } else {
                write.await.context("writing merges")?;
            }
            self.commit_chunk(tx, &pool).await?;
            done += rows;
            if corpus::analyze_due(done, rows, total) {
                corpus::analyze(&pool).await.context("analyze")?;
            }
            // Keys over the cap are counted per chunk: one key met in two
            // chunks counts twice.
            let mut message = format!(
                "{merged} merged, {created} created, {waiting} for review, \
                 {capped} blocking keys over the cap of {}",
                self.max_block_size
            );
            if spare.is_some() {
                // Plans read again mean other corpus writers in between.
                message +=
                    &format!("; {taken_ahead} chunks planned ahead, {read_again} read again");
            }
            ctx.progress(done, Some(total), Some(&message)).await?;
        }
    }
}
