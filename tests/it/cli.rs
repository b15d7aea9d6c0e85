//! The real binary: admin commands print only what they create; `dev` starts
//! everything on a database it creates, prints the contract lines, and stops
//! cleanly on SIGTERM.

use crate::harness::{
    bin_env, free_addr, run_bin, sigterm, status, wait_ready, TestDb, TestRedis, BIN,
};
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn admin_commands_print_their_result_alone() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let env = bin_env(&db, &redis, &free_addr());

    let (s, out, err) = run_bin(
        &["tenant", "create", "--name", "Acme", "--package", "starter"],
        &env,
    );
    assert!(s.success(), "{err}");
    let tenant = out.strip_suffix('\n').unwrap();
    assert!(uuid::Uuid::parse_str(tenant).is_ok(), "{out:?}");

    let (s, out, err) = run_bin(
        &[
            "user",
            "create",
            "--email",
            "ops@example.com",
            "--password",
            "long enough pw",
            "--tenant",
            tenant,
            "--role",
            "org_admin",
        ],
        &env,
    );
    assert!(s.success(), "{err}");
    let user = out.trim().to_string();
    assert!(uuid::Uuid::parse_str(&user).is_ok());

    let (s, out, _) = run_bin(
        &[
            "user",
            "grant-system-role",
            "--email",
            "ops@example.com",
            "--role",
            "support",
        ],
        &env,
    );
    assert!(s.success());
    assert_eq!(out.trim(), user);

    let (s, out, err) = run_bin(
        &[
            "api-key",
            "create",
            "--tenant",
            tenant,
            "--email",
            "ops@example.com",
            "--scopes",
            "usage:read",
        ],
        &env,
    );
    assert!(s.success(), "{err}");
    assert!(
        out.starts_with("bck_") && out.lines().count() == 1,
        "{out:?}"
    );

    let (s, system_key, err) = run_bin(&["api-key", "create", "--email", "ops@example.com"], &env);
    assert!(s.success(), "{err}");
    assert!(system_key.starts_with("bck_"));

    // Failures: one line on stderr, nothing on stdout, non-zero status.
    for args in [
        vec!["tenant", "create", "--name", "X", "--package", "platinum"],
        vec![
            "user",
            "create",
            "--email",
            "ops@example.com",
            "--password",
            "long enough pw",
        ],
        vec![
            "user",
            "create",
            "--email",
            "new@example.com",
            "--password",
            "short",
        ],
        vec![
            "user",
            "grant-system-role",
            "--email",
            "ops@example.com",
            "--role",
            "king",
        ],
        vec![
            "api-key",
            "create",
            "--tenant",
            tenant,
            "--email",
            "ops@example.com",
            "--scopes",
            "admin:operate",
        ],
        vec![
            "api-key",
            "create",
            "--tenant",
            "not-a-uuid",
            "--email",
            "ops@example.com",
        ],
    ] {
        let (s, out, err) = run_bin(&args, &env);
        assert!(!s.success(), "{args:?} should fail");
        assert!(out.is_empty(), "{args:?} printed {out:?}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err:?}");
        assert!(err.starts_with("error: "), "{err}");
    }
}

