//! `import`: read an uploaded batch, normalize and validate every row, stage it.
//!
//! The upload is streamed from Postgres a chunk at a time into the reading
//! threads of [`import_read`](crate::import_read), which hand back chunks of
//! rows encoded for `COPY`. Each chunk commits together with the batch's
//! checkpoint (`rows_done`) and the day's import-row usage. A few chunks are
//! in flight at once, each on its own connection: later chunks' `COPY`s run
//! while the oldest finishes, and they commit in file order.
//!
//! Idempotent: a resumed run re-reads the file but stages only rows after the
//! checkpoint, and the `(import_id, row_number)` key refuses a row staged
//! twice. A finished batch is left as it is.

use crate::import_read::{parse, ChunkReader, Event};
use anyhow::Context;
use async_trait::async_trait;
use bizcontacts_domain::Permission;
use bizcontacts_ingest::BatchError;
use bizcontacts_queue::args::{JobArgs, Worker};
use bizcontacts_queue::handler::{JobContext, JobError, RetryPolicy, Starter};
use bizcontacts_store::imports::{self, Import, ImportStatus, Progress};
use bizcontacts_store::staged_rows::{self, CopyRows};
use bizcontacts_store::{packages, tenants, usage, StoreError};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Chunk transactions open at once: their `COPY`s run side by side while
/// the oldest commits (one connection left a core idle). Three measured
/// better than two on 2 cores (bench import: 43-51k against 38-40k rows/s);
/// each costs a chunk of memory and a connection.
const CHUNKS_IN_FLIGHT: usize = 3;

/// How often the job's progress and cancellation are looked at.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Stage the upload of one batch.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportArgs {
    pub import_id: Uuid,
}

impl JobArgs for ImportArgs {
    const KIND: &'static str = "import";

    fn retry() -> RetryPolicy {
        RetryPolicy::new(5, Duration::from_secs(5), Duration::from_secs(300))
    }
}

pub struct ImportJob;

#[async_trait]
impl Worker for ImportJob {
    type Args = ImportArgs;

    fn starter(&self) -> Starter {
        Starter::Intake(Permission::ImportsWrite)
    }

    #[tracing::instrument(skip_all, fields(job_id = %ctx.job_id))]
    async fn work(&self, ctx: &mut JobContext, params: ImportArgs) -> Result<(), JobError> {
        let pool = ctx.pool().clone();
        let Some(batch) = open_batch(ctx, None, params.import_id).await? else {
            return Ok(());
        };
        match stage_all(ctx, &batch).await {
            Err(JobError::Cancelled) => {
                let job = ctx
                    .ledger()
                    .get(None, ctx.job_id)
                    .await
                    .context("load job")?;
                if job.cancel_requested {
                    // Asked to stop: what was staged goes, so nothing half-done is reviewed.
                    let mut tx = pool.begin().await?;
                    staged_rows::delete_all(&mut *tx, batch.id)
                        .await
                        .context("unstage")?;
                    imports::finish(
                        &mut tx,
                        batch.id,
                        ImportStatus::Cancelled,
                        Some("cancelled on request"),
                    )
                    .await
                    .context("cancel import")?;
                    tx.commit().await?;
                }
                Err(JobError::Cancelled)
            }
            other => other,
        }
    }
}

