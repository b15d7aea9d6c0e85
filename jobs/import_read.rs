//! The reading side of the `import` job, away from the async runtime: a
//! reader thread cuts the upload's records into chunks of [`ROWS_PER_TX`]
//! while a stager thread normalizes, validates and encodes the last chunk for
//! `COPY` on all cores. Events reach the job in file order.

use bizcontacts_ingest::stage::is_blank;
use bizcontacts_ingest::{BatchError, CsvRows, Layout, Stager, StringRecord};
use bizcontacts_store::imports::Encoding;
use bizcontacts_store::staged_rows::CopyRows;
use std::io::Read;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Rows per staging transaction: large enough for COPY to shine, small
/// enough that a crash loses little work and memory stays flat.
pub const ROWS_PER_TX: usize = 5_000;

/// What the parser thread reports.
pub(crate) enum Event {
    Layout(Layout),
    Rows {
        rows: CopyRows,
        last_row: i32,
        bytes_read: u64,
    },
    Failed(BatchError),
    End {
        last_row: i32,
        /// False when no row this run staged can repeat another (see [`Seen`]).
        may_repeat: bool,
    },
}

/// The parser thread: layout first, then rows after `skip_to`, in chunks.
pub(crate) fn parse(
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
            let mut seen = Seen::new();
            let mut may_repeat = false;
            for step in steps {
                let event = match step {
                    Step::Records {
                        records,
                        last_row,
                        bytes_read,
                    } => {
                        let rows = stage_chunk(&stager, import_id, &records, threads);
                        for fingerprint in rows.fingerprints() {
                            may_repeat |= seen.insert(fingerprint);
                        }
                        Event::Rows {
                            rows,
                            last_row,
                            bytes_read,
                        }
                    }
                    Step::End { last_row } => Event::End {
                        last_row,
                        may_repeat,
                    },
                    Step::Failed(e) => Event::Failed(e),
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
    Failed(BatchError),
    End {
        last_row: i32,
    },
}

/// Read records after `skip_to` into chunks of [`ROWS_PER_TX`] non-blank ones.
fn read(rows: &mut CsvRows<ChunkReader>, skip_to: i32, steps: std::sync::mpsc::SyncSender<Step>) {
    let mut pending: Vec<(i32, StringRecord)> = Vec::with_capacity(ROWS_PER_TX);
    let mut last_row = skip_to;
    loop {
        let row = match rows.next_row() {
            Ok(r) => r,
            Err(e) => {
                let _ = steps.send(Step::Failed(e));
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
    let _ = steps.send(Step::End { last_row });
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
pub(crate) struct ChunkReader {
    chunks: mpsc::Receiver<Result<Vec<u8>, ()>>,
    current: Vec<u8>,
    pos: usize,
}

impl ChunkReader {
    pub(crate) fn new(chunks: mpsc::Receiver<Result<Vec<u8>, ()>>) -> Self {
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

/// The fingerprints a run has staged, in fixed memory whatever the file's
/// size: a blocked Bloom filter (one cache line per fingerprint, whose own
/// bits pick the line and six bits in it). It never misses a repeat, and at a
/// million rows almost never reports a false one, so the job can skip the
/// exact duplicate pass (a whole-batch sort, seconds per million rows) when
/// nothing can repeat. A hand-rolled filter rather than a crate: fingerprints
/// are already 128-bit hashes, which a general filter would hash again.
struct Seen {
    lines: Vec<[u64; 8]>,
}

/// 2^18 lines of 64 bytes: 16 MiB.
const SEEN_LINES: usize = 1 << 18;

impl Seen {
    fn new() -> Self {
        Self {
            lines: vec![[0; 8]; SEEN_LINES],
        }
    }

    /// Remember `fingerprint`; true when it may have been seen before.
    fn insert(&mut self, fingerprint: &[u8; 16]) -> bool {
        let h = u128::from_le_bytes(*fingerprint);
        let line = &mut self.lines[(h as usize) & (SEEN_LINES - 1)];
        let mut bits = (h >> 64) as u64;
        let mut seen = true;
        for _ in 0..6 {
            let bit = (bits & 511) as usize;
            bits >>= 9;
            let mask = 1u64 << (bit % 64);
            seen &= line[bit / 64] & mask != 0;
            line[bit / 64] |= mask;
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::Seen;

    #[test]
    fn seen_never_misses_a_repeat_and_rarely_imagines_one() {
        let mut seen = Seen::new();
        // splitmix64, twice: distinct, evenly spread 128-bit values like xxh3's.
        let mix = |mut z: u64| {
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let fingerprint = |i: u64| ((u128::from(mix(i)) << 64) | u128::from(mix(!i))).to_le_bytes();
        let false_repeats = (0..200_000)
            .filter(|i| seen.insert(&fingerprint(*i)))
            .count();
        assert!(false_repeats <= 2, "{false_repeats} false repeats");
        assert!((0..1000).all(|i| seen.insert(&fingerprint(i * 7))));
    }
}
