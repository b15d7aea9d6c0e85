//! `crm_push` against a fake HighLevel that enforces its per-Location
//! limit: each saved contact exists once in the CRM, unchanged contacts are
//! not sent again, changed ones are updated by id, an unknown outcome is
//! reconciled instead of creating again, 429s are waited out.

use crate::crm::{setup_with, Crmed};
use crate::harness::{problem, wait_until};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

/// `n` saved contacts with email and phone, and one with neither.
async fn saved_contacts(c: &Crmed, n: usize) -> (Vec<Uuid>, Uuid) {
    let mut ids = Vec::new();
    for i in 0..=n {
        let id = Uuid::now_v7();
        let (email, phone) = if i < n {
            (
                Some(format!("lead{i}@push.example")),
                Some(format!("+4420794600{i:02}")),
            )
        } else {
            (None, None)
        };
        sqlx::query(
            "INSERT INTO contacts (id, company_name, first_name, last_name, email, phone, city, country)
             VALUES ($1, $2, 'Lee', 'Ad', $3, $4, 'London', 'GB')",
        )
        .bind(id)
        .bind(format!("Lead {i} Ltd"))
        .bind(email)
        .bind(phone)
        .execute(&c.app.store.pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO saved_contacts (id, tenant_id, contact_id) VALUES ($1, $2, $3)")
            .bind(Uuid::now_v7())
            .bind(c.tenant.0)
            .bind(id)
            .execute(&c.app.store.pool)
            .await
            .unwrap();
        ids.push(id);
    }
    let none = ids.pop().unwrap();
    (ids, none)
}

async fn connect_with_key(c: &Crmed) {
    c.fake.private_key("pit-push", "loc-1");
    let res = c
        .app
        .client
        .put(c.app.url(&c.path("private-integration")))
        .bearer_auth(&c.admin)
        .json(&json!({ "token": "pit-push", "location_id": "loc-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// Ask for a push (202); its answer and job.
async fn start_push(c: &Crmed, ids: &[Uuid]) -> (Value, Uuid) {
    let res = c
        .app
        .post(&c.path("push"), &c.admin)
        .json(&json!({ "contact_ids": ids }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    let job = body["job_id"].as_str().unwrap().parse().unwrap();
    (body, job)
}

/// Push and wait for the job to succeed; its answer.
async fn push(c: &Crmed, ids: &[Uuid]) -> Value {
    let (body, job) = start_push(c, ids).await;
    wait_until(120, "the push job succeeds", || async {
        let status = c.app.job_status(job).await;
        assert!(
            !["dead", "failed", "cancelled"].contains(&status.as_str()),
            "{status}"
        );
        status == "succeeded"
    })
    .await;
    body
}

async fn records(c: &Crmed, query: &str) -> Vec<Value> {
    let page = c
        .app
        .get_json(&format!("{}?limit=200&{query}", c.path("pushes")), &c.admin)
        .await;
    page["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn each_contact_once_unchanged_not_sent_changes_updated_lost_outcomes_reconciled() {
    // Our budget and HighLevel's limit alike: 10 requests a second.
    let c = setup_with(|s| {
        s.highlevel.burst_limit = 10;
        s.highlevel.burst_window_ms = 1000;
    })
    .await;
    c.fake.set_limit(10, Duration::from_secs(1));
    let (ids, none) = saved_contacts(&c, 25).await;
    // Not connected yet: nothing to push to.
    let res = c
        .app
        .post(&c.path("push"), &c.admin)
        .json(&json!({ "contact_ids": ids }))
        .send()
        .await
        .unwrap();
    problem(res, 409).await;
    connect_with_key(&c).await;
    let _worker = c.app.worker().await;

    let stranger = Uuid::now_v7();
    let mut all = ids.clone();
    all.push(none);
    all.push(stranger);
    let body = push(&c, &all).await;
    assert_eq!(body["accepted"], 26);
    assert_eq!(body["not_saved"], json!([stranger]));
    assert_eq!(c.fake.contacts("loc-1").len(), 25);
    assert_eq!(
        c.fake.rejected(),
        0,
        "the shared budget kept under the limit"
    );
    assert_eq!(records(&c, "result=pushed").await.len(), 25);
    let skipped = records(&c, "result=skipped").await;
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["contact_id"], json!(none));
    assert!(skipped[0]["error"]
        .as_str()
        .unwrap()
        .contains("neither email nor phone"));

    // Again, unchanged: nothing is sent.
    let calls = c.fake.contact_calls();
    push(&c, &ids).await;
    assert_eq!(c.fake.contact_calls(), calls);

    // A correction-free change of the canonical values: updated by id.
    sqlx::query("UPDATE contacts SET city = 'Leeds' WHERE id = $1")
        .bind(ids[0])
        .execute(&c.app.store.pool)
        .await
        .unwrap();
    push(&c, &ids).await;
    assert_eq!(c.fake.contact_calls(), calls + 1);
    let crm_id = records(&c, &format!("contact_id={}", ids[0])).await[0]["crm_contact_id"]
        .as_str()
        .unwrap()
        .to_string();
    let stored = c.fake.contacts("loc-1");
    let (_, fields) = stored.iter().find(|(id, _)| *id == crm_id).unwrap();
    assert_eq!(fields["city"], "Leeds");
    assert_eq!(stored.len(), 25);

    // A lost outcome (killed between HighLevel's answer and our commit):
    // reconciled by email/phone, updated, not created again.
    sqlx::query(
        "UPDATE crm_pushes SET status = 'pending', crm_contact_id = NULL, content_hash = '\\x00'
         WHERE contact_id = $1",
    )
    .bind(ids[1])
    .execute(&c.app.store.pool)
    .await
    .unwrap();
    push(&c, &ids[1..2]).await;
    assert_eq!(c.fake.contacts("loc-1").len(), 25);
    let record = &records(&c, &format!("contact_id={}", ids[1])).await[0];
    assert_eq!(record["result"], "pushed");
    assert!(record["crm_contact_id"]
        .as_str()
        .unwrap()
        .starts_with("hl-"));

    // Bad input: nothing saved, too many, unknown result filter.
    let res = c
        .app
        .post(&c.path("push"), &c.admin)
        .json(&json!({ "contact_ids": [stranger] }))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res, 422).await["errors"][0]["field"], "contact_ids");
    let res = c
        .app
        .get(&format!("{}?result=maybe", c.path("pushes")), &c.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res, 422).await["errors"][0]["field"], "result");
}

#[tokio::test]
async fn highlevel_headers_slow_a_looser_budget_down_before_any_429() {
    // Our budget looser than HighLevel's limit: its X-RateLimit-Remaining
    // reaching 0 holds the next request for its interval.
    let c = setup_with(|_| {}).await;
    c.fake.set_limit(5, Duration::from_millis(500));
    let (ids, _) = saved_contacts(&c, 20).await;
    connect_with_key(&c).await;
    let _worker = c.app.worker().await;
    push(&c, &ids).await;
    assert_eq!(c.fake.rejected(), 0, "slowed down early");
    assert_eq!(c.fake.contacts("loc-1").len(), 20, "each contact once");
}

#[tokio::test]
async fn a_429_is_waited_out_and_the_same_contact_sent_again() {
    // Another app spent the Location's budget: HighLevel answers 429s.
    let c = setup_with(|_| {}).await;
    let (ids, _) = saved_contacts(&c, 10).await;
    connect_with_key(&c).await;
    c.fake.reject_next(3);
    let _worker = c.app.worker().await;
    push(&c, &ids).await;
    assert_eq!(c.fake.rejected(), 3);
    assert_eq!(c.fake.contacts("loc-1").len(), 10, "each contact once");
    assert_eq!(records(&c, "result=pushed").await.len(), 10);
}

#[tokio::test]
async fn workers_killed_mid_push_leave_each_contact_once_in_the_crm() {
    // 1,000 saved contacts, two worker processes, HighLevel's limit scaled
    // to 100 a second so the test takes seconds, not minutes.
    let c = setup_with(|s| {
        s.highlevel.burst_limit = 100;
        s.highlevel.burst_window_ms = 1000;
    })
    .await;
    c.fake.set_limit(100, Duration::from_secs(1));
    let (ids, _) = saved_contacts(&c, 1000).await;
    connect_with_key(&c).await;
    let env = [
        ("BIZCONTACTS__HIGHLEVEL__API_BASE_URL", c.fake.base.as_str()),
        ("BIZCONTACTS__HIGHLEVEL__BURST_LIMIT", "100"),
        ("BIZCONTACTS__HIGHLEVEL__BURST_WINDOW_MS", "1000"),
    ];
    let mut workers = vec![
        c.app.spawn_process("worker", &env),
        c.app.spawn_process("worker", &env),
    ];
    let (_, job) = start_push(&c, &ids).await;
    // Kill -9 whichever worker runs the push, several times, mid-flight.
    let mut kills = 0;
    while kills < 4 && c.app.job_status(job).await != "succeeded" {
        let pushed = c.fake.contact_calls();
        wait_until(60, "the push makes progress", || async {
            c.fake.contact_calls() > pushed + 40 || c.app.job_status(job).await == "succeeded"
        })
        .await;
        for w in workers.iter_mut() {
            w.0.start_kill().unwrap();
            w.0.wait().await.unwrap();
        }
        kills += 1;
        workers = vec![
            c.app.spawn_process("worker", &env),
            c.app.spawn_process("worker", &env),
        ];
    }
    assert!(kills >= 2, "the push was interrupted");
    wait_until(120, "the push succeeds after the kills", || async {
        c.app.job_status(job).await == "succeeded"
    })
    .await;
    let stored = c.fake.contacts("loc-1");
    let mut emails: Vec<&str> = stored
        .iter()
        .map(|(_, f)| f["email"].as_str().unwrap())
        .collect();
    emails.sort_unstable();
    emails.dedup();
    assert_eq!(stored.len(), 1000, "no contact created twice, none missing");
    assert_eq!(emails.len(), 1000);
    let pushed: i64 = sqlx::query_scalar("SELECT count(*) FROM crm_pushes WHERE status = 'pushed'")
        .fetch_one(&c.app.store.pool)
        .await
        .unwrap();
    assert_eq!(pushed, 1000);
    assert_eq!(c.fake.rejected(), 0, "two processes shared the budget");
}

#[tokio::test]
async fn a_401_mid_push_refreshes_once_and_the_push_goes_on() {
    let c = setup_with(|s| {
        s.highlevel.burst_limit = 10;
        s.highlevel.burst_window_ms = 1000;
    })
    .await;
    c.fake.set_limit(10, Duration::from_secs(1));
    let (ids, _) = saved_contacts(&c, 30).await;
    c.oauth_connected("access-p", "refresh-p").await;
    let _worker = c.app.worker().await;
    let (_, job) = start_push(&c, &ids).await;
    wait_until(30, "the push is under way", || async {
        c.fake.contact_calls() >= 12
    })
    .await;
    // The access token dies mid-push (expired or revoked early).
    c.fake.expire_access_tokens();
    wait_until(60, "the push succeeds", || async {
        let status = c.app.job_status(job).await;
        assert!(!["dead", "failed"].contains(&status.as_str()), "{status}");
        status == "succeeded"
    })
    .await;
    assert_eq!(
        c.fake.refresh_calls(),
        1,
        "one refresh, then the push went on"
    );
    assert_eq!(c.fake.contacts("loc-1").len(), 30);
    assert_eq!(c.connection_status().await, "connected");
}

#[tokio::test]
async fn a_spent_daily_budget_parks_the_push_until_it_opens_without_failing_it() {
    let c = setup_with(|s| {
        s.highlevel.daily_limit = 6;
    })
    .await;
    let (ids, _) = saved_contacts(&c, 10).await;
    connect_with_key(&c).await;
    let _worker = c.app.worker().await;
    let (_, job) = start_push(&c, &ids).await;
    wait_until(30, "the push waits for the daily budget", || async {
        let (status, reason): (String, Option<String>) =
            sqlx::query_as("SELECT status, waiting_reason FROM jobs WHERE id = $1")
                .bind(job)
                .fetch_one(&c.app.store.pool)
                .await
                .unwrap();
        status == "queued" && reason.is_some_and(|r| r.contains("daily request budget"))
    })
    .await;
    let (attempts, run_after, error): (i32, chrono::DateTime<chrono::Utc>, Option<String>) =
        sqlx::query_as("SELECT attempts, run_after, last_error FROM jobs WHERE id = $1")
            .bind(job)
            .fetch_one(&c.app.store.pool)
            .await
            .unwrap();
    assert_eq!(attempts, 0, "waiting is not a failed attempt");
    assert!(error.is_none(), "{error:?}");
    assert!(run_after > chrono::Utc::now(), "until the budget opens");
    assert_eq!(
        c.fake.contacts("loc-1").len(),
        6,
        "as many as the budget allowed"
    );
    assert_eq!(records(&c, "result=pushed").await.len(), 6);
}
