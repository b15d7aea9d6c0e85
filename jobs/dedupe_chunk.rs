//! One chunk of a batch's dedupe: read what it needs from the corpus, then
//! plan it ([`crate::dedupe_plan`]).
//!
//! A chunk is read in one of two ways:
//! - in its own transaction under the corpus lock, rows locked
//!   ([`Read::Lock`]): what the job always did;
//! - ahead ([`Read::Ahead`]), on a second connection while the chunk
//!   before it writes: the worker reads and plans while Postgres writes,
//!   instead of each waiting for the other. That chunk holds the lock and
//!   has not committed, so the reads see the corpus as it was before it,
//!   and its writes ([`ChunkWrites`]) are laid over them: the contacts it
//!   created or changed, the keys it filed. The result is what reading
//!   after its commit would give. The job takes the plan only if its next
//!   hold of the lock follows right on (no other writer in between) and
//!   the rows are the same at the same versions (`crate::dedupe`).

use crate::dedupe_plan::{Placed, Plan};
use crate::parallel;
use anyhow::Context;
use bizcontacts_matching::{distinct_block_ids, BlockId, Keyed, Matcher};
use bizcontacts_queue::handler::JobError;
use bizcontacts_store::corpus::{self, ChunkWrites, Contact, PendingRow, Read};
use bizcontacts_store::erasure;
use sqlx::PgConnection;
use std::collections::{BTreeSet, HashMap};
use uuid::Uuid;

/// What a chunk's plan needs from the corpus.
struct Inputs {
    rows: Vec<PendingRow>,
    keyed: Vec<Keyed>,
    decisions: HashMap<Uuid, Vec<(Uuid, bool)>>,
    /// Per row: the contact it must join (a correction's target or a
    /// reviewer's "same"), resolved.
    targets: Vec<Option<Uuid>>,
    contacts: Vec<Contact>,
    hits: Vec<(BlockId, Uuid)>,
    over_cap: Vec<BlockId>,
    erased: Vec<(BlockId, Uuid)>,
}

/// A planned chunk, not yet written.
pub struct Planned {
    pub plan: Plan,
    /// (id, version) of its rows, in row order.
    pub rows: Vec<(Uuid, i64)>,
    pub last_row: Option<i32>,
    pub merged: i64,
    pub created: i64,
    pub waiting: i64,
}

/// What every chunk of one batch's dedupe shares.
pub struct Chunker<'a> {
    pub import_id: Uuid,
    /// Rows per chunk.
    pub limit: i64,
    /// `dedupe.max_block_size`.
    pub cap: usize,
    pub matcher: &'a Matcher,
    /// The batch is a correction.
    pub correction: bool,
}

impl Chunker<'_> {
    /// Read and plan the chunk after row `after`, in `tx`, under the lock.
    pub async fn read_locked(
        &self,
        tx: &mut PgConnection,
        after: i32,
    ) -> Result<Planned, JobError> {
        let inputs = read(tx, self, after, Read::Lock, None).await?;
        plan(inputs, self).await
    }

    /// Read and plan the chunk after row `after` on `spare`, a connection
    /// the job took before holding any lock (so waiting for the pool never
    /// lengthens a hold), while the chunk before it, which took the lock at
    /// `epoch`, writes `writes`.
    pub async fn read_ahead(
        &self,
        spare: &mut PgConnection,
        after: i32,
        writes: &ChunkWrites,
        epoch: i64,
    ) -> Result<Ahead, JobError> {
        let mut conn = sqlx::Connection::begin(spare).await?;
        corpus::read_settings(&mut conn).await.context("settings")?;
        let inputs = read(&mut conn, self, after, Read::Ahead, Some(writes)).await?;
        // Its locks end here, before the chunk before commits: the move of
        // recent keys at that commit truncates a table these reads touched.
        conn.commit().await?;
        Ok(Ahead {
            epoch,
            planned: plan(inputs, self).await?,
        })
    }
}

/// The next chunk, planned while the one before it (which took the lock
/// at `epoch`) wrote.
pub struct Ahead {
    epoch: i64,
    pub planned: Planned,
}

impl Ahead {
    /// Whether the plan is what reading now, under the lock, would give: no
    /// other writer held the lock since the chunk before (the epochs follow
    /// on), and the rows after `after` up to the plan's last are the same
    /// rows at the same versions (none rejected, edited or newly pending),
    /// now locked as [`Read::Lock`] locks them.
    pub async fn holds(
        &self,
        tx: &mut PgConnection,
        chunker: &Chunker<'_>,
        after: i32,
        epoch: i64,
    ) -> Result<bool, JobError> {
        let Some(last) = self.planned.last_row else {
            return Ok(false);
        };
        if epoch != self.epoch + 1 {
            return Ok(false);
        }
        let now = corpus::relock_rows(tx, chunker.import_id, after, last)
            .await
            .context("locking rows")?;
        Ok(now == self.planned.rows)
    }
}

