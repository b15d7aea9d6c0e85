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