async fn stage_all(ctx: &mut JobContext, batch: &Import) -> Result<(), JobError> {
    let pool = ctx.pool().clone();
    let tenant = tenants::get(&pool, batch.tenant_id)
        .await
        .context("load tenant")?;
    let limits = packages::get(&pool, tenant.package)
        .await
        .context("load package")?;
    let (events_tx, mut events) = mpsc::channel::<Event>(2);
    let (chunks_tx, chunks) = mpsc::channel::<Result<Vec<u8>, ()>>(2);

    // Chunks flow from Postgres to the parser; both stop when the other side
    // goes. A failed fetch reaches the parser as a read error, never as the
    // end of the file, so a short read cannot pass for a complete batch.
    let fetch_pool = pool.clone();
    let import_id = batch.id;
    let mut fetcher = tokio::spawn(async move {
        for seq in 0.. {
            match imports::chunk(&fetch_pool, import_id, seq).await {
                Ok(Some(data)) => {
                    if chunks_tx.send(Ok(data)).await.is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = chunks_tx.send(Err(())).await;
                    return Err(e);
                }
            }
        }
        Ok::<(), StoreError>(())
    });
    let parser = {
        let (encoding, skip_to) = (batch.encoding, batch.rows_done);
        tokio::task::spawn_blocking(move || {
            parse(
                ChunkReader::new(chunks),
                encoding,
                import_id,
                skip_to,
                &events_tx,
            )
        })
    };

    let mut last_row = batch.rows_done;
    let mut staged_so_far = batch.counts.total;
    let mut in_flight: VecDeque<JoinHandle<Result<Staged, JobError>>> = VecDeque::new();
    let mut last_report = Instant::now();
    // Fires when the last chunk sent has committed: the next one waits for it.
    let mut previous: Option<oneshot::Receiver<()>> = None;
    let chunk = ChunkTarget {
        pool: pool.clone(),
        import_id: batch.id,
        tenant: batch.tenant_id,
        rows_per_day: limits.import_rows_per_day,
        used_up: Arc::default(),
    };
    let outcome = loop {
        let Some(event) = events.recv().await else {
            break Err(JobError::Retryable(anyhow::anyhow!(
                "parser stopped unexpectedly"
            )));
        };
        match event {
            Event::Layout(layout) => {
                imports::set_layout(
                    &pool,
                    batch.id,
                    &layout.delimiter_str(),
                    &layout.header,
                    &layout.mapping_names(),
                )
                .await
                .context("save layout")?;
            }
            Event::Rows {
                rows,
                last_row: last,
                bytes_read,
            } => {
                if in_flight.len() == CHUNKS_IN_FLIGHT {
                    let oldest = in_flight.pop_front().expect("chunks in flight");
                    let staged = match joined(oldest).await {
                        Ok(s) => s,
                        Err(e) => break Err(e),
                    };
                    staged_so_far += staged.granted;
                    if last_report.elapsed() >= REPORT_EVERY {
                        last_report = Instant::now();
                        if let Err(e) = report(ctx, batch, &staged, staged_so_far).await {
                            break Err(e);
                        }
                    }
                }
                let (committed, next_may_commit) = oneshot::channel();
                in_flight.push_back(tokio::spawn(chunk.clone().stage(
                    rows,
                    (last_row, last),
                    bytes_read,
                    (previous.take(), committed),
                )));
                previous = Some(next_may_commit);
                last_row = last;
            }
            Event::Failed(e) => {
                if let Ok(Err(fetch)) = (&mut fetcher).await {
                    break Err(JobError::Retryable(
                        anyhow::Error::from(fetch).context("read upload"),
                    ));
                }
                break Ok(Err(e));
            }
            Event::End {
                last_row: last,
                may_repeat,
            } => {
                last_row = last;
                // A resumed run did not see the rows staged before it.
                break Ok(Ok(may_repeat || batch.rows_done > 0));
            }
        }
    };
    // Chunks still in flight commit (in order) or fail on their own; wait
    // for them, whatever happened, so nothing commits after this run ends.
    let mut outcome = outcome;
    while let Some(task) = in_flight.pop_front() {
        let done = joined(task).await;
        if let (Err(e), Ok(_)) = (done, &outcome) {
            outcome = Err(e);
        }
    }
    // Stop the helpers whatever happened (dropping `events` ends the parser).
    drop(events);
    let _ = parser.await;
    fetcher.abort();

    let mut tx = pool.begin().await?;
    match outcome? {
        Err(BatchError(message)) => {
            imports::finish(&mut tx, batch.id, ImportStatus::Failed, Some(&message))
                .await
                .context("fail import")?;
            tx.commit().await?;
            Err(JobError::Permanent(anyhow::anyhow!(message)))
        }
        Ok(may_repeat) => {
            let counts = close(
                ctx,
                &mut tx,
                batch.id,
                limits.import_rows_per_day,
                may_repeat,
                last_row as i64,
            )
            .await?;
            tx.commit().await?;
            if i64::from(counts.total) >= staged_rows::ANALYZE_AFTER_ROWS {
                // Outside the transaction: a failure here only costs speed.
                if let Err(e) = staged_rows::analyze(&pool).await {
                    tracing::warn!(error = %e, "could not analyze staged_rows");
                }
            }
            tracing::info!(import_id = %batch.id, rows = last_row, staged = counts.total, "import staged");
            Ok(())
        }
    }
}

