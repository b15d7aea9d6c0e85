//! `import`: read an uploaded batch, normalize and validate every row, stage it.
//!
//! The upload is streamed from Postgres a chunk at a time into a reader on a
//! blocking thread, which cuts records into chunks of [`ROWS_PER_TX`]; a
//! stager thread normalizes, validates and encodes each chunk for `COPY` on
//! all cores while the next one is read. Each chunk commits together with
//! the batch's checkpoint (`rows_done`) and the day's import-row usage.
//!
//! Idempotent: a resumed run re-reads the file but stages only rows after the
//! checkpoint, and the `(import_id, row_number)` key refuses a row staged
//! twice. A finished batch is left as it is.

use anyhow::Context;
use async_trait::async_trait;
use bizcontacts_domain::Permission;
use bizcontacts_ingest::stage::is_blank;
use bizcontacts_ingest::{BatchError, CsvRows, Layout, Stager, StringRecord};
use bizcontacts_queue::handler::{
    params_decode_as, JobContext, JobError, JobHandler, RetryPolicy, Starter,
};
use bizcontacts_store::imports::{self, Encoding, Import, ImportStatus, Progress};
use bizcontacts_store::staged_rows::{self, CopyRows};
use bizcontacts_store::{packages, tenants, usage, StoreError};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;

pub const KIND: &str = "import";

/// Rows per staging transaction: large enough for COPY to shine, small
/// enough that a crash loses little work and memory stays flat.
pub const ROWS_PER_TX: usize = 5_000;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub import_id: Uuid,
}

pub struct ImportJob;

/// What the parser thread reports.
enum Event {
    Layout(Layout),
    Rows {
        rows: CopyRows,
        last_row: i32,
        bytes_read: u64,
    },
    Failed(BatchError),
    End {
        last_row: i32,
    },
}

#[async_trait]
impl JobHandler for ImportJob {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn starter(&self) -> Starter {
        Starter::Intake(Permission::ImportsWrite)
    }

    fn retry(&self) -> RetryPolicy {
        RetryPolicy::new(5, Duration::from_secs(5), Duration::from_secs(300))
    }

    fn validate(&self, params: &serde_json::Value) -> Result<(), String> {
        params_decode_as::<Params>(params)
    }

    #[tracing::instrument(skip_all, fields(job_id = %ctx.job_id))]
    async fn run(&self, ctx: &mut JobContext) -> Result<(), JobError> {
        let params: Params = ctx.params()?;
        let pool = ctx.pool().clone();
        let batch = match imports::get(&pool, None, params.import_id).await {
            Err(StoreError::NotFound) => {
                return Err(JobError::Permanent(anyhow::anyhow!(
                    "import {} does not exist",
                    params.import_id
                )))
            }
            other => other.context("load import")?,
        };
        if !matches!(
            batch.status,
            ImportStatus::Queued | ImportStatus::Processing
        ) {
            // Finished by an earlier run that died before the ledger heard of it.
            let mut tx = pool.begin().await?;
            ctx.complete_in(&mut tx).await?;
            tx.commit().await?;
            return Ok(());
        }
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
                let mut tx = pool.begin().await?;
                let granted = usage::consume_import_rows(
                    &mut tx,
                    batch.tenant_id,
                    chrono::Utc::now().date_naive(),
                    rows.len() as i32,
                    limits.import_rows_per_day,
                )
                .await
                .context("import rows per day")?;
                staged_rows::copy(&mut tx, &rows, granted as usize)
                    .await
                    .context("stage rows")?;
                let valid = rows.valid_in_first(granted as usize) as i32;
                imports::advance(
                    &mut *tx,
                    batch.id,
                    Progress {
                        last_row: last,
                        valid,
                        invalid: granted - valid,
                        not_staged: rows.len() as i32 - granted,
                    },
                )
                .await
                .context("checkpoint")?;
                tx.commit().await?;
                last_row = last;
                staged_so_far += granted;
                let message = format!(
                    "{staged_so_far} rows staged; {} of {} bytes read",
                    bytes_read.min(batch.byte_size as u64),
                    batch.byte_size
                );
                ctx.progress(last_row as i64, None, Some(&message)).await?;
                ctx.checkpoint().await?;
            }
            Event::Failed(e) => {
                if let Ok(Err(fetch)) = (&mut fetcher).await {
                    break Err(JobError::Retryable(
                        anyhow::Error::from(fetch).context("read upload"),
                    ));
                }
                break Ok(Err(e));
            }
            Event::End { last_row: last } => {
                last_row = last;
                break Ok(Ok(()));
            }
        }
    };
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
        Ok(()) => {
            let duplicates = staged_rows::flag_duplicates(&mut *tx, batch.id)
                .await
                .context("flag duplicates")?;
            let counts = imports::get(&mut *tx, None, batch.id)
                .await
                .context("reload import")?
                .counts;
            let (status, message) =
                closing_message(&counts, limits.import_rows_per_day, duplicates);
            imports::set_duplicates(&mut *tx, batch.id, duplicates as i32)
                .await
                .context("count duplicates")?;
            imports::finish(&mut tx, batch.id, status, message.as_deref())
                .await
                .context("finish import")?;
            ctx.progress(last_row as i64, Some(last_row as i64), message.as_deref())
                .await?;
            ctx.complete_in(&mut tx).await?;
            tx.commit().await?;
            tracing::info!(import_id = %batch.id, rows = last_row, staged = counts.total, "import staged");
            Ok(())
        }
    }
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

