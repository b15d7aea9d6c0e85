//! One tenant must never take the service down: misbehaving clients (slow
//! uploads, password guessing, huge rows) against a tenant that behaves.

use crate::harness::{problem, TestApp, TestDb};
use bizcontacts_domain::{PackageName, Role};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A client that opens an upload, sends its headers and the CSV header line,
/// then trickles one byte every `every` (the slowloris of uploads).
async fn slow_upload(base: &str, path: &str, token: &str) -> TcpStream {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: text/csv\r\nContent-Length: 1000000\r\n\r\ncompany_name,email\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

/// The status line of whatever the server answered so far, if it answered.
async fn answered(s: &mut TcpStream) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(Duration::from_millis(50), s.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => Some(
            String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or("")
                .to_string(),
        ),
        _ => None,
    }
}

#[tokio::test]
async fn slow_uploads_of_one_tenant_do_not_starve_another() {
    // A short idle timeout so the test sees it; the trickle stays under it.
    let app = TestApp::spawn_with(TestDb::new().await, |s| {
        s.http.body_idle_timeout_secs = 3;
    })
    .await;
    let a = app.tenant(PackageName::Enterprise).await;
    let b = app.tenant(PackageName::Pro).await;
    let importer_a = app.member(a, Role::Importer).await;
    let importer_b = app.member(b, Role::Importer).await;

    // Twelve slow uploads from tenant A: more than the pool has connections.
    let path = format!("/v1/tenants/{a}/imports/csv");
    let mut slow = Vec::new();
    for _ in 0..12 {
        slow.push(slow_upload(&app.base, &path, &importer_a.token).await);
    }

    // Meanwhile tenant B reads and writes, and each request must succeed at
    // once: a request that waits for a pool connection would time out here.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(4))
        .build()
        .unwrap();
    let mut latencies = Vec::new();
    let mut statuses = Vec::new();
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(8) {
        for s in slow.iter_mut() {
            // Writes to uploads the server already refused may fail; fine.
            let _ = s.write_all(b"x").await;
        }
        let t = Instant::now();
        let res = if i % 2 == 0 {
            client
                .get(app.url(&format!("/v1/tenants/{b}/usage")))
                .bearer_auth(&importer_b.token)
                .send()
                .await
        } else {
            client
                .post(app.url(&format!("/v1/tenants/{b}/imports/manual")))
                .bearer_auth(&importer_b.token)
                .json(&serde_json::json!({"company_name": format!("Acme {i}")}))
                .send()
                .await
        };
        latencies.push(t.elapsed());
        statuses.push(res.map(|r| r.status().as_u16()).unwrap_or(0));
        i += 1;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    latencies.sort();
    eprintln!(
        "tenant B during 12 slow uploads of tenant A: {} requests, statuses {:?}, latency p50 {:?} max {:?}",
        statuses.len(),
        statuses,
        latencies[latencies.len() / 2],
        latencies.last().unwrap()
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 201),
        "tenant B's requests failed while A uploaded slowly: {statuses:?}"
    );

    // Tenant A got its concurrent-upload cap: the uploads past it were
    // refused at once with a 429 naming the limit.
    let mut refused = 0;
    for s in slow.iter_mut() {
        if let Some(line) = answered(s).await {
            assert!(line.contains("429"), "unexpected answer: {line}");
            refused += 1;
        }
    }
    let cap = app.settings.imports.max_concurrent_uploads_per_tenant;
    assert_eq!(
        refused,
        12 - cap,
        "uploads past the cap of {cap} are refused"
    );

    // A's uploads that stop sending are ended with a 408 after the idle
    // timeout, and leave no batch behind.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut timed_out = 0;
    for s in slow.iter_mut() {
        if let Some(line) = answered(s).await {
            if line.contains("408") {
                timed_out += 1;
            }
        }
    }
    assert_eq!(timed_out, cap, "idle uploads end with 408");
    let batches: i64 = sqlx::query_scalar("SELECT count(*) FROM imports WHERE tenant_id = $1")
        .bind(a.0)
        .fetch_one(&app.store.pool)
        .await
        .unwrap();
    assert_eq!(batches, 0, "an abandoned upload leaves nothing behind");

    // And once they are gone, A can upload again.
    let res = app
        .post(&path, &importer_a.token)
        .header("content-type", "text/csv")
        .body("company_name\nAcme\n")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_a_408_problem() {
    let app = TestApp::spawn_with(TestDb::new().await, |s| {
        s.http.body_idle_timeout_secs = 1;
    })
    .await;
    let tenant = app.tenant(PackageName::Pro).await;
    let user = app.member(tenant, Role::OrgAdmin).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/tenants/{tenant}/api-keys HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":",
        user.token
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("the server ends the request")
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    assert!(text.contains("request body"), "{text}");
}

async fn login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/login"))
        .json(&serde_json::json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
}

async fn audited_failures(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action LIKE 'auth.login_%' AND action <> 'auth.login'")
        .fetch_one(&app.store.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn password_guessing_is_throttled_per_account() {
    // A long first lock, so no lock runs out while the test guesses.
    let app = TestApp::spawn_with(TestDb::new().await, |s| {
        s.auth.login_backoff_base_ms = 60_000;
    })
    .await;
    let user = app.user().await;
    let free = app.settings.auth.login_free_failures;
    let mut statuses = Vec::new();
    let mut retry_after = Vec::new();
    for i in 0..60 {
        let res = login(&app, &user.email, &format!("guess-{i}")).await;
        statuses.push(res.status().as_u16());
        if res.status() == 429 {
            retry_after.push(
                res.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap(),
            );
            let body = problem(res, 429).await;
            assert!(body["detail"]
                .as_str()
                .unwrap()
                .contains("sign-in attempts"));
        }
    }
    let unauthorized = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(unauthorized, free as usize, "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        60 - free as usize
    );
    assert!(retry_after.iter().all(|s| *s >= 1));

    // The right password during the back-off is refused too (no oracle), and
    // nothing was hashed or audited per throttled attempt.
    assert_eq!(login(&app, &user.email, &user.password).await.status(), 429);
    let audited = audited_failures(&app).await;
    assert!(
        audited <= free as i64 + 1,
        "failures audited {audited} times for 61 attempts"
    );

    // Another account is not affected by this one's lock.
    let other = app.user().await;
    assert_eq!(
        login(&app, &other.email, &other.password).await.status(),
        200
    );
}

#[tokio::test]
async fn back_off_grows_and_a_success_clears_it() {
    let app = TestApp::spawn_with(TestDb::new().await, |s| {
        s.auth.login_backoff_base_ms = 200;
    })
    .await;
    let user = app.user().await;
    let free = app.settings.auth.login_free_failures;
    for i in 0..free {
        assert_eq!(
            login(&app, &user.email, &format!("no-{i}")).await.status(),
            401
        );
    }
    // The first lock is short: after it, one more guess is heard (and fails),
    // and the next lock is longer.
    let res = login(&app, &user.email, "again").await;
    assert_eq!(res.status(), 429);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(login(&app, &user.email, "still wrong").await.status(), 401);
    assert_eq!(login(&app, &user.email, "and again").await.status(), 429);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(login(&app, &user.email, &user.password).await.status(), 200);
    // A success starts the count over.
    for i in 0..free {
        assert_eq!(
            login(&app, &user.email, &format!("later-{i}"))
                .await
                .status(),
            401
        );
    }
}

#[tokio::test]
async fn one_address_guessing_many_accounts_is_throttled() {
    let app = TestApp::spawn().await;
    let per_address = app.settings.auth.login_address_free_failures;
    let mut statuses = Vec::new();
    for i in 0..per_address + 10 {
        // Every guess names another address: no single account locks.
        let res = login(&app, &format!("someone-{i}@example.com"), "password1").await;
        statuses.push(res.status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        per_address as usize,
        "{statuses:?}"
    );
    assert!(statuses[per_address as usize..].iter().all(|s| *s == 429));
}
