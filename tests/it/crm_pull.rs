//! `crm_pull` against a fake HighLevel: 25,000 contacts across the
//! 10,000-record page limit staged once as a `crm_pull` batch; a worker
//! killed mid-pull resumes from its last page.

use crate::crm::{setup_with, Crmed};
use crate::harness::{problem, wait_until};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

async fn connect(c: &Crmed) {
    c.fake.private_key("pit-pull", "loc-1");
    let res = c
        .app
        .client
        .put(c.app.url(&c.path("private-integration")))
        .bearer_auth(&c.admin)
        .json(&json!({ "token": "pit-pull", "location_id": "loc-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

async fn start_pull(c: &Crmed) -> (Uuid, Uuid) {
    let res = c.app.post(&c.path("pull"), &c.admin).send().await.unwrap();
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    let id = |k: &str| body[k].as_str().unwrap().parse::<Uuid>().unwrap();
    (id("job_id"), id("import_id"))
}

async fn finished(c: &Crmed, job: Uuid) {
    wait_until(60, "the pull job succeeds", || async {
        c.app.job_status(job).await == "succeeded"
    })
    .await;
}

/// (rows, distinct emails, distinct row numbers) staged in the batch.
async fn staged(c: &Crmed, import: Uuid) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT count(*), count(DISTINCT email), count(DISTINCT row_number)
         FROM staged_rows WHERE import_id = $1",
    )
    .bind(import)
    .fetch_one(&c.app.store.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_pull_stages_every_contact_once_across_the_page_limit() {
    let c = setup_with(|s| {
        s.highlevel.burst_limit = 1000;
        s.highlevel.burst_window_ms = 1000;
    })
    .await;
    c.fake.set_limit(1000, Duration::from_secs(1));
    let res = c.app.post(&c.path("pull"), &c.admin).send().await.unwrap();
    problem(res, 409).await;
    connect(&c).await;
    c.fake.add_contacts("loc-1", 0, 25_000);
    let _worker = c.app.worker().await;
    let (job, import) = start_pull(&c).await;
    wait_until(120, "the pull job succeeds", || async {
        let status = c.app.job_status(job).await;
        assert!(!["dead", "failed"].contains(&status.as_str()), "{status}");
        status == "succeeded"
    })
    .await;
    assert_eq!(staged(&c, import).await, (25_000, 25_000, 25_000));
    let batch = c
        .app
        .get_json(
            &format!("/v1/tenants/{}/imports/{import}", c.tenant),
            &c.admin,
        )
        .await;
    assert_eq!(batch["source"], "crm_pull", "{batch}");
    assert_eq!(batch["status"], "staged", "{batch}");
    let listed = c
        .app
        .get_json(&format!("/v1/tenants/{}/imports", c.tenant), &c.admin)
        .await;
    assert!(listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["import_id"] == json!(import) && b["source"] == "crm_pull"));
    let job_view = c
        .app
        .get_json(&format!("/v1/tenants/{}/jobs/{job}", c.tenant), &c.admin)
        .await;
    assert_eq!(job_view["params"]["import_id"], json!(import), "{job_view}");
    // HighLevel's fields land in ours; tags stay in the row as it came.
    let (company, city, raw): (Option<String>, Option<String>, Option<String>) = sqlx::query_as(
        "SELECT company_name, city, raw FROM staged_rows WHERE import_id = $1 AND row_number = 12345",
    )
    .bind(import)
    .fetch_one(&c.app.store.pool)
    .await
    .unwrap();
    assert_eq!(company.as_deref(), Some("Pulled 12344 Ltd"));
    assert_eq!(city.as_deref(), Some("London"));
    assert!(raw.unwrap().contains("vip"));
}

#[tokio::test]
async fn a_worker_killed_mid_pull_resumes_and_stages_nothing_twice() {
    // Slow enough to kill mid-way: 4 pages a second.
    let c = setup_with(|s| {
        s.highlevel.burst_limit = 4;
        s.highlevel.burst_window_ms = 1000;
    })
    .await;
    c.fake.set_limit(4, Duration::from_secs(1));
    connect(&c).await;
    c.fake.add_contacts("loc-1", 0, 12_000);
    let env = [
        ("BIZCONTACTS__HIGHLEVEL__API_BASE_URL", c.fake.base.as_str()),
        ("BIZCONTACTS__HIGHLEVEL__BURST_LIMIT", "4"),
        ("BIZCONTACTS__HIGHLEVEL__BURST_WINDOW_MS", "1000"),
    ];
    let mut worker = c.app.spawn_process("worker", &env);
    let (job, import) = start_pull(&c).await;
    wait_until(60, "some pages staged", || async {
        staged(&c, import).await.0 >= 2_000
    })
    .await;
    worker.0.start_kill().unwrap();
    worker.0.wait().await.unwrap();
    let before = staged(&c, import).await.0;
    assert!(before < 12_000, "killed mid-pull");
    let _again = c.app.spawn_process("worker", &env);
    wait_until(120, "the pull resumes and succeeds", || async {
        c.app.job_status(job).await == "succeeded"
    })
    .await;
    assert_eq!(staged(&c, import).await, (12_000, 12_000, 12_000));
}

#[tokio::test]
async fn a_burst_of_contact_webhooks_becomes_one_pull_a_minute_later() {
    let signer = std::sync::Arc::new(crate::crm::Signer::new());
    let keys = signer.clone();
    let c = setup_with(move |s| {
        s.highlevel.webhook_ed25519_public_key = keys.ed_pem.clone();
    })
    .await;
    connect(&c).await;
    let now = chrono::Utc::now();
    let deliveries = (0..6).map(|i| {
        let body = serde_json::to_vec(&json!({
            "type": if i % 2 == 0 { "ContactCreate" } else { "ContactUpdate" },
            "webhookId": format!("burst-{i}"), "timestamp": now.to_rfc3339(),
            "locationId": "loc-1", "id": format!("crm-{i}"),
        }))
        .unwrap();
        let sig = signer.ed(&body);
        c.app
            .client
            .post(c.app.url("/v1/webhooks/highlevel"))
            .header("x-ghl-signature", sig)
            .header("content-type", "application/json")
            .body(body)
            .send()
    });
    for res in futures::future::join_all(deliveries).await {
        assert_eq!(res.unwrap().status(), 200);
    }
    let pulls: Vec<(String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT status, run_after FROM jobs WHERE kind = 'crm_pull' AND tenant_id = $1",
    )
    .bind(c.tenant.0)
    .fetch_all(&c.app.store.pool)
    .await
    .unwrap();
    assert_eq!(pulls.len(), 1, "one pull for the burst: {pulls:?}");
    let wait = pulls[0].1 - now;
    assert!(wait > chrono::Duration::seconds(50) && wait < chrono::Duration::seconds(70));
    assert_eq!(c.app.count("crm_contact_events").await, 6);

    // Suspended (and the waiting pull done with): events are recorded and
    // start no pull.
    sqlx::query("UPDATE jobs SET status = 'cancelled' WHERE kind = 'crm_pull'")
        .execute(&c.app.store.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE tenants SET status = 'suspended' WHERE id = $1")
        .bind(c.tenant.0)
        .execute(&c.app.store.pool)
        .await
        .unwrap();
    let body = serde_json::to_vec(&json!({
        "type": "ContactCreate", "webhookId": "while-suspended", "timestamp": now.to_rfc3339(),
        "locationId": "loc-1", "id": "crm-s",
    }))
    .unwrap();
    let res = c
        .app
        .client
        .post(c.app.url("/v1/webhooks/highlevel"))
        .header("x-ghl-signature", signer.ed(&body))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(c.app.count("crm_contact_events").await, 7);
    let waiting: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE kind = 'crm_pull' AND status <> 'cancelled'",
    )
    .fetch_one(&c.app.store.pool)
    .await
    .unwrap();
    assert_eq!(waiting, 0, "a suspended tenant's webhook starts no pull");
}

#[tokio::test]
async fn the_nightly_tick_starts_one_pull_per_connected_tenant_spread_over_an_hour() {
    let c = setup_with(|_| {}).await;
    connect(&c).await;
    // A second connected tenant, a disconnected one, and a connected but
    // suspended one (skipped).
    let other = c.app.tenant(bizcontacts_domain::PackageName::Pro).await;
    let gone = c.app.tenant(bizcontacts_domain::PackageName::Pro).await;
    let suspended = c.app.tenant(bizcontacts_domain::PackageName::Pro).await;
    sqlx::query("UPDATE tenants SET status = 'suspended' WHERE id = $1")
        .bind(suspended.0)
        .execute(&c.app.store.pool)
        .await
        .unwrap();
    for (t, status) in [
        (other, "connected"),
        (gone, "disconnected"),
        (suspended, "connected"),
    ] {
        sqlx::query(
            "INSERT INTO crm_connections (tenant_id, method, status, location_id, token_sealed, token_key_id)
             VALUES ($1, 'private_integration', $2, 'loc-x', CASE WHEN $2 = 'connected' THEN '\\x00'::bytea END,
                     CASE WHEN $2 = 'connected' THEN 'k' END)",
        )
        .bind(t.0)
        .bind(status)
        .execute(&c.app.store.pool)
        .await
        .unwrap();
    }
    let ledger = c.app.ledger().await;
    let schedule = bizcontacts_jobs::schedules()
        .into_iter()
        .find(|s| s.name == "crm_pull")
        .unwrap();
    let tick: chrono::DateTime<chrono::Utc> = "2026-12-02T02:00:00Z".parse().unwrap();
    // Two schedulers firing the same tick: one job per tenant.
    bizcontacts_queue::scheduler::fire(&ledger, &schedule, tick)
        .await
        .unwrap();
    bizcontacts_queue::scheduler::fire(&ledger, &schedule, tick)
        .await
        .unwrap();
    let jobs: Vec<(uuid::Uuid, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT tenant_id, run_after FROM jobs WHERE kind = 'crm_pull' ORDER BY tenant_id",
    )
    .fetch_all(&c.app.store.pool)
    .await
    .unwrap();
    let mut expected = vec![c.tenant.0, other.0];
    expected.sort();
    assert_eq!(jobs.iter().map(|j| j.0).collect::<Vec<_>>(), expected);
    for (_, at) in &jobs {
        assert!(
            *at >= tick && *at < tick + chrono::Duration::hours(1),
            "{at}"
        );
    }
}

#[tokio::test]
async fn a_later_pull_stages_only_contacts_whose_content_changed() {
    let c = setup_with(|s| {
        s.highlevel.burst_limit = 1000;
        s.highlevel.burst_window_ms = 1000;
    })
    .await;
    c.fake.set_limit(1000, Duration::from_secs(1));
    connect(&c).await;
    c.fake.add_contacts("loc-1", 0, 1_200);
    let _worker = c.app.worker().await;
    let (job, first) = start_pull(&c).await;
    finished(&c, job).await;
    assert_eq!(staged(&c, first).await.0, 1_200, "the first pull is full");

    // Ten contacts touched in HighLevel, four of them really changed.
    let touched: Vec<String> = (100..110).map(|i| format!("hl-seed-{i:06}")).collect();
    let touched: Vec<&str> = touched.iter().map(String::as_str).collect();
    c.fake.touch("loc-1", &touched[..6], |_| {});
    c.fake
        .touch("loc-1", &touched[6..], |f| f["city"] = json!("Leeds"));
    let (job, second) = start_pull(&c).await;
    finished(&c, job).await;
    assert_eq!(staged(&c, second).await.0, 4, "only the changed contacts");
    let cities: Vec<Option<String>> =
        sqlx::query_scalar("SELECT DISTINCT city FROM staged_rows WHERE import_id = $1")
            .bind(second)
            .fetch_all(&c.app.store.pool)
            .await
            .unwrap();
    assert_eq!(cities, vec![Some("Leeds".to_string())]);

    // Nothing new: an empty, staged batch that says so.
    let (job, third) = start_pull(&c).await;
    finished(&c, job).await;
    assert_eq!(staged(&c, third).await.0, 0);
    let batch = c
        .app
        .get_json(
            &format!("/v1/tenants/{}/imports/{third}", c.tenant),
            &c.admin,
        )
        .await;
    assert_eq!(batch["status"], "staged", "{batch}");
}