/// The batch a staging job works on, or None when an earlier run already
/// finished it (and died before the ledger heard): the job is then marked
/// succeeded here. A batch that does not exist (for `tenant`) is permanent.
pub(crate) async fn open_batch(
    ctx: &mut JobContext,
    tenant: Option<bizcontacts_domain::TenantId>,
    import_id: Uuid,
) -> Result<Option<Import>, JobError> {
    let pool = ctx.pool().clone();
    let batch = match imports::get(&pool, tenant, import_id).await {
        Err(StoreError::NotFound) => {
            return Err(JobError::Permanent(anyhow::anyhow!(
                "import {import_id} does not exist"
            )))
        }
        other => other.context("load import")?,
    };
    if matches!(
        batch.status,
        ImportStatus::Queued | ImportStatus::Processing
    ) {
        return Ok(Some(batch));
    }
    let mut tx = pool.begin().await?;
    ctx.complete_in(&mut tx).await?;
    tx.commit().await?;
    Ok(None)
}

/// Close a batch whose rows are all staged, in the caller's transaction
/// with the job's success: flag rows that repeat an earlier row exactly
/// (when any may), set the final status and its message. Shared by every
/// job that stages rows (`import`, `crm_pull`), so a batch reads the same
/// whatever it came from.
pub(crate) async fn close(
    ctx: &mut JobContext,
    tx: &mut sqlx::PgConnection,
    import_id: Uuid,
    rows_per_day: i32,
    may_repeat: bool,
    rows: i64,
) -> Result<imports::Counts, JobError> {
    let duplicates = if may_repeat {
        staged_rows::flag_duplicates(&mut *tx, import_id)
            .await
            .context("flag duplicates")?
    } else {
        0
    };
    let counts = imports::get(&mut *tx, None, import_id)
        .await
        .context("reload import")?
        .counts;
    let (status, message) = closing_message(&counts, rows_per_day, duplicates);
    imports::set_duplicates(&mut *tx, import_id, duplicates as i32)
        .await
        .context("count duplicates")?;
    imports::finish(tx, import_id, status, message.as_deref())
        .await
        .context("finish import")?;
    ctx.progress(rows, Some(rows), message.as_deref()).await?;
    ctx.complete_in(tx).await?;
    Ok(counts)
}

/// The batch's final status and what the user should know about it.
fn closing_message(
    counts: &imports::Counts,
    limit: i32,
    duplicates: i64,
) -> (ImportStatus, Option<String>) {
    if counts.total == 0 && counts.not_staged == 0 {
        return (
            ImportStatus::Failed,
            Some("the file has a header row but no data rows".into()),
        );
    }
    let mut notes = Vec::new();
    if counts.not_staged > 0 {
        notes.push(format!(
            "{} rows were not staged: the package allows {limit} import rows per day (resets at 00:00 UTC)",
            counts.not_staged
        ));
    }
    if duplicates > 0 {
        notes.push(format!(
            "{duplicates} rows repeat an earlier row of this file exactly"
        ));
    }
    (
        ImportStatus::Staged,
        (!notes.is_empty()).then(|| notes.join("; ")),
    )
}