/// Read `KEY=value` lines from `dev`'s stdout until both contract lines arrived.
async fn contract_lines(child: &mut tokio::process::Child) -> (String, String) {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut url, mut key) = (None, None);
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(v) = line.strip_prefix("BIZCONTACTS_URL=") {
                url = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("BIZCONTACTS_DEMO_API_KEY=") {
                key = Some(v.to_string());
            }
            if url.is_some() && key.is_some() {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("dev printed its lines");
    (url.unwrap(), key.unwrap())
}

async fn start_dev(env: &[(String, String)]) -> tokio::process::Child {
    tokio::process::Command::new(BIN)
        .arg("dev")
        .envs(env.iter().cloned())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn dev_creates_everything_prints_the_contract_and_stops_on_sigterm() {
    let db = TestDb::reserve(); // does not exist yet
    let redis = TestRedis::new();
    let env = bin_env(&db, &redis, &free_addr());

    let mut dev = start_dev(&env).await;
    let (url, key) = contract_lines(&mut dev).await;
    wait_ready(&format!("{url}/readyz")).await;
    let client = reqwest::Client::new();
    let me: Value = client
        .get(format!("{url}/v1/me"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["memberships"][0]["tenant_name"], "Demo Company");
    assert_eq!(me["memberships"][0]["role"], "org_admin");
    // A newcomer's first search finds the demo corpus.
    let tenant = me["memberships"][0]["tenant_id"]
        .as_str()
        .unwrap()
        .to_string();
    let found: Value = client
        .get(format!(
            "{url}/v1/tenants/{tenant}/contacts/search?country=US&limit=5"
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["items"].as_array().unwrap().len(), 5, "{found}");

    sigterm(dev.id().unwrap());
    let exit = tokio::time::timeout(Duration::from_secs(30), dev.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");

    // A second start reuses the tenant and rotates the demo key.
    let mut dev = start_dev(&env).await;
    let (url, new_key) = contract_lines(&mut dev).await;
    wait_ready(&format!("{url}/readyz")).await;
    assert_ne!(key, new_key);
    assert_eq!(
        status(client.get(format!("{url}/v1/me")).bearer_auth(&new_key)).await,
        200
    );
    assert_eq!(
        status(client.get(format!("{url}/v1/me")).bearer_auth(&key)).await,
        401
    );
    let tenants: i64 = {
        let store = bizcontacts_store::Store::connect(&db.url, 1, Duration::from_secs(5))
            .await
            .unwrap();
        let n = sqlx::query_scalar("SELECT count(*) FROM tenants")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        store.pool.close().await;
        n
    };
    assert_eq!(tenants, 1);
    sigterm(dev.id().unwrap());
    let _ = dev.wait().await;
}

#[tokio::test]
async fn seed_fills_the_corpus_through_the_import_path() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let env = bin_env(&db, &redis, &free_addr());
    let (status, out, err) = run_bin(&["seed", "--contacts", "1200"], &env);
    assert!(status.success(), "{err}");
    let import: uuid::Uuid = out.trim().parse().expect("the batch id alone on stdout");
    assert!(err.contains("seeded 1200 contacts"), "{err}");

    let store = bizcontacts_store::Store::connect(&db.url, 2, Duration::from_secs(5))
        .await
        .unwrap();
    let pool = &store.pool;
    let count = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .bind(import)
            .fetch_one(pool)
            .await
            .unwrap()
    };
    // The same stored result as a reviewed import: every row merged with its
    // contact (provenance), contacts with blocking keys, a finished batch.
    assert_eq!(count("SELECT count(*) FROM staged_rows WHERE import_id = $1 AND status = 'merged' AND contact_id IS NOT NULL").await, 1200);
    assert_eq!(count("SELECT count(*) FROM contacts c WHERE c.active AND EXISTS (SELECT 1 FROM staged_rows s WHERE s.import_id = $1 AND s.contact_id = c.id)").await, 1200);
    assert!(count("SELECT count(*) FROM contact_keys_filed k JOIN staged_rows s ON s.contact_id = k.contact_id WHERE s.import_id = $1").await >= 1200 * 3);
    assert_eq!(count("SELECT count(*) FROM imports WHERE id = $1 AND status = 'staged' AND merged_rows + created_rows = 1200").await, 1);
    // Realistic spread: several countries, categories, segments and types.
    let spread: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(DISTINCT country), count(DISTINCT category), count(DISTINCT segment), count(DISTINCT type) FROM contacts",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(
        spread.0 >= 4 && spread.1 >= 8 && spread.2 == 4 && spread.3 == 4,
        "{spread:?}"
    );
    store.pool.close().await;
}

#[tokio::test]
async fn production_refuses_to_start_without_a_secrets_key() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let mut env = bin_env(&db, &redis, &free_addr());
    env.retain(|(k, _)| k != "BIZCONTACTS_ENV");
    env.push(("BIZCONTACTS_ENV".into(), "production".into()));
    for command in ["serve", "worker"] {
        let (status, _, err) = run_bin(&[command], &env);
        assert!(!status.success(), "{command} started without a key");
        assert!(err.contains("secrets.encryption_key"), "{command}: {err}");
    }
    // A key that is not 32 bytes of base64 is refused too.
    env.push((
        "BIZCONTACTS__SECRETS__ENCRYPTION_KEY".into(),
        "c2hvcnQ=".into(),
    ));
    let (status, _, err) = run_bin(&["serve"], &env);
    assert!(!status.success());
    assert!(err.contains("not base64 of 32 bytes"), "{err}");
}

#[tokio::test]
async fn a_developer_machine_makes_its_secrets_key_once_and_keeps_it() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config/local.secrets.yaml");
    let mut first = None;
    for _ in 0..2 {
        let addr = free_addr();
        let mut env = bin_env(&db, &redis, &addr);
        env.retain(|(k, _)| k != "BIZCONTACTS_ENV");
        env.push(("BIZCONTACTS_ENV".into(), "local".into()));
        let mut serve = tokio::process::Command::new(BIN)
            .arg("serve")
            .envs(env.iter().cloned())
            .env_remove("BIZCONTACTS__SECRETS__ENCRYPTION_KEY")
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        wait_ready(&format!("http://{addr}/readyz")).await;
        serve.start_kill().unwrap();
        serve.wait().await.unwrap();
        let key = std::fs::read_to_string(&file).unwrap();
        assert!(key.contains("encryption_key"), "{key}");
        match &first {
            None => first = Some(key),
            Some(k) => assert_eq!(*k, key, "the second start kept the first key"),
        }
    }
}
