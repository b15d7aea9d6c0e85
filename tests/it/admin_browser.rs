//! The admin dashboard in a real headless browser (Debian's chromium,
//! driven through chromedriver with fantoccini): sign in, find a failed
//! job, open it, retry it, see it succeed; bulk cancel; a tenant user is
//! turned away; a screenshot of the overview for CI's artifacts.
//!
//! Needs `chromedriver` and `chromium` on PATH (`.ci/run` installs them);
//! set `BIZCONTACTS_SKIP_BROWSER=1` to skip on a machine without them.

use crate::harness::*;
use bizcontacts_domain::{PackageName, Role, SystemRole};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::time::Duration;

/// chromedriver on a free port, killed when dropped.
struct Driver {
    process: std::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

async fn browser() -> Option<(Driver, Client)> {
    if std::env::var("BIZCONTACTS_SKIP_BROWSER").is_ok_and(|v| v == "1") {
        eprintln!("BIZCONTACTS_SKIP_BROWSER=1: browser test skipped");
        return None;
    }
    let port = free_addr().rsplit(':').next().unwrap().to_string();
    let process = std::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver on PATH (apt install chromium chromium-driver; .ci/run does)");
    let driver = Driver {
        process,
        url: format!("http://127.0.0.1:{port}"),
    };
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-background-networking", "--no-first-run", "--window-size=1366,900"] }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    for _ in 0..100 {
        if let Ok(c) = ClientBuilder::new(connector.clone())
            .capabilities(caps.clone())
            .connect(&driver.url)
            .await
        {
            return Some((driver, c));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start a browser session");
}

async fn sign_in(c: &Client, app: &TestApp, email: &str, password: &str) {
    c.goto(&app.url("/admin/login")).await.unwrap();
    c.find(Locator::Css("input[name=email]"))
        .await
        .unwrap()
        .send_keys(email)
        .await
        .unwrap();
    c.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    c.find(Locator::Css("form.login button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The page's text; a page still loading after a click is read again.
async fn text(c: &Client) -> String {
    for _ in 0..100 {
        if let Ok(body) = c.find(Locator::Css("body")).await {
            if let Ok(t) = body.text().await {
                return t;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the page never settled");
}

/// Wait (without reloading: a form's answer is not posted twice) until the
/// page shows `what`.
async fn shows(c: &Client, what: &str) {
    for _ in 0..100 {
        if text(c).await.contains(what) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the page never showed {what:?}: {}", text(c).await);
}

/// Reload until the page shows `what` (the worker is asynchronous).
async fn until_shown(c: &Client, what: &str) {
    for _ in 0..200 {
        if text(c).await.contains(what) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        c.refresh().await.unwrap();
    }
    panic!("the page never showed {what:?}: {}", text(c).await);
}

#[tokio::test]
async fn operator_retries_a_failed_job_and_bulk_cancels_in_a_browser() {
    let Some((_driver, c)) = browser().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let tenant = app.tenant(PackageName::Pro).await;
    let owner = app.member(tenant, Role::OrgAdmin).await;
    let admin = app.system_user(SystemRole::PlatformAdmin).await;
    let worker = app.worker().await;

    // A job that fails until an operator fixes its cause.
    let fix = tempfile::tempdir().unwrap();
    let fixed_by = fix.path().join("fixed");
    let mut failing = test_job(
        Some(tenant),
        "test_fail",
        json!({ "permanent": true, "fixed_by": fixed_by }),
    );
    failing.max_attempts = 1;
    let id = app.enqueue(vec![failing]).await[0];
    wait_until(30, "the job failed", || async {
        app.job_status(id).await == "failed"
    })
    .await;

    // A tenant user is turned away at the door.
    sign_in(&c, &app, &owner.email, &owner.password).await;
    shows(&c, "no platform role").await;
    assert!(c.get_named_cookie("bc_admin").await.is_err());

    // The operator signs in, finds the failed job, opens it, retries it.
    sign_in(&c, &app, &admin.email, &admin.password).await;
    shows(&c, "Jobs per kind").await;
    assert_eq!(
        c.current_url().await.unwrap().path(),
        "/admin",
        "signed in to the overview"
    );
    c.goto(&app.url("/admin/jobs?status=failed")).await.unwrap();
    let short = &id.to_string()[..8];
    c.find(Locator::LinkText(&format!("{short}…")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    shows(&c, "planned failure on attempt 1").await;
    std::fs::write(&fixed_by, b"fixed").unwrap();
    c.find(Locator::Id("retry"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_shown(&c, "succeeded").await;
    // Both runs are on the page: the failure, then the success.
    let runs = c
        .find(Locator::Css("table.runs"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        runs.contains("failed") && runs.contains("succeeded"),
        "{runs}"
    );
    assert_eq!(app.job_status(id).await, "succeeded");

    // Bulk cancel: three jobs not due for an hour, selected all at once.
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let waiting: Vec<_> = (0..3)
        .map(|_| {
            let mut j = test_job(Some(tenant), "test_noop", json!({}));
            j.run_after = Some(later);
            j
        })
        .collect();
    let ids = app.enqueue(waiting).await;
    c.goto(&app.url("/admin/jobs?kind=test_noop&status=queued"))
        .await
        .unwrap();
    c.find(Locator::Id("select-all"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Locator::Css("button[name=action][value=cancel]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    shows(&c, "Cancelled 3 job(s)").await;
    assert_eq!(app.count_status(&ids, "cancelled").await, 3);

    // The overview, for the CI artifacts: live counts and charts.
    c.goto(&app.url("/admin")).await.unwrap();
    until_shown(&c, "test_fail").await;
    let png = c.screenshot().await.unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("admin-overview.png"), &png).unwrap();
    assert!(png.len() > 10_000, "a real screenshot");

    c.close().await.unwrap();
    worker.stop().await;
}
