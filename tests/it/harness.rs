//! `TestDb`, `TestApp` and helpers.
//!
//! - `TestDb::new()` clones a database from a template that is migrated once
//!   per migration set (named by a hash of the migrations, guarded by an
//!   advisory lock so parallel test binaries agree), and drops it on `Drop`.
//! - `TestApp::spawn()` runs the real intake in-process on port 0 against such
//!   a database and its own Redis key prefix; Redis keys under the prefix are
//!   deleted on `Drop`.
//! - Fixtures (tenants, members, sessions, keys) are written straight through
//!   the store, so tests spend their time on the behaviour they check.

#![allow(dead_code)]

use bizcontacts::runtime;
use bizcontacts_config::{ExposeSecret, Settings};
use bizcontacts_domain::{Email, PackageName, Permission, Role, SystemRole, TenantId, UserId};
use bizcontacts_security::{new_session_token, token_hash};
use bizcontacts_store::db::MIGRATOR;
use bizcontacts_store::{sessions, tenants, users, Store};
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

fn pg_base() -> String {
    std::env::var("TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| REDIS_URL.into())
}

fn admin_url() -> String {
    format!("{}/postgres", pg_base())
}

fn template_name() -> String {
    let mut h = Sha256::new();
    for m in MIGRATOR.iter() {
        h.update(m.version.to_le_bytes());
        h.update(&*m.checksum);
    }
    let digest = h.finalize();
    format!(
        "bctpl_{}",
        digest
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

static TEMPLATE: OnceCell<String> = OnceCell::const_new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let name = template_name();
            let mut admin = PgConnection::connect(&admin_url())
                .await
                .expect("Postgres reachable for tests");
            sqlx::query("SELECT pg_advisory_lock(hashtext('bizcontacts-test-template'))")
                .execute(&mut admin)
                .await
                .unwrap();
            drop_orphans(&mut admin).await;
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                    .bind(&name)
                    .fetch_one(&mut admin)
                    .await
                    .unwrap();
            if !exists {
                // Templates of older migration sets are of no use any more.
                let stale: Vec<String> = sqlx::query_scalar(
                    "SELECT datname FROM pg_database WHERE datname LIKE 'bctpl\\_%' AND datname <> $1",
                )
                .bind(&name)
                .fetch_all(&mut admin)
                .await
                .unwrap();
                for db in stale {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
                let building = format!("{name}_building");
                sqlx::query(&format!("DROP DATABASE IF EXISTS {building}"))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                sqlx::query(&format!("CREATE DATABASE {building}"))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                let store = Store::connect(
                    &format!("{}/{building}", pg_base()),
                    2,
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
                store
                    .migrate()
                    .await
                    .expect("migrations apply to a fresh database");
                store.pool.close().await;
                // Renamed only once complete, so a crash never leaves a half-migrated template.
                sqlx::query(&format!("ALTER DATABASE {building} RENAME TO {name}"))
                    .execute(&mut admin)
                    .await
                    .unwrap();
            }
            sqlx::query("SELECT pg_advisory_unlock(hashtext('bizcontacts-test-template'))")
                .execute(&mut admin)
                .await
                .unwrap();
            name
        })
        .await
}

/// Drop databases left by test processes that died before their `Drop` ran.
async fn drop_orphans(admin: &mut PgConnection) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'bctest\\_%'")
            .fetch_all(&mut *admin)
            .await
            .unwrap();
    for name in names {
        let pid = name.split('_').nth(1).and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut *admin)
                .await;
        }
    }
}