/// Read a chunk's rows after `after` and what they may join. `ahead`: the
/// writes of the chunk before, not yet visible to `conn` (see the top).
async fn read(
    conn: &mut PgConnection,
    chunker: &Chunker<'_>,
    after: i32,
    how: Read,
    ahead: Option<&ChunkWrites>,
) -> Result<Inputs, JobError> {
    let cap = chunker.cap;
    let rows = corpus::pending_rows(&mut *conn, chunker.import_id, after, chunker.limit, how)
        .await
        .context("reading approved rows")?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let decisions = corpus::decisions(&mut *conn, &ids)
        .await
        .context("decisions")?;
    let mut targets = Vec::with_capacity(rows.len());
    for row in &rows {
        let named = row.target.or_else(|| {
            decisions
                .get(&row.id)
                .and_then(|d| d.iter().find(|(_, same)| *same).map(|(c, _)| *c))
        });
        let resolved = match named {
            Some(id) => corpus::resolve(conn, id).await.context("resolving")?,
            None => None,
        };
        targets.push(resolved);
    }
    let any_erased = erasure::any(&mut *conn).await.context("erasures")?;
    let (rows, keyed) = blocking(move || {
        let keyed = parallel::map(&rows, |r| Keyed::new(&r.values.record(), any_erased));
        (rows, keyed)
    })
    .await?;
    let keys = distinct_block_ids(keyed.iter().flat_map(|k| k.block_ids.iter().copied()));
    let (mut hits, mut over_cap) = corpus::by_keys(&mut *conn, &keys, cap)
        .await
        .context("key lookup")?;
    if let Some(w) = ahead {
        let filed = w
            .keys
            .iter()
            .filter(|(k, _)| keys.binary_search(k).is_ok())
            .copied();
        (hits, over_cap) = corpus::cap_hits(hits.into_iter().chain(filed).collect(), over_cap, cap);
    }
    let wanted: BTreeSet<Uuid> = hits
        .iter()
        .map(|(_, id)| *id)
        .chain(targets.iter().flatten().copied())
        .collect();
    // What the chunk before wrote wins over what `conn` still sees.
    let written: HashMap<Uuid, &Contact> = ahead
        .into_iter()
        .flat_map(|w| w.created.iter().chain(&w.updated))
        .filter(|c| wanted.contains(&c.id))
        .map(|c| (c.id, c))
        .collect();
    let stored: Vec<Uuid> = wanted
        .into_iter()
        .filter(|id| !written.contains_key(id))
        .collect();
    let mut contacts = corpus::load(&mut *conn, &stored)
        .await
        .context("loading contacts")?;
    contacts.extend(written.into_values().cloned());
    let tombstones = distinct_block_ids(keyed.iter().flat_map(|k| k.tombstone_ids.iter().copied()));
    let erased = if tombstones.is_empty() {
        vec![]
    } else {
        erasure::by_keys(&mut *conn, &tombstones)
            .await
            .context("erased key lookup")?
    };
    Ok(Inputs {
        rows,
        keyed,
        decisions,
        targets,
        contacts,
        hits,
        over_cap,
        erased,
    })
}

/// Place every row of the chunk, on a blocking thread (it is CPU work, and
/// the chunk before may be writing from this task meanwhile).
async fn plan(inputs: Inputs, chunker: &Chunker<'_>) -> Result<Planned, JobError> {
    let (matcher, cap, correction) = (chunker.matcher.clone(), chunker.cap, chunker.correction);
    blocking(move || {
        let Inputs {
            rows,
            keyed,
            decisions,
            targets,
            contacts,
            hits,
            over_cap,
            erased,
        } = inputs;
        let mut plan = Plan::new(matcher, cap, contacts, hits, over_cap).with_erased(erased);
        let (mut merged, mut created, mut waiting) = (0, 0, 0);
        for ((row, target), keyed) in rows.iter().zip(&targets).zip(keyed) {
            let excluded: Vec<Uuid> = decisions
                .get(&row.id)
                .map(|d| {
                    d.iter()
                        .filter(|(_, same)| !same)
                        .map(|(c, _)| *c)
                        .collect()
                })
                .unwrap_or_default();
            match plan.place(row, keyed, *target, &excluded, correction) {
                Placed::Merged => merged += 1,
                Placed::Created => created += 1,
                Placed::Possible => waiting += 1,
            }
        }
        Planned {
            plan,
            rows: rows.iter().map(|r| (r.id, r.version)).collect(),
            last_row: rows.last().map(|r| r.row_number),
            merged,
            created,
            waiting,
        }
    })
    .await
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, JobError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => JobError::from(anyhow::anyhow!("planning was cancelled: {e}")),
        })
}
