//! The job platform through its API, with a worker in the test process:
//! submission, idempotency, daily limits, retries, dead, admin retry,
//! cancellation in every state, tenant fairness, Redis data loss.

use crate::harness::{problem, test_job, wait_until, TestApp};
use bizcontacts_domain::{PackageName, Role, SystemRole};
use serde_json::{json, Value};

async fn job(app: &TestApp, tenant: bizcontacts_domain::TenantId, token: &str, id: &str) -> Value {
    app.get(&format!("/v1/tenants/{tenant}/jobs/{id}"), token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn submitted_job_runs_and_reports_its_life() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant(PackageName::Pro).await;
    let user = app.member(tenant, Role::Member).await;
    let _worker = app.worker().await;
    let res = app
        .post(&format!("/v1/tenants/{tenant}/jobs"), &user.token)
        .json(&json!({ "kind": "test_sleep", "params": { "ms": 200, "label": "life" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(res.headers()["x-usage-limit"], "2000");
    assert_eq!(res.headers()["x-usage-remaining"], "1999");
    let created: Value = res.json().await.unwrap();
    let id = created["job_id"].as_str().unwrap().to_string();
    assert_eq!(created["status"], "queued");
    wait_until(20, "job succeeded", || async {
        job(&app, tenant, &user.token, &id).await["status"] == "succeeded"
    })
    .await;
    let done = job(&app, tenant, &user.token, &id).await;
    assert_eq!(done["attempts"], 1);
    assert!(done["progress"]["done"].as_i64().unwrap() >= 1);
    assert!(done["started_at"].is_string() && done["finished_at"].is_string());
    let list: Value = app
        .get(
            &format!("/v1/tenants/{tenant}/jobs?kind=test_sleep&status=succeeded"),
            &user.token,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["job_id"], id.as_str());
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "jobs_enqueued_total",
        "jobs_started_total",
        "jobs_succeeded_total",
        "job_duration_seconds",
    ] {
        assert!(
            metrics.contains(&format!("{name}{{kind=\"test_sleep\"}}"))
                || metrics.contains(&format!("{name}_bucket{{kind=\"test_sleep\"")),
            "{name} missing"
        );
    }
}

#[tokio::test]
async fn submission_is_checked_before_anything_is_written() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant(PackageName::Pro).await;
    let admin = app.member(tenant, Role::OrgAdmin).await;
    let path = format!("/v1/tenants/{tenant}/jobs");
    for (body, field, needle) in [
        // Platform kinds: a tenant cannot start a reconciliation or a deletion.
        (
            json!({ "kind": "billing_reconcile", "params": { "at": "2026-12-02T00:00:00Z" } }),
            "kind",
            "platform",
        ),
        (
            json!({ "kind": "tenant_delete", "params": { "tenant_id": "01a235a2-82b6-74d6-a8e9-79376c1c3f16" } }),
            "kind",
            "platform",
        ),
        (json!({ "kind": "no_such_kind" }), "kind", "not available"),
        (
            json!({ "kind": "quota_reset", "params": { "day": "2026-01-01" } }),
            "kind",
            "platform",
        ),
        (
            json!({ "kind": "test_sleep", "params": { "ms": "soon" } }),
            "params",
            "invalid type",
        ),
    ] {
        let res = app
            .post(&path, &admin.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let p = problem(res, 422).await;
        assert_eq!(p["errors"][0]["field"], field, "{p}");
        assert!(p["detail"].as_str().unwrap().contains(needle), "{p}");
    }
    assert_eq!(app.count("jobs").await, 0);
    let used: Option<i32> = sqlx::query_scalar("SELECT jobs FROM usage_daily WHERE tenant_id = $1")
        .bind(tenant.0)
        .fetch_optional(&app.store.pool)
        .await
        .unwrap();
    assert_eq!(used.unwrap_or(0), 0, "refused submissions cost nothing");
}

#[tokio::test]
async fn same_idempotency_key_same_job() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant(PackageName::Pro).await;
    let user = app.member(tenant, Role::Member).await;
    let path = format!("/v1/tenants/{tenant}/jobs");
    let mut ids = Vec::new();
    for expected in [202, 200, 200] {
        let res = app
            .post(&path, &user.token)
            .header("idempotency-key", "nightly-2026-11-23")
            .json(&json!({ "kind": "test_noop" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), expected);
        let body: Value = res.json().await.unwrap();
        ids.push(body["job_id"].as_str().unwrap().to_string());
    }
    assert!(ids.iter().all(|i| *i == ids[0]));
    assert_eq!(app.count("jobs").await, 1);
    // Another job under the same key is refused, not answered with the first.
    let res = app
        .post(&path, &user.token)
        .header("idempotency-key", "nightly-2026-11-23")
        .json(&json!({ "kind": "test_sleep", "params": { "ms": 1 } }))
        .send()
        .await
        .unwrap();
    let body = crate::harness::problem(res, 422).await;
    assert_eq!(body["errors"][0]["field"], "Idempotency-Key");
    assert_eq!(app.count("jobs").await, 1);
    // Another tenant may use the same key for its own job.
    let other = app.tenant(PackageName::Pro).await;
    let other_user = app.member(other, Role::Member).await;
    let res = app
        .post(&format!("/v1/tenants/{other}/jobs"), &other_user.token)
        .header("idempotency-key", "nightly-2026-11-23")
        .json(&json!({ "kind": "test_noop" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(app.count("jobs").await, 2);
}

#[tokio::test]
async fn daily_job_limit_is_a_429_naming_the_limit() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant(PackageName::Free).await; // 20 jobs per day
    let user = app.member(tenant, Role::Member).await;
    let path = format!("/v1/tenants/{tenant}/jobs");
    for i in 0..20 {
        let res = app
            .post(&path, &user.token)
            .json(&json!({ "kind": "test_noop" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202, "job {i}");
    }
    let res = app
        .post(&path, &user.token)
        .json(&json!({ "kind": "test_noop" }))
        .send()
        .await
        .unwrap();
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0 && retry_after <= 86_400);
    assert_eq!(res.headers()["x-usage-limit"], "20");
    assert_eq!(res.headers()["x-usage-remaining"], "0");
    let p = problem(res, 429).await;
    assert_eq!(p["limit"], "jobs_per_day");
    assert_eq!(app.count("jobs").await, 20);
}

#[tokio::test]
async fn failing_job_retries_to_dead_and_admin_retry_brings_it_back() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant(PackageName::Pro).await;
    let user = app.member(tenant, Role::Member).await;
    let admin = app.system_user(SystemRole::PlatformAdmin).await;
    let _worker = app.worker().await;
    let path = format!("/v1/tenants/{tenant}/jobs");
    let res = app
        .post(&path, &user.token)
        .json(&json!({ "kind": "test_fail", "params": {} }))
        .send()
        .await
        .unwrap();
    let id = res.json::<Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let view = job(&app, tenant, &user.token, &id).await;
        if view["status"] == "dead" {
            break;
        }
        if std::time::Instant::now() > deadline {
            let row: String = sqlx::query_scalar(
                "SELECT row_to_json(j)::text FROM (SELECT status, attempts, pushed_at, run_after,
                 queued_at, push_seq, now() AS db_now FROM jobs WHERE id = $1::uuid) j",
            )
            .bind(&id)
            .fetch_one(&app.store.pool)
            .await
            .unwrap();
            panic!("job never dead: {view}\n{row}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let dead = job(&app, tenant, &user.token, &id).await;
    assert_eq!(dead["attempts"], 3, "exactly max attempts: {dead}");
    assert_eq!(dead["max_attempts"], 3);
    assert_eq!(dead["last_error"], "planned failure on attempt 3");

    // A permanent error fails at once, without retrying.
    let res = app
        .post(&path, &user.token)
        .json(&json!({ "kind": "test_fail", "params": { "permanent": true } }))
        .send()
        .await
        .unwrap();
    let perm = res.json::<Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_until(20, "job failed", || async {
        job(&app, tenant, &user.token, &perm).await["status"] == "failed"
    })
    .await;
    assert_eq!(job(&app, tenant, &user.token, &perm).await["attempts"], 1);

    // Admin retry: queued again with fresh attempts, runs again, audited.
    let res = app
        .post(&format!("/v1/admin/jobs/{id}/retry"), &admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let retried: Value = res.json().await.unwrap();
    assert!(
        ["queued", "running"].contains(&retried["status"].as_str().unwrap()),
        "{retried}"
    );
    wait_until(30, "dead again", || async {
        job(&app, tenant, &user.token, &id).await["status"] == "dead"
    })
    .await;
    assert_eq!(job(&app, tenant, &user.token, &id).await["attempts"], 3);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'job.retried' AND target_id = $1",
    )
    .bind(&id)
    .fetch_one(&app.store.pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    // Retrying a job that is neither failed nor dead is a conflict.
    let res = app
        .post(&path, &user.token)
        .json(&json!({ "kind": "test_noop" }))
        .send()
        .await
        .unwrap();
    let ok = res.json::<Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_until(20, "noop succeeded", || async {
        job(&app, tenant, &user.token, &ok).await["status"] == "succeeded"
    })
    .await;
    problem(
        app.post(&format!("/v1/admin/jobs/{ok}/retry"), &admin.token)
            .send()
            .await
            .unwrap(),
        409,
    )
    .await;
    let stats: Value = app
        .get("/v1/admin/jobs/stats", &admin.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        stats["counts"]["test_fail"]["dead"].as_i64().unwrap() >= 1,
        "{stats}"
    );
    assert!(stats["last_hour"]["failure_rate"].as_f64().unwrap() > 0.0);
    assert!(stats["queue_depth"].get("test_fail").is_some());
}

#[tokio::test]
async fn cancel_in_every_state() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant(PackageName::Free).await; // concurrent limit 1
    let user = app.member(tenant, Role::Member).await;
    let path = format!("/v1/tenants/{tenant}/jobs");
    let submit = |body: Value| {
        let app = &app;
        let path = path.clone();
        let token = user.token.clone();
        async move {
            let res = app.post(&path, &token).json(&body).send().await.unwrap();
            res.json::<Value>().await.unwrap()["job_id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let cancel = |id: String| {
        let app = &app;
        let token = user.token.clone();
        async move {
            app.post(&format!("/v1/tenants/{tenant}/jobs/{id}/cancel"), &token)
                .send()
                .await
                .unwrap()
        }
    };
    // No worker yet. Queued: cancelled at once.
    let queued = submit(json!({ "kind": "test_noop" })).await;
    assert_eq!(
        job(&app, tenant, &user.token, &queued).await["status"],
        "queued"
    );
    assert_eq!(cancel(queued.clone()).await.status(), 200);
    assert_eq!(
        job(&app, tenant, &user.token, &queued).await["status"],
        "cancelled"
    );

    // Deferred (the limit of 1 is taken by the sleeper): cancelled at once.
    let running = submit(json!({ "kind": "test_sleep", "params": { "ms": 20000 } })).await;
    let deferred = submit(json!({ "kind": "test_noop" })).await;
    let d = job(&app, tenant, &user.token, &deferred).await;
    assert_eq!(d["status"], "deferred");
    assert_eq!(d["waiting_reason"], "tenant at concurrent-job limit 1/1");
    assert_eq!(cancel(deferred.clone()).await.status(), 200);
    assert_eq!(
        job(&app, tenant, &user.token, &deferred).await["status"],
        "cancelled"
    );

    // Running: asked to stop, stops at its next checkpoint.
    let _worker = app.worker().await;
    wait_until(20, "job running", || async {
        job(&app, tenant, &user.token, &running).await["status"] == "running"
    })
    .await;
    let res = cancel(running.clone()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["cancel_requested"], true);
    wait_until(20, "running job cancelled at a checkpoint", || async {
        job(&app, tenant, &user.token, &running).await["status"] == "cancelled"
    })
    .await;
    let effects: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = 'test.effect'")
            .fetch_one(&app.store.pool)
            .await
            .unwrap();
    assert_eq!(effects, 0, "a cancelled job has no effect");
    // Terminal: a conflict. Another tenant's job: not found.
    problem(cancel(running.clone()).await, 409).await;
    let other = app.tenant(PackageName::Pro).await;
    let stranger = app.member(other, Role::OrgAdmin).await;
    let res = app
        .post(
            &format!("/v1/tenants/{other}/jobs/{running}/cancel"),
            &stranger.token,
        )
        .send()
        .await
        .unwrap();
    problem(res, 404).await;
    // A caller without jobs:read cannot cancel.
    let billing = app.member(tenant, Role::BillingManager).await;
    let res = app
        .post(
            &format!("/v1/tenants/{tenant}/jobs/{running}/cancel"),
            &billing.token,
        )
        .send()
        .await
        .unwrap();
    problem(res, 403).await;
}

#[tokio::test]
async fn a_tenant_backlog_does_not_starve_another_tenant() {
    let app = TestApp::spawn().await;
    let big = app.tenant(PackageName::Enterprise).await; // concurrent limit 20
    let small = app.tenant(PackageName::Starter).await;
    let backlog: Vec<_> = (0..10_000)
        .map(|_| test_job(Some(big), "test_sleep", json!({ "ms": 20 })))
        .collect();
    let big_ids = app.enqueue(backlog).await;
    assert_eq!(
        app.count_status(&big_ids, "queued").await,
        20,
        "only the limit is admitted to Redis"
    );
    let small_id = app
        .enqueue(vec![test_job(Some(small), "test_noop", json!({}))])
        .await[0];
    let _worker = app.worker().await;
    wait_until(30, "small tenant's job done", || async {
        app.job_status(small_id).await == "succeeded"
    })
    .await;
    // Counted in jobs, not seconds: how many of the big tenant's jobs started first.
    let before: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE tenant_id = $1 AND started_at < (SELECT started_at FROM jobs WHERE id = $2)",
    )
    .bind(big.0)
    .bind(small_id)
    .fetch_one(&app.store.pool)
    .await
    .unwrap();
    assert!(
        before <= 3 * 20,
        "{before} of the backlog started before the other tenant's first job"
    );
}

#[tokio::test]
async fn redis_losing_everything_loses_no_job() {
    let app = TestApp::spawn().await;
    let ids = app
        .enqueue(
            (0..1000)
                .map(|_| test_job(None, "test_noop", json!({})))
                .collect(),
        )
        .await;
    // FLUSHALL for this deployment: every key under its prefix (a real FLUSHALL
    // would also wipe the Redis state of tests running in parallel).
    wipe_prefix(&app).await;
    let _worker = app.worker().await;
    wait_until(60, "all 1,000 jobs succeeded", || async {
        app.count_status(&ids, "succeeded").await == 1000
    })
    .await;
    // And once more while the worker is running.
    let more = app
        .enqueue(
            (0..200)
                .map(|_| test_job(None, "test_noop", json!({})))
                .collect(),
        )
        .await;
    wipe_prefix(&app).await;
    wait_until(60, "200 more succeeded", || async {
        app.count_status(&more, "succeeded").await == 200
    })
    .await;
}

async fn wipe_prefix(app: &TestApp) {
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", app.redis.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    let _: () = redis::cmd("DEL")
        .arg(keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn every_product_kind_has_a_handler_and_a_concurrency() {
    let app = TestApp::spawn().await;
    let redis = bizcontacts::runtime::redis(&app.settings).await.unwrap();
    let registry = bizcontacts::runtime::registry(&app.settings, &redis).unwrap();
    for kind in bizcontacts_jobs::PRODUCT_KINDS {
        assert!(registry.get(kind).is_some(), "{kind} has no handler");
        assert!(
            app.settings.jobs.concurrency.contains_key(kind),
            "{kind} has no jobs.concurrency entry: {:?}",
            app.settings.jobs.concurrency
        );
    }
}