/// A database of its own, dropped when the test ends.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn new() -> Self {
        let template = template().await;
        let name = format!(
            "bctest_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
        // CREATE DATABASE ... TEMPLATE fails while another clone of the same
        // template is starting; retry briefly.
        for attempt in 0.. {
            match sqlx::query(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
                .execute(&mut admin)
                .await
            {
                Ok(_) => break,
                Err(e)
                    if attempt < 50 && e.to_string().contains("being accessed by other users") =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("cannot create test database: {e}"),
            }
        }
        TestDb {
            url: format!("{}/{name}", pg_base()),
            name,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime; use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(&admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A Redis key prefix of its own; its keys are deleted on drop.
pub struct TestRedis {
    pub prefix: String,
}

impl TestRedis {
    pub fn new() -> Self {
        TestRedis {
            prefix: format!("bctest:{}", uuid::Uuid::new_v4().simple()),
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let pattern = format!("{}:*", self.prefix);
        if let Ok(client) = redis::Client::open(redis_url()) {
            if let Ok(mut conn) = client.get_connection() {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(&pattern)
                    .query(&mut conn)
                    .unwrap_or_default();
                if !keys.is_empty() {
                    let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut conn);
                }
                // apalis registers each queue's worker set in one global set.
                let queues: Vec<String> = redis::cmd("ZRANGE")
                    .arg("core:apalis:queues:list")
                    .arg(0)
                    .arg(-1)
                    .query(&mut conn)
                    .unwrap_or_default();
                let ours: Vec<&String> = queues
                    .iter()
                    .filter(|q| q.starts_with(&self.prefix))
                    .collect();
                if !ours.is_empty() {
                    let _: Result<(), _> = redis::cmd("ZREM")
                        .arg("core:apalis:queues:list")
                        .arg(ours)
                        .query(&mut conn);
                }
            }
        }
    }
}

/// Settings for a test: the `test` environment pointed at this test's database and prefix.
pub fn test_settings(db: &TestDb, redis: &TestRedis) -> Settings {
    let mut settings = Settings::load_from(
        "test",
        |k| match k {
            "DATABASE_URL" => Some(db.url.clone()),
            "REDIS_URL" => Some(redis_url()),
            "BIZCONTACTS_HTTP_ADDR" => Some("127.0.0.1:0".into()),
            _ => None,
        },
        false,
    )
    .expect("test settings load");
    settings.redis.key_prefix = redis.prefix.clone();
    settings.database.max_connections = 5;
    settings
}

/// A user made by a fixture, with a session token ready to use.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: UserId,
    pub email: String,
    pub password: String,
    pub token: String,
}

/// The intake running in-process against its own database and Redis prefix.
pub struct TestApp {
    pub base: String,
    pub store: Store,
    pub settings: Settings,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    // Dropped last: the database outlives the pool.
    pub redis: TestRedis,
    pub db: TestDb,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_on(TestDb::new().await).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn db_url(&self) -> &str {
        self.settings.database.url.expose_secret()
    }

    pub async fn tenant(&self, package: PackageName) -> TenantId {
        tenants::create(
            &self.store.pool,
            &format!("Tenant {}", uuid::Uuid::new_v4().simple()),
            package,
        )
        .await
        .unwrap()
        .id
    }

    /// A new user with a password (hashed with the test's cheap argon2 cost) and a session.
    pub async fn user(&self) -> TestUser {
        let email = format!("user-{}@example.com", uuid::Uuid::new_v4().simple());
        let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        let hash = runtime::passwords(&self.settings)
            .unwrap()
            .hash(&password)
            .unwrap();
        let user = users::create(
            &self.store.pool,
            &Email::parse(&email).unwrap(),
            Some(&hash),
        )
        .await
        .unwrap();
        let token = self.session(user.id).await;
        TestUser {
            id: user.id,
            email,
            password,
            token,
        }
    }

    pub async fn session(&self, user: UserId) -> String {
        let token = new_session_token();
        sessions::create(
            &self.store.pool,
            user,
            &token_hash(&token),
            chrono::Utc::now() + chrono::Duration::hours(1),
        )
        .await
        .unwrap();
        token
    }

    pub async fn member(&self, tenant: TenantId, role: Role) -> TestUser {
        let user = self.user().await;
        let mut conn = self.store.pool.acquire().await.unwrap();
        users::add_member(&mut conn, tenant, user.id, role)
            .await
            .unwrap();
        user
    }

    pub async fn system_user(&self, role: SystemRole) -> TestUser {
        let user = self.user().await;
        users::grant_system_role(&self.store.pool, user.id, role)
            .await
            .unwrap();
        user
    }

    /// An API key for `user` in `tenant` (or a system key with `None`).
    pub async fn key(
        &self,
        tenant: Option<TenantId>,
        user: UserId,
        scopes: &[Permission],
    ) -> String {
        let mut conn = self.store.pool.acquire().await.unwrap();
        bizcontacts_http::identity::issue_api_key(&mut conn, tenant, user, "test key", scopes, None)
            .await
            .map_err(|e| e.to_string())
            .unwrap()
            .secret
    }

    pub fn get(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(token)
    }

    /// GET `path` as `token` and read the JSON answer, whatever its status.
    pub async fn get_json(&self, path: &str, token: &str) -> serde_json::Value {
        self.get(path, token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub fn post(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path)).bearer_auth(token)
    }

    pub fn delete(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client.delete(self.url(path)).bearer_auth(token)
    }

    /// Count rows of a table (for "nothing was written" checks).
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.store.pool)
            .await
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Assert a response is problem+json with `status`; returns the body.
pub async fn problem(res: reqwest::Response, status: u16) -> serde_json::Value {
    let got = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body: serde_json::Value = res.json().await.unwrap_or(serde_json::Value::Null);
    assert_eq!(got, status, "unexpected status; body: {body}");
    assert_eq!(ct, "application/problem+json", "body: {body}");
    for field in ["type", "title", "status", "detail", "request_id"] {
        assert!(body.get(field).is_some(), "problem lacks {field}: {body}");
    }
    body
}

impl TestDb {
    /// A name and URL for a database that does not exist yet (for tests of
    /// "creates the database when missing"); dropped like any other.
    pub fn reserve() -> Self {
        let name = format!(
            "bctest_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        TestDb {
            url: format!("{}/{name}", pg_base()),
            name,
        }
    }
}

pub const BIN: &str = env!("CARGO_BIN_EXE_bizcontacts");

/// Environment for running the real binary against a test database and prefix.
pub fn bin_env(db: &TestDb, redis: &TestRedis, addr: &str) -> Vec<(String, String)> {
    vec![
        ("BIZCONTACTS_ENV".into(), "test".into()),
        ("DATABASE_URL".into(), db.url.clone()),
        ("REDIS_URL".into(), redis_url()),
        ("BIZCONTACTS_HTTP_ADDR".into(), addr.into()),
        (
            "BIZCONTACTS__REDIS__KEY_PREFIX".into(),
            redis.prefix.clone(),
        ),
    ]
}

/// Run an admin command to completion: (status, stdout, stderr).
pub fn run_bin(
    args: &[&str],
    env: &[(String, String)],
) -> (std::process::ExitStatus, String, String) {
    let out = std::process::Command::new(BIN)
        .args(args)
        .envs(env.iter().cloned())
        .env_remove("RUST_LOG")
        .output()
        .expect("binary runs");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A loopback address with a port free right now.
pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// Poll `url` until it answers 200 (the process is up), for at most 30 s.
pub async fn wait_ready(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(r) = client.get(url).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never became ready");
}

impl TestApp {
    /// Like `spawn`, over a given (possibly unmigrated) database.
    pub async fn spawn_on(db: TestDb) -> Self {
        Self::spawn_with(db, |_| {}).await
    }

    /// Like `spawn_on`, with settings changed first (a small upload limit, say).
    pub async fn spawn_with(db: TestDb, change: impl FnOnce(&mut Settings)) -> Self {
        let redis = TestRedis::new();
        let mut settings = test_settings(&db, &redis);
        change(&mut settings);
        let store = runtime::store(&settings).await.unwrap();
        let state = runtime::app_state(&settings, store.clone()).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        tokio::spawn(async move {
            bizcontacts_http::serve(listener, state, token, Duration::from_secs(1))
                .await
                .unwrap();
        });
        TestApp {
            base,
            store,
            settings,
            client: reqwest::Client::new(),
            shutdown,
            redis,
            db,
        }
    }
}

/// Send SIGTERM to a child process.
pub fn sigterm(pid: u32) {
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill -TERM {pid}");
}

/// Send a request and return its status code.
pub async fn status(req: reqwest::RequestBuilder) -> u16 {
    req.send().await.unwrap().status().as_u16()
}

/// Poll `check` every 50 ms until it holds; panics with `what` after `secs`.
pub async fn wait_until<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A worker running inside the test process; stops when dropped.
pub struct InProcessWorker {
    stop: CancellationToken,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl InProcessWorker {
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }
}

impl Drop for InProcessWorker {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TestApp {
    pub async fn ledger(&self) -> bizcontacts_queue::ledger::Ledger {
        let redis = runtime::redis(&self.settings).await.unwrap();
        runtime::ledger(
            &self.settings,
            &self.store,
            &redis,
            &runtime::registry(&self.settings, &redis).unwrap(),
        )
    }

    pub async fn worker(&self) -> InProcessWorker {
        let ledger = self.ledger().await;
        let config = runtime::worker_config(&self.settings);
        let redis = runtime::redis(&self.settings).await.unwrap();
        let registry = runtime::registry(&self.settings, &redis).unwrap();
        let stop = CancellationToken::new();
        let token = stop.clone();
        let handle = tokio::spawn(async move {
            bizcontacts_queue::worker::run(ledger, registry, config, token)
                .await
                .unwrap();
        });
        InProcessWorker {
            stop,
            handle: Some(handle),
        }
    }

    /// Enqueue jobs straight through the ledger (what the intake does after its checks).
    pub async fn enqueue(&self, jobs: Vec<bizcontacts_queue::job::NewJob>) -> Vec<uuid::Uuid> {
        let ledger = self.ledger().await;
        let mut ids = Vec::new();
        for chunk in jobs.chunks(1000) {
            let mut tx = self.store.pool.begin().await.unwrap();
            let (out, pending) = ledger.enqueue_many(&mut tx, chunk.to_vec()).await.unwrap();
            tx.commit().await.unwrap();
            ledger.push(pending).await;
            ids.extend(out.into_iter().map(|e| e.job.id));
        }
        ids
    }

    pub async fn job_status(&self, id: uuid::Uuid) -> String {
        sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&self.store.pool)
            .await
            .unwrap()
    }

    /// Jobs per status among `ids`.
    pub async fn count_status(&self, ids: &[uuid::Uuid], status: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE id = ANY($1) AND status = $2")
            .bind(ids)
            .bind(status)
            .fetch_one(&self.store.pool)
            .await
            .unwrap()
    }

    /// The real binary as a worker process against this test's database and prefix.
    pub fn spawn_worker_process(&self) -> Process {
        self.spawn_process("worker", &[])
    }

    pub fn spawn_process(&self, command: &str, extra_env: &[(&str, &str)]) -> Process {
        Process(
            tokio::process::Command::new(BIN)
                .arg(command)
                .envs(bin_env(&self.db, &self.redis, "127.0.0.1:0"))
                .env("BIZCONTACTS__WORKER__HTTP_ADDR", "127.0.0.1:0")
                .envs(
                    extra_env
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string())),
                )
                .stdout(std::process::Stdio::null())
                .stderr(if std::env::var("TEST_LOG").is_ok() {
                    std::process::Stdio::inherit()
                } else {
                    std::process::Stdio::null()
                })
                .kill_on_drop(true)
                .spawn()
                .unwrap(),
        )
    }
}

/// A child process that is killed *and reaped* when dropped, so it cannot
/// write to Redis or Postgres after the test's cleanup ran.
pub struct Process(pub tokio::process::Child);

impl std::ops::Deref for Process {
    type Target = tokio::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Process {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
        for _ in 0..100 {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A job of a test kind, for `TestApp::enqueue`.
pub fn test_job(
    tenant: Option<TenantId>,
    kind: &str,
    params: serde_json::Value,
) -> bizcontacts_queue::job::NewJob {
    bizcontacts_queue::job::NewJob {
        tenant_id: tenant,
        kind: kind.into(),
        params,
        idempotency_key: None,
        max_attempts: 3,
        run_after: None,
        created_by: None,
    }
}
