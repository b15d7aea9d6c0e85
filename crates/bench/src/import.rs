//! `bizcontacts-bench import`: a generated CSV from upload to all rows staged, beside a
//! plain `COPY` of the same file into an equivalent table (the physical limit
//! of this machine's Postgres).
//!
//! The file: realistic contacts (companies, people, emails, phones in the
//! formats of their country, websites, addresses, ISO MCCs, segments, types)
//! with 5% invalid rows (bad email, unknown MCC, missing company), made by a
//! seeded generator so every run reads the same bytes. The intake runs in
//! this process; one worker process stages the rows. The time is the
//! ledger's: from the upload transaction's start (`imports.created_at`) to
//! the batch's `finished_at`. Peak memory is the worker's VmHWM.

use crate::intake::Intake;
use crate::jobs::{bench_database, cleanup_redis, spawn_worker};
use anyhow::Context;
use bizcontacts::runtime;
use bizcontacts_config::Settings;
use bizcontacts_demo::{
    Rng, FIRST as FIRST_ALL, LAST as LAST_ALL, TRADES as TRADES_ALL, WORDS as WORDS_ALL,
};
use bizcontacts_domain::Permission;
use std::io::Write;
use std::time::{Duration, Instant};

pub async fn run(settings: &Settings, rows: usize) -> anyhow::Result<()> {
    let path = std::env::temp_dir().join(format!("bizcontacts-bench-{rows}.csv"));
    let started = Instant::now();
    let size = generate(&path, rows)?;
    println!(
        "bench import: {rows} rows, {:.1} MB, generated in {:.1} s ({})",
        size as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        path.display()
    );
    let mut settings = settings.clone();
    let url = bench_database(&settings).await?;
    settings.database.url = url.clone().into();
    settings.redis.key_prefix =
        format!("bench:{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    settings.imports.max_upload_bytes = size as usize + 1;
    let store = runtime::migrated_store(&settings).await?;
    let redis = runtime::redis(&settings).await?;

    let copy_rate = copy_baseline(&store.pool, &path, rows).await?;
    println!("COPY into an equivalent table with a primary key: {copy_rate:.0} rows/s");

    let intake = Intake::start(&settings, &store, "Bench", &[Permission::ImportsWrite]).await?;
    let (base, key, tenant) = (&intake.base, &intake.key, intake.tenant);
    let mut worker = spawn_worker(&url, &settings.redis.key_prefix, None)?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let upload_started = Instant::now();
    let file = tokio::fs::File::open(&path).await?;
    let body =
        reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, 1 << 16));
    let res = reqwest::Client::new()
        .post(format!("{base}/v1/tenants/{tenant}/imports/csv"))
        .bearer_auth(key)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await?;
    anyhow::ensure!(res.status() == 202, "upload refused: {}", res.text().await?);
    let upload = upload_started.elapsed().as_secs_f64();
    let accepted: serde_json::Value = res.json().await?;
    let import_id: uuid::Uuid = accepted["import_id"]
        .as_str()
        .context("import_id")?
        .parse()?;
    let deadline = Instant::now() + Duration::from_secs(1800);
    let mut peak_kib = 0;
    let worker_pid = worker.id().context("worker pid")?;
    loop {
        peak_kib = peak_kib.max(vm_hwm_kib(worker_pid).unwrap_or(0));
        let (status, job, error): (String, String, Option<String>) = sqlx::query_as(
            "SELECT i.status, j.status, j.last_error FROM imports i JOIN jobs j ON j.id = i.job_id
             WHERE i.id = $1",
        )
        .bind(import_id)
        .fetch_one(&store.pool)
        .await?;
        if !matches!(status.as_str(), "queued" | "processing") {
            anyhow::ensure!(status == "staged", "the import ended {status}");
            break;
        }
        // A job that gave up leaves its batch processing: say so instead of waiting.
        anyhow::ensure!(job != "dead", "the import job died: {error:?}");
        anyhow::ensure!(Instant::now() < deadline, "the import took over 30 minutes");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (total, staged, valid, invalid): (f64, i32, i32, i32) = sqlx::query_as(
        "SELECT extract(epoch FROM i.finished_at - i.created_at)::float8, total_rows, valid_rows, invalid_rows
         FROM imports i WHERE id = $1",
    )
    .bind(import_id)
    .fetch_one(&store.pool)
    .await?;
    let rate = staged as f64 / total;
    println!(
        "import: {staged} rows staged ({valid} valid, {invalid} invalid) in {total:.1} s from upload start \
         (upload {upload:.1} s): {rate:.0} rows/s, {:.0}% of COPY",
        rate / copy_rate * 100.0
    );
    println!(
        "worker peak memory (VmHWM): {:.0} MB",
        peak_kib as f64 / 1024.0
    );

    let _ = worker.start_kill();
    let _ = worker.wait().await;
    drop(intake);
    cleanup_redis(&redis).await;
    let _ = std::fs::remove_file(&path);
    Ok(())
}

/// Peak resident memory of a process, from /proc (Linux).
pub(crate) fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU seconds a process has used so far (user + system, `/proc/<pid>/stat`).
pub(crate) fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    // In USER_HZ, which the kernel fixes at 100 for /proc on every
    // architecture Linux runs this on (sysconf(_SC_CLK_TCK) says the same).
    Some((utime + stime) / 100.0)
}

