//! `dedupe` with `sweep`: re-check the whole corpus for contacts that are
//! one, in chunks of contacts in id order, with a resumable cursor.
//!
//! Each pair is looked at once (from its lower id). Without `apply` a sweep
//! only records the pairs that score as possible or same matches; with it,
//! pairs scoring as the same contact are merged: the higher id's rows move
//! to the lower id, which is derived again, and the other is retired
//! (`merged_into`). Merging takes the corpus lock like any dedupe chunk.
//!
//! Every sweep also files each contact under the current blocking keys:
//! contacts filed before a key was added (the typo-proof keys of issue 17)
//! are found by it from then on. Pairs only such a key reveals are found by
//! the sweep after that one, once both sides carry it.

use crate::dedupe::DedupeJob;
use crate::parallel;
use anyhow::Context;
use bizcontacts_matching::{distinct_block_ids, BlockId, Prepared, Verdict};
use bizcontacts_queue::handler::{JobContext, JobError};
use bizcontacts_store::{corpus, sweeps};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use uuid::Uuid;

pub async fn run(ctx: &mut JobContext, job: &DedupeJob, apply: bool) -> Result<(), JobError> {
    let pool = ctx.pool().clone();
    let (matcher, chunk) = (&job.matcher(&pool).await?, job.chunk);
    let mut state = sweeps::start(&pool, ctx.job_id, apply)
        .await
        .context("sweep state")?;
    let total = sweeps::count_active(&pool).await.context("counting")?;
    loop {
        ctx.checkpoint().await?;
        let mut tx = pool.begin().await?;
        // Even a report files keys: under the lock, like every writer of
        // contact_keys, so no two writers insert the same keys in two orders.
        corpus::lock(&mut tx).await.context("corpus lock")?;
        let batch = sweeps::active_after(&mut tx, state.cursor, chunk)
            .await
            .context("reading contacts")?;
        let Some(last) = batch.last() else {
            ctx.complete_in(&mut tx).await?;
            tx.commit().await?;
            tracing::info!(
                checked = state.checked,
                candidates = state.candidates,
                merged = state.merged,
                "sweep finished"
            );
            return Ok(());
        };
        let last = last.id;
        // Each contact's keys, computed once: filed, looked up, then read per pair.
        let prepared: Vec<(Uuid, Prepared, Vec<BlockId>)> = parallel::map(&batch, |c| {
            let p = Prepared::new(&c.values.record());
            let keys = p.block_ids();
            (c.id, p, keys)
        });
        let filed: Vec<(BlockId, Uuid)> = prepared
            .iter()
            .flat_map(|(id, _, keys)| keys.iter().map(move |k| (*k, *id)))
            .collect();
        let keys = distinct_block_ids(filed.iter().map(|(k, _)| *k));
        let (mut hits, capped) = corpus::by_keys(&mut *tx, &keys, job.max_block_size)
            .await
            .context("key lookup")?;
        // File only what a contact lacks: re-filing every key would send
        // the whole corpus through the recent level. (A key over the cap
        // is filed again; the move into the main index keeps one.)
        let known: HashSet<(BlockId, Uuid)> = hits.iter().copied().collect();
        let missing: Vec<(BlockId, Uuid)> =
            filed.into_iter().filter(|p| !known.contains(p)).collect();
        corpus::add_keys(&mut tx, &missing)
            .await
            .context("filing current keys")?;
        hits.extend(
            missing
                .iter()
                .filter(|(k, _)| capped.binary_search(k).is_err()),
        );
        let mut by_key: HashMap<BlockId, Vec<Uuid>> = HashMap::new();
        for (k, id) in &hits {
            by_key.entry(*k).or_default().push(*id);
        }
        let others: Vec<Uuid> = hits
            .iter()
            .map(|(_, id)| *id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut loaded = corpus::load(&mut *tx, &others)
            .await
            .context("loading candidates")?;
        loaded.retain(|c| c.active);
        let loaded: HashMap<Uuid, Prepared> = loaded
            .iter()
            .map(|c| c.id)
            .zip(parallel::map(&loaded, |c| {
                Prepared::new(&c.values.record())
            }))
            .collect();

        let mut found = Vec::new();
        for (a, pa, a_keys) in &prepared {
            let candidates: BTreeSet<Uuid> = a_keys
                .iter()
                .filter_map(|k| by_key.get(k))
                .flatten()
                .filter(|b| *b > a)
                .copied()
                .collect();
            for b in candidates {
                let Some(pb) = loaded.get(&b) else { continue };
                let s = matcher.score(pa, pb);
                match matcher.verdict(s) {
                    Verdict::Different => {}
                    v => found.push((*a, b, s, apply && v == Verdict::Same)),
                }
            }
        }
        // Merges: every contact goes to the lowest id it is the same as.
        let mut into: BTreeMap<Uuid, Uuid> = BTreeMap::new();
        for (a, b, _, merge) in &found {
            if *merge && !into.contains_key(b) {
                let mut root = *a;
                while let Some(next) = into.get(&root) {
                    root = *next;
                }
                if root != *b {
                    into.insert(*b, root);
                }
            }
        }
        let merges: Vec<(Uuid, Uuid)> = into
            .iter()
            .map(|(from, to)| {
                let mut root = *to;
                while let Some(next) = into.get(&root) {
                    root = *next;
                }
                (*from, root)
            })
            .collect();
        if !merges.is_empty() {
            corpus::merge_contacts(&mut tx, &merges)
                .await
                .context("merging")?;
        }
        let found: Vec<(Uuid, Uuid, f32, bool)> = found
            .into_iter()
            .map(|(a, b, s, _)| (a, b, s, into.contains_key(&b)))
            .collect();
        state = sweeps::advance(
            &mut tx,
            ctx.job_id,
            last,
            batch.len() as i64,
            &found,
            merges.len() as i64,
        )
        .await
        .context("recording the chunk")?;
        job.commit_chunk(tx, &pool).await?;
        let message = format!(
            "{} candidate pairs, {} merged",
            state.candidates, state.merged
        );
        ctx.progress(state.checked, Some(total), Some(&message))
            .await?;
    }
}
