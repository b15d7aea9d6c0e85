//! `bizcontacts-bench search`: a fixed mix of typical searches against the
//! running intake on a large corpus, beside the same statements run by
//! Postgres alone (`pgbench -f`).
//!
//! The corpus lives in its own database (`--database`, default
//! `bizcontacts_5m`), kept between runs because seeding millions of
//! contacts takes a while: when it holds fewer than `--contacts` active
//! contacts, `bizcontacts seed` tops it up first. The mix ([`MIX`]): one to
//! three filters, MCC codes and ranges, a category, a rare combination, a
//! deep page, free text with and without a typo, and facets. Each client
//! loops over the mix from its own starting shape for `--seconds` per
//! concurrency level, so every shape runs about equally often.
//!
//! The HTTP figures include everything a search request does (API key
//! check, the daily-search counter, the statement, JSON); the pgbench
//! figures are the statement alone, as `crates/store/src/search.rs` builds
//! it, with its values inlined. The bench tenant's package gets a daily
//! search limit no run reaches (in this scratch database only).
//!
//! With `--explain FILE`, the `EXPLAIN (ANALYZE, BUFFERS)` of every shape
//! is written there (for docs/benchmarks.md), and a plan that reads
//! `contacts` sequentially fails the run.

use crate::intake::Intake;
use anyhow::Context;
use bizcontacts::runtime;
use bizcontacts_config::{ExposeSecret, Settings};
use bizcontacts_domain::search::SearchFilter;
use bizcontacts_domain::{Permission, TenantId};
use bizcontacts_store::search::{facets_statement, search_statement, FacetBy, Statement};
use bizcontacts_store::search_pool;
use bizcontacts_store::Store;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What a shape is held to: the targets differ with and without `q`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Filtered,
    Text,
    Facets,
}

impl Class {
    fn key(self) -> &'static str {
        match self {
            Class::Filtered => "filtered",
            Class::Text => "text",
            Class::Facets => "facets",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Class::Filtered => "filtered, no q",
            Class::Text => "with q",
            Class::Facets => "facets",
        }
    }
}

/// The mix: (name, class, query string). `deep` pages start at the middle
/// of their results.
const MIX: &[(&str, Class, &str)] = &[
    ("country", Class::Filtered, "country=DE"),
    ("country+segment", Class::Filtered, "country=DE&segment=smb"),
    (
        "country+segment+type",
        Class::Filtered,
        "country=US&segment=enterprise&type=partner",
    ),
    (
        "category+country",
        Class::Filtered,
        "category=Retail%20outlets&country=FR",
    ),
    ("mcc", Class::Filtered, "mcc=5812"),
    (
        "mcc range+country",
        Class::Filtered,
        "mcc=5811-5814&country=US",
    ),
    (
        "rare: segment+mcc",
        Class::Filtered,
        "segment=public_sector&mcc=7011",
    ),
    (
        "deep page: country+type",
        Class::Filtered,
        "country=US&type=merchant",
    ),
    ("q", Class::Text, "q=harbor"),
    ("q two words", Class::Text, "q=harbor%20bakery"),
    ("q typo+country", Class::Text, "q=meridan&country=GB"),
    ("q person+segment", Class::Text, "q=garcia&segment=smb"),
    (
        "facets country | segment",
        Class::Facets,
        "by=country&segment=smb",
    ),
    (
        "facets category | country",
        Class::Facets,
        "by=category&country=DE",
    ),
];

/// Results per page in the mix (the default page size).
const LIMIT: i64 = 50;

pub struct Options {
    /// Run only the shapes of these classes (`filtered`, `text`, `facets`);
    /// empty: the whole mix.
    pub only: Vec<String>,
    pub contacts: usize,
    pub database: String,
    pub seconds: u64,
    pub clients: Vec<usize>,
    pub explain: Option<PathBuf>,
}