/// The same file into a table with one text column per CSV column and a
/// primary key, by `COPY ... (FORMAT csv, HEADER)`; rows per second.
async fn copy_baseline(
    pool: &sqlx::PgPool,
    path: &std::path::Path,
    rows: usize,
) -> anyhow::Result<f64> {
    let columns: Vec<String> = HEADER
        .split(',')
        .map(|c| format!("c_{}", c.to_lowercase().replace(' ', "_")))
        .collect();
    sqlx::query(&format!(
        "CREATE TABLE copy_baseline (id bigserial PRIMARY KEY, {})",
        columns
            .iter()
            .map(|c| format!("{c} text"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .execute(pool)
    .await?;
    let mut conn = pool.acquire().await?;
    let started = Instant::now();
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY copy_baseline ({}) FROM STDIN (FORMAT csv, HEADER true)",
            columns.join(", ")
        ))
        .await?;
    copy.read_from(tokio::fs::File::open(path).await?).await?;
    let copied = copy.finish().await?;
    let elapsed = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        copied as usize == rows,
        "COPY wrote {copied} rows of {rows}"
    );
    sqlx::query("DROP TABLE copy_baseline")
        .execute(pool)
        .await?;
    Ok(rows as f64 / elapsed)
}

const HEADER: &str = "Company,First Name,Last Name,Email,Phone,Website,Address,City,Postcode,Country,Segment,Type,MCC,Notes";

// The name lists of `bench_corpus`, cut to the lengths this file was first
// generated with, so the import benchmark keeps reading the same bytes.
const WORDS: &[&str] = WORDS_ALL.split_at(20).0;
const TRADES: &[&str] = TRADES_ALL.split_at(15).0;
const FIRST: &[&str] = FIRST_ALL.split_at(12).0;
const LAST: &[&str] = LAST_ALL.split_at(10).0;
const SUFFIXES: &[&str] = &["Inc", "LLC", "Ltd", "GmbH", "S.A.", "Co.", "", "Group"];
const MCCS: &[&str] = &[
    "0742", "1520", "1711", "4111", "4121", "5411", "5499", "5541", "5651", "5812", "5912", "7011",
    "7230", "7299", "8011", "8021", "8062", "8111",
];
const SEGMENTS: &[&str] = &[
    "smb",
    "mid_market",
    "enterprise",
    "public_sector",
    "SMB",
    "Mid-Market",
];
const TYPES: &[&str] = &["merchant", "supplier", "partner", "prospect"];

/// (country, city, postcode format, a valid national phone number pattern)
fn place(rng: &mut Rng) -> (&'static str, &'static str, String, String) {
    match rng.below(4) {
        0 => (
            "US",
            "San Francisco",
            format!("94{:03}", rng.below(1000)),
            format!("(415) 555-{:04}", rng.below(10_000)),
        ),
        1 => (
            "Germany",
            "Berlin",
            format!("10{:03}", rng.below(1000)),
            format!("030 {:07}", 1_000_000 + rng.below(8_999_999)),
        ),
        2 => (
            "GB",
            "London",
            format!("EC1A {}BB", rng.below(9) + 1),
            format!("+44 20 7946 {:04}", rng.below(10_000)),
        ),
        _ => (
            "FRA",
            "Paris",
            format!("750{:02}", rng.below(20) + 1),
            format!(
                "01 42 {:02} {:02} {:02}",
                rng.below(100),
                rng.below(100),
                rng.below(100)
            ),
        ),
    }
}

fn generate(path: &std::path::Path, rows: usize) -> anyhow::Result<u64> {
    let mut out = csv::Writer::from_writer(std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(path)?,
    ));
    out.write_record(HEADER.split(','))?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..rows {
        let company = format!(
            "{} {} {}",
            rng.pick(WORDS),
            rng.pick(TRADES),
            rng.pick(SUFFIXES)
        );
        let company = company.trim().to_string();
        let (first, last) = (rng.pick(FIRST), rng.pick(LAST));
        let slug: String = company
            .to_lowercase()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let domain = format!("{slug}{}.com", i % 50_000);
        let (country, city, postcode, phone) = place(&mut rng);
        let mut email = format!("{}.{}@{domain}", first.to_lowercase(), i);
        let mut mcc = rng.pick(MCCS).to_string();
        let mut company_cell = company.clone();
        // 5% invalid, spread over three kinds of mistake.
        if i % 20 == 7 {
            match rng.below(3) {
                0 => email = format!("{first} at {domain}"),
                1 => mcc = "0001".into(),
                _ => company_cell.clear(),
            }
        }
        out.write_record([
            company_cell.as_str(),
            first,
            last,
            &email,
            &phone,
            &format!("www.{domain}"),
            &format!("{} Main Street", 1 + rng.below(999)),
            city,
            &postcode,
            country,
            rng.pick(SEGMENTS),
            rng.pick(TYPES),
            &mcc,
            if i % 10 == 0 {
                "met at the trade fair"
            } else {
                ""
            },
        ])?;
    }
    let mut inner = out.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    inner.flush()?;
    Ok(std::fs::metadata(path)?.len())
}