/// The parser thread: layout first, then rows after `skip_to`, in chunks.
fn parse(
    source: ChunkReader,
    encoding: Encoding,
    import_id: Uuid,
    skip_to: i32,
    events: &mpsc::Sender<Event>,
) {
    let mut rows = match CsvRows::open(source, encoding) {
        Ok(r) => r,
        Err(e) => {
            let _ = events.blocking_send(Event::Failed(e));
            return;
        }
    };
    let stager = Stager::new(rows.layout());
    if events
        .blocking_send(Event::Layout(rows.layout().clone()))
        .is_err()
    {
        return;
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    // Reading and staging overlap: this thread reads the next chunk while
    // the stager thread stages the last one. Everything reaches the job
    // through the stager, so events keep the file's order.
    let (steps_tx, steps) = std::sync::mpsc::sync_channel::<Step>(1);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for step in steps {
                let event = match step {
                    Step::Records {
                        records,
                        last_row,
                        bytes_read,
                    } => Event::Rows {
                        rows: stage_chunk(&stager, import_id, &records, threads),
                        last_row,
                        bytes_read,
                    },
                    Step::Event(e) => e,
                };
                // The job side has gone away: stop (dropping `steps` stops the reader).
                if events.blocking_send(event).is_err() {
                    return;
                }
            }
        });
        // `steps_tx` moves in: when reading ends, the stager's loop ends too.
        read(&mut rows, skip_to, steps_tx);
    });
}

/// What the reading thread hands the stager thread.
enum Step {
    Records {
        records: Vec<(i32, StringRecord)>,
        last_row: i32,
        bytes_read: u64,
    },
    Event(Event),
}

/// Read records after `skip_to` into chunks of [`ROWS_PER_TX`] non-blank ones.
fn read(rows: &mut CsvRows<ChunkReader>, skip_to: i32, steps: std::sync::mpsc::SyncSender<Step>) {
    let mut pending: Vec<(i32, StringRecord)> = Vec::with_capacity(ROWS_PER_TX);
    let mut last_row = skip_to;
    loop {
        let row = match rows.next_row() {
            Ok(r) => r,
            Err(e) => {
                let _ = steps.send(Step::Event(Event::Failed(e)));
                return;
            }
        };
        let Some((number, record)) = row else { break };
        if number <= skip_to {
            continue;
        }
        last_row = number;
        if !is_blank(record.iter()) {
            pending.push((number, record.clone()));
        }
        if pending.len() == ROWS_PER_TX {
            let records = std::mem::replace(&mut pending, Vec::with_capacity(ROWS_PER_TX));
            let step = Step::Records {
                records,
                last_row,
                bytes_read: rows.position(),
            };
            if steps.send(step).is_err() {
                return;
            }
        }
    }
    // The last chunk goes even when empty: it carries the checkpoint past trailing blank rows.
    if last_row > skip_to {
        let step = Step::Records {
            records: pending,
            last_row,
            bytes_read: rows.position(),
        };
        if steps.send(step).is_err() {
            return;
        }
    }
    let _ = steps.send(Step::Event(Event::End { last_row }));
}

/// Normalize, validate and encode a chunk of records, split over `threads`
/// (validation, libphonenumber above all, is most of an import's CPU); the
/// rows keep their order.
fn stage_chunk(
    stager: &Stager,
    import_id: Uuid,
    records: &[(i32, StringRecord)],
    threads: usize,
) -> CopyRows {
    let encode = |part: &[(i32, StringRecord)]| {
        let mut rows = CopyRows::new(import_id);
        for (number, record) in part {
            rows.push(&stager.stage(*number, record));
        }
        rows
    };
    if threads < 2 || records.len() < 256 {
        return encode(records);
    }
    let parts: Vec<&[(i32, StringRecord)]> =
        records.chunks(records.len().div_ceil(threads)).collect();
    std::thread::scope(|scope| {
        let helpers: Vec<_> = parts[1..]
            .iter()
            .map(|part| scope.spawn(move || encode(part)))
            .collect();
        let mut rows = encode(parts[0]);
        for helper in helpers {
            rows.append(helper.join().expect("staging thread panicked"));
        }
        rows
    })
}

/// `Read` over chunks arriving from an async task.
struct ChunkReader {
    chunks: mpsc::Receiver<Result<Vec<u8>, ()>>,
    current: Vec<u8>,
    pos: usize,
}

impl ChunkReader {
    fn new(chunks: mpsc::Receiver<Result<Vec<u8>, ()>>) -> Self {
        Self {
            chunks,
            current: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.current.len() {
            match self.chunks.blocking_recv() {
                Some(Ok(next)) => {
                    self.current = next;
                    self.pos = 0;
                }
                Some(Err(())) => {
                    return Err(std::io::Error::other("the upload could not be fetched"))
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