/// Where a chunk goes: the batch, its tenant's daily allowance.
#[derive(Clone)]
struct ChunkTarget {
    pool: PgPool,
    import_id: Uuid,
    tenant: bizcontacts_domain::TenantId,
    rows_per_day: i32,
    /// Set once a chunk was refused rows: the day's allowance is used up, so
    /// later chunks skip the early `COPY` they would only undo.
    used_up: Arc<AtomicBool>,
}

/// What a committed chunk reports.
struct Staged {
    granted: i32,
    last_row: i32,
    bytes_read: u64,
}

impl ChunkTarget {
    /// Stage one chunk (rows after `after_row` up to `last_row`) in its own
    /// transaction. The `COPY` runs at once, beside the chunk before it; the
    /// rest waits until that chunk has committed (`previous`), so chunks
    /// commit in file order, the day's allowance is granted in that order, and
    /// rows past it are removed before anyone can see them (or, once the
    /// allowance is known to be used up, only granted rows are copied).
    /// `committed` tells the next chunk; dropped unsent, it tells it to give up.
    async fn stage(
        self,
        rows: CopyRows,
        (after_row, last_row): (i32, i32),
        bytes_read: u64,
        (previous, committed): (Option<oneshot::Receiver<()>>, oneshot::Sender<()>),
    ) -> Result<Staged, JobError> {
        let mut tx = self.pool.begin().await?;
        let copied_early = !self.used_up.load(Ordering::Relaxed);
        if copied_early {
            staged_rows::copy(&mut tx, &rows, rows.len())
                .await
                .context("stage rows")?;
        }
        if let Some(previous) = previous {
            previous.await.map_err(|_| {
                JobError::Retryable(anyhow::anyhow!(
                    "the chunk before row {after_row} did not commit"
                ))
            })?;
        }
        let granted = usage::consume_import_rows(
            &mut tx,
            self.tenant,
            chrono::Utc::now().date_naive(),
            rows.len() as i32,
            self.rows_per_day,
        )
        .await
        .context("import rows per day")?;
        if (granted as usize) < rows.len() {
            self.used_up.store(true, Ordering::Relaxed);
        }
        match rows.row_number(granted as usize) {
            Some(first_refused) if copied_early => {
                staged_rows::delete_from(&mut *tx, self.import_id, first_refused)
                    .await
                    .context("unstage rows over the daily limit")?;
            }
            // (The allowance may have come back at midnight.)
            _ if !copied_early && granted > 0 => {
                staged_rows::copy(&mut tx, &rows, granted as usize)
                    .await
                    .context("stage rows")?;
            }
            _ => {}
        }
        let valid = rows.valid_in_first(granted as usize) as i32;
        imports::advance(
            &mut *tx,
            self.import_id,
            Progress {
                after_row,
                last_row,
                valid,
                invalid: granted - valid,
                not_staged: rows.len() as i32 - granted,
            },
        )
        .await
        .context("checkpoint")?;
        tx.commit().await?;
        let _ = committed.send(());
        Ok(Staged {
            granted,
            last_row,
            bytes_read,
        })
    }
}

/// The result of a chunk's task (a panic or abort is worth a retry).
async fn joined(task: JoinHandle<Result<Staged, JobError>>) -> Result<Staged, JobError> {
    task.await
        .map_err(|e| JobError::Retryable(anyhow::anyhow!("chunk task ended: {e}")))?
}

/// Progress for the ledger, and the place where a cancelled run stops.
async fn report(
    ctx: &mut JobContext,
    batch: &Import,
    staged: &Staged,
    staged_so_far: i32,
) -> Result<(), JobError> {
    let message = format!(
        "{staged_so_far} rows staged; {} of {} bytes read",
        staged.bytes_read.min(batch.byte_size as u64),
        batch.byte_size
    );
    ctx.progress(staged.last_row as i64, None, Some(&message))
        .await?;
    ctx.checkpoint().await
}