/// One shape of the mix, ready to run both ways.
struct Shape {
    name: &'static str,
    class: Class,
    /// Path and query of the HTTP request.
    path: String,
    /// The statement the request runs, values inlined.
    sql: String,
}

pub async fn run(settings: &Settings, o: Options) -> anyhow::Result<()> {
    let mut settings = settings.clone();
    let base = settings.database.url.expose_secret().to_string();
    let (server, _) = base
        .rsplit_once('/')
        .context("DATABASE_URL has no database name")?;
    let url = format!("{server}/{}", o.database);
    settings.database.url = url.clone().into();
    settings.redis.key_prefix =
        format!("bench:{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    settings.database.max_connections = settings
        .database
        .max_connections
        .max(o.clients.iter().copied().max().unwrap_or(1) as u32 + 4);
    let store = runtime::migrated_store(&settings).await?;

    let active: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts WHERE active")
        .fetch_one(&store.pool)
        .await?;
    if (active as usize) < o.contacts {
        println!(
            "corpus: {active} active contacts; seeding {} more",
            o.contacts - active as usize
        );
        bizcontacts::commands::seed::run(&settings, o.contacts - active as usize, None, true)
            .await?;
    }
    let active: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts WHERE active")
        .fetch_one(&store.pool)
        .await?;
    println!("corpus: {active} active contacts in {}", o.database);
    // No run may stop at the package's daily limit: this database is the
    // benchmark's own.
    sqlx::query("UPDATE packages SET searches_per_day = 1000000000 WHERE name = 'enterprise'")
        .execute(&store.pool)
        .await?;

    let intake = Intake::start(
        &settings,
        &store,
        "Search bench",
        &[Permission::ContactsSearch],
    )
    .await?;
    let shapes: Vec<Shape> = shapes(&store, intake.tenant)
        .await?
        .into_iter()
        .filter(|s| o.only.is_empty() || o.only.iter().any(|c| c == s.class.key()))
        .collect();
    anyhow::ensure!(!shapes.is_empty(), "--only names no class of the mix");
    if let Some(path) = &o.explain {
        explain(&store, &shapes, path).await?;
        println!("plans written to {}", path.display());
    }

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    // Warm the caches once, so the first level does not pay for them.
    for s in &shapes {
        get(&http, &intake, s).await?;
    }
    // Over HTTP first, every level; then the intake and its pool go, so
    // that pgbench's connections fit under Postgres's max_connections.
    let mut over = Vec::new();
    for &clients in &o.clients {
        over.push(over_http(&http, &intake, &shapes, clients, o.seconds).await?);
    }
    drop(intake);
    store.pool.close().await;
    let scripts = tempfile::tempdir()?;
    println!(
        "\n{:>7} | {:<14} | {:>9} {:>9} {:>8} | {:>9} {:>9} {:>8} | {:>6}",
        "clients", "class", "http p50", "http p99", "req/s", "pg p50", "pg p99", "tx/s", "p99 x"
    );
    for (&clients, over_http) in o.clients.iter().zip(&over) {
        let alone = pgbench(&url, &shapes, clients, o.seconds, scripts.path()).await?;
        for class in [Class::Filtered, Class::Text, Class::Facets] {
            if !shapes.iter().any(|s| s.class == class) {
                continue;
            }
            let h = summary(over_http, &shapes, class, o.seconds);
            let p = summary(&alone, &shapes, class, o.seconds);
            println!(
                "{clients:>7} | {:<14} | {:>7.1}ms {:>7.1}ms {:>8.0} | {:>7.1}ms {:>7.1}ms {:>8.0} | {:>6.1}",
                class.name(),
                h.p50,
                h.p99,
                h.rate,
                p.p50,
                p.p99,
                p.rate,
                h.p99 / p.p99.max(0.001)
            );
        }
        for (label, l) in [("HTTP", over_http), ("pgbench", &alone)] {
            let mut worst: Vec<(f64, &str)> = shapes
                .iter()
                .enumerate()
                .map(|(i, s)| (percentile(l.get(&i).map_or(&[][..], |v| v), 0.99), s.name))
                .collect();
            worst.sort_by(|a, b| b.0.total_cmp(&a.0));
            println!(
                "{:>7}   slowest p99 by {label}: {}",
                "",
                worst
                    .iter()
                    .take(3)
                    .map(|(ms, n)| format!("{n} {ms:.1}ms"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(())
}

/// The mix against this corpus: each shape's request and statement.
async fn shapes(store: &Store, tenant: TenantId) -> anyhow::Result<Vec<Shape>> {
    let mut out = Vec::new();
    for (name, class, query) in MIX {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let f = SearchFilter::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .map_err(|e| anyhow::anyhow!("{name}: {e:?}"))?;
        let (path, statement): (String, Statement) = match class {
            Class::Facets => {
                let by = match pairs
                    .iter()
                    .find(|(k, _)| k == "by")
                    .map(|(_, v)| v.as_str())
                {
                    Some("country") => FacetBy::Country,
                    Some("category") => FacetBy::Category,
                    Some("segment") => FacetBy::Segment,
                    _ => FacetBy::Type,
                };
                let mut conn = store.pool.acquire().await?;
                let (statement, _) = facets_statement(&mut conn, &f, by).await?;
                (
                    format!("/v1/tenants/{tenant}/contacts/facets?{query}"),
                    statement,
                )
            }
            _ if name.starts_with("deep") => {
                let middle = middle_id(store, tenant, &f).await?;
                let cursor = bizcontacts_http::routes::search::cursor(tenant, &f, middle);
                (
                    format!("/v1/tenants/{tenant}/contacts/search?{query}&limit={LIMIT}&cursor={cursor}"),
                    search_statement(tenant, &f, Some(middle), LIMIT + 1),
                )
            }
            _ => (
                format!("/v1/tenants/{tenant}/contacts/search?{query}&limit={LIMIT}"),
                search_statement(tenant, &f, None, LIMIT + 1),
            ),
        };
        out.push(Shape {
            name,
            class: *class,
            path,
            sql: statement.inlined().to_string(),
        });
    }
    Ok(out)
}

/// The id halfway down a filter's results: the deep page starts after it.
async fn middle_id(
    store: &Store,
    tenant: TenantId,
    f: &SearchFilter,
) -> anyhow::Result<uuid::Uuid> {
    let all = search_statement(tenant, f, None, i64::MAX);
    let sql = format!(
        "SELECT id FROM ({}) r OFFSET (SELECT count(*) / 2 FROM ({}) n) LIMIT 1",
        all.inlined(),
        all.inlined()
    );
    sqlx::query_scalar(&sql)
        .fetch_optional(&store.pool)
        .await?
        .context("the deep page's search has no results")
}

async fn get(http: &reqwest::Client, intake: &Intake, s: &Shape) -> anyhow::Result<()> {
    let res = http
        .get(format!("{}{}", intake.base, s.path))
        .bearer_auth(&intake.key)
        .send()
        .await?;
    let status = res.status();
    let body = res.bytes().await?;
    anyhow::ensure!(
        status == 200,
        "{}: {status} {}",
        s.name,
        String::from_utf8_lossy(&body)
    );
    Ok(())
}

/// Latencies in milliseconds by shape index.
type Latencies = BTreeMap<usize, Vec<f64>>;

/// `clients` clients, each looping over the mix from its own offset, for
/// `seconds`.
async fn over_http(
    http: &reqwest::Client,
    intake: &Intake,
    shapes: &[Shape],
    clients: usize,
    seconds: u64,
) -> anyhow::Result<Latencies> {
    let until = Instant::now() + Duration::from_secs(seconds);
    let runs = (0..clients).map(|c| async move {
        let mut mine: Vec<(usize, f64)> = Vec::new();
        let mut i = c % shapes.len();
        while Instant::now() < until {
            let started = Instant::now();
            get(http, intake, &shapes[i]).await?;
            mine.push((i, started.elapsed().as_secs_f64() * 1e3));
            i = (i + 1) % shapes.len();
        }
        anyhow::Ok(mine)
    });
    let mut all = Latencies::new();
    for done in futures::future::join_all(runs).await {
        for (i, ms) in done? {
            all.entry(i).or_default().push(ms);
        }
    }
    Ok(all)
}

/// `-c name=value` for each setting of the intake's search connections.
fn pg_options() -> String {
    search_pool::settings()
        .iter()
        .map(|(name, value)| format!("-c {name}={value}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The same statements by `pgbench`: one script per shape (equal weights),
/// `clients` connections, per-transaction log parsed for latencies.
async fn pgbench(
    url: &str,
    shapes: &[Shape],
    clients: usize,
    seconds: u64,
    dir: &Path,
) -> anyhow::Result<Latencies> {
    let mut cmd = tokio::process::Command::new("pgbench");
    cmd.arg("-n")
        .args(["-c", &clients.to_string()])
        .args(["-j", &clients.min(4).to_string()])
        .args(["-T", &seconds.to_string()])
        .arg("-l")
        .arg(format!(
            "--log-prefix={}",
            dir.join(format!("c{clients}")).display()
        ))
        // The search connections' own settings.
        .env("PGOPTIONS", pg_options());
    for (i, s) in shapes.iter().enumerate() {
        let script = dir.join(format!("shape{i}.sql"));
        std::fs::write(&script, format!("{};\n", s.sql.replace('\n', " ")))?;
        cmd.arg("-f").arg(script);
    }
    cmd.arg(url);
    let out = cmd
        .output()
        .await
        .context("running pgbench (is it installed?)")?;
    anyhow::ensure!(
        out.status.success(),
        "pgbench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Log lines: client_id transaction_no time_us script_no epoch epoch_us.
    let mut all = Latencies::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.starts_with(&format!("c{clients}.")) {
            continue;
        }
        for line in std::fs::read_to_string(&path)?.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let (Some(us), Some(script)) = (f.get(2), f.get(3)) {
                all.entry(script.parse()?)
                    .or_default()
                    .push(us.parse::<f64>()? / 1e3);
            }
        }
        std::fs::remove_file(&path)?;
    }
    Ok(all)
}

struct Summary {
    p50: f64,
    p99: f64,
    /// Requests of the class per second.
    rate: f64,
}

fn summary(l: &Latencies, shapes: &[Shape], class: Class, seconds: u64) -> Summary {
    let all: Vec<f64> = l
        .iter()
        .filter(|(i, _)| shapes[**i].class == class)
        .flat_map(|(_, v)| v.iter().copied())
        .collect();
    Summary {
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
        rate: all.len() as f64 / seconds as f64,
    }
}

fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Every shape's plan, run, into `path`; an error if any reads `contacts`
/// sequentially.
async fn explain(store: &Store, shapes: &[Shape], path: &Path) -> anyhow::Result<()> {
    let mut out = String::new();
    let mut seq = Vec::new();
    let mut conn = store.pool.acquire().await?;
    for (name, value) in search_pool::settings() {
        sqlx::query("SELECT set_config($1, $2, false)")
            .bind(name)
            .bind(value)
            .execute(&mut *conn)
            .await?;
    }
    for s in shapes {
        let plan: Vec<String> =
            sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {}", s.sql))
                .fetch_all(&mut *conn)
                .await?;
        let plan = plan.join("\n");
        if plan.contains("Seq Scan on contacts") {
            seq.push(s.name);
        }
        writeln!(
            out,
            "### {} ({})\n{}\n\n{plan}\n",
            s.name,
            s.class.name(),
            s.sql
        )?;
    }
    std::fs::write(path, out)?;
    anyhow::ensure!(seq.is_empty(), "sequential scans of contacts: {seq:?}");
    Ok(())
}
