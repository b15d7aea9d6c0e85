//! The job platform with real worker and scheduler processes: kill -9 mid-job,
//! SIGTERM, two workers under a tenant limit of 1, three schedulers.

use crate::harness::{sigterm, test_job, wait_until, TestApp};
use bizcontacts_domain::PackageName;
use serde_json::json;
use std::time::Duration;

async fn effects(app: &TestApp, job: uuid::Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'test.effect' AND target_id = $1",
    )
    .bind(job.to_string())
    .fetch_one(&app.store.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn kill_9_mid_job_loses_nothing_and_the_effect_happens_once() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant(PackageName::Pro).await;
    let id = app
        .enqueue(vec![test_job(
            Some(tenant),
            "test_sleep",
            json!({ "ms": 2000, "label": "k9" }),
        )])
        .await[0];
    let mut first = app.spawn_worker_process();
    wait_until(30, "job running in the first worker", || async {
        app.job_status(id).await == "running"
    })
    .await;
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    assert_eq!(
        app.job_status(id).await,
        "running",
        "the ledger still holds the dead worker's lease"
    );

    let _second = app.spawn_worker_process();
    wait_until(60, "job succeeded after the lease expired", || async {
        app.job_status(id).await == "succeeded"
    })
    .await;
    assert_eq!(
        effects(&app, id).await,
        1,
        "the side effect exists exactly once"
    );
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(&app.store.pool)
        .await
        .unwrap();
    assert_eq!(attempts, 2, "the killed run counted as an attempt");
    // The killed run is on record (the admin dashboard's job page), ended
    // by the lease expiring; the second, which succeeded in the handler's
    // own transaction, is the job's row, run by another worker.
    let runs: Vec<(i32, String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT attempt, outcome, error, worker_id FROM job_runs WHERE job_id = $1 ORDER BY ended_at",
    )
    .bind(id)
    .fetch_all(&app.store.pool)
    .await
    .unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!((runs[0].0, runs[0].1.as_str()), (1, "queued"));
    assert!(runs[0].2.as_deref().unwrap().contains("lease expired"));
    let last: Option<String> = sqlx::query_scalar("SELECT worker_id FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(&app.store.pool)
        .await
        .unwrap();
    assert!(last.is_some() && last != runs[0].3, "two workers ran it");
}

#[tokio::test]
async fn sigterm_finishes_short_work_and_releases_long_work() {
    let app = TestApp::spawn().await;
    let short = app
        .enqueue(vec![test_job(None, "test_sleep", json!({ "ms": 1500 }))])
        .await[0];
    let long = app
        .enqueue(vec![test_job(None, "test_sleep", json!({ "ms": 60000 }))])
        .await[0];
    let mut worker = app.spawn_worker_process();
    wait_until(30, "both running", || async {
        app.job_status(short).await == "running" && app.job_status(long).await == "running"
    })
    .await;
    sigterm(worker.id().unwrap());
    let exit = tokio::time::timeout(Duration::from_secs(30), worker.wait())
        .await
        .expect("worker exits")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    assert_eq!(
        app.job_status(short).await,
        "succeeded",
        "in-flight work finished within the timeout"
    );
    assert_eq!(
        app.job_status(long).await,
        "queued",
        "unfinished work released, not left to its lease"
    );
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM jobs WHERE id = $1")
        .bind(long)
        .fetch_one(&app.store.pool)
        .await
        .unwrap();
    assert_eq!(attempts, 0, "a release is not a failed attempt");
}

#[tokio::test]
async fn two_workers_never_overlap_a_tenant_at_limit_one() {
    let app = TestApp::spawn().await;
    let limited = app.tenant(PackageName::Free).await; // concurrent limit 1
    let other = app.tenant(PackageName::Pro).await;
    let ids = app
        .enqueue(
            (0..50)
                .map(|_| test_job(Some(limited), "test_sleep", json!({ "ms": 100 })))
                .collect(),
        )
        .await;
    let other_ids = app
        .enqueue(
            (0..10)
                .map(|_| test_job(Some(other), "test_sleep", json!({ "ms": 300 })))
                .collect(),
        )
        .await;
    let _a = app.spawn_worker_process();
    let _b = app.spawn_worker_process();
    wait_until(120, "all jobs succeeded", || async {
        app.count_status(&ids, "succeeded").await == 50
            && app.count_status(&other_ids, "succeeded").await == 10
    })
    .await;
    let runs: Vec<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>, String)> = sqlx::query_as(
        "SELECT started_at, finished_at, worker_id FROM jobs WHERE tenant_id = $1 ORDER BY started_at",
    )
    .bind(limited.0)
    .fetch_all(&app.store.pool)
    .await
    .unwrap();
    for pair in runs.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "overlap: {:?} started before {:?} finished",
            pair[1],
            pair[0]
        );
    }
    let workers: std::collections::HashSet<&String> = runs.iter().map(|r| &r.2).collect();
    assert_eq!(workers.len(), 2, "both worker processes took part");
    // The other tenant ran alongside, not after.
    let alongside: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE tenant_id = $1 AND started_at < (SELECT max(finished_at) FROM jobs WHERE tenant_id = $2)",
    )
    .bind(other.0)
    .bind(limited.0)
    .fetch_one(&app.store.pool)
    .await
    .unwrap();
    assert_eq!(alongside, 10);
}

#[tokio::test]
async fn three_schedulers_enqueue_each_tick_once() {
    let app = TestApp::spawn().await;
    let env = [("BIZCONTACTS_TEST_TICK", "*/2 * * * * *")];
    let schedulers: Vec<_> = (0..3)
        .map(|_| app.spawn_process("scheduler", &env))
        .collect();
    let ticks = || async {
        sqlx::query_as::<_, (String, i64)>(
            "SELECT idempotency_key, count(*) FROM jobs WHERE idempotency_key LIKE 'schedule:test_tick:%'
             GROUP BY idempotency_key",
        )
        .fetch_all(&app.store.pool)
        .await
        .unwrap()
    };
    wait_until(30, "four ticks", || async { ticks().await.len() >= 4 }).await;
    drop(schedulers);
    for (key, n) in ticks().await {
        assert_eq!(n, 1, "{key} enqueued {n} times");
    }
    // The daily quota reset was caught up once on start, by one of the three.
    let resets: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'quota_reset'")
        .fetch_one(&app.store.pool)
        .await
        .unwrap();
    assert_eq!(resets, 1);
}

#[tokio::test]
async fn quota_reset_opens_the_day_for_every_tenant_once() {
    let app = TestApp::spawn().await;
    let tenants = [
        app.tenant(PackageName::Free).await,
        app.tenant(PackageName::Pro).await,
    ];
    let day = json!({ "day": "2026-11-24" });
    let ids = app
        .enqueue(vec![
            test_job(None, "quota_reset", day.clone()),
            test_job(None, "quota_reset", day),
        ])
        .await;
    let _worker = app.worker().await;
    wait_until(30, "both runs succeeded", || async {
        app.count_status(&ids, "succeeded").await == 2
    })
    .await;
    let rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM usage_daily WHERE day = '2026-11-24' AND tenant_id = ANY($1)",
    )
    .bind(tenants.iter().map(|t| t.0).collect::<Vec<_>>())
    .fetch_one(&app.store.pool)
    .await
    .unwrap();
    assert_eq!(rows, 2, "one usage day per tenant, however often it runs");
}

#[tokio::test]
async fn a_cancelled_job_whose_worker_is_killed_ends_cancelled_and_frees_the_slot() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant(PackageName::Free).await; // one job at a time
    let ledger = app.ledger().await;
    let id = app
        .enqueue(vec![test_job(
            Some(tenant),
            "test_sleep",
            json!({ "ms": 60000 }),
        )])
        .await[0];
    let mut first = app.spawn_worker_process();
    wait_until(30, "job running", || async {
        app.job_status(id).await == "running"
    })
    .await;
    // The cancel is asked while it runs, then its worker dies before it sees it.
    ledger.cancel(Some(tenant), id).await.unwrap();
    first.start_kill().unwrap();
    first.wait().await.unwrap();

    // The next job of the tenant waits for the slot.
    let next = app
        .enqueue(vec![test_job(
            Some(tenant),
            "test_sleep",
            json!({ "ms": 10 }),
        )])
        .await[0];
    let _second = app.spawn_worker_process();
    wait_until(60, "the cancelled job ends cancelled", || async {
        app.job_status(id).await == "cancelled"
    })
    .await;
    wait_until(
        60,
        "the tenant's next job runs in the freed slot",
        || async { app.job_status(next).await == "succeeded" },
    )
    .await;
    assert_eq!(
        effects(&app, id).await,
        0,
        "the cancelled job had no effect"
    );
}

#[tokio::test]
async fn a_cancelled_job_that_fails_or_is_released_ends_cancelled() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant(PackageName::Free).await;
    let ledger = app.ledger().await;
    // A failing job with retries left: its retry would have been queued.
    let failing = app
        .enqueue(vec![test_job(
            Some(tenant),
            "test_sleep",
            json!({ "ms": 1500, "fail": true }),
        )])
        .await[0];
    let mut worker = app.spawn_worker_process();
    wait_until(30, "failing job running", || async {
        app.job_status(failing).await == "running"
    })
    .await;
    ledger.cancel(Some(tenant), failing).await.unwrap();
    wait_until(30, "failing job cancelled", || async {
        app.job_status(failing).await == "cancelled"
    })
    .await;

    // A long job asked to cancel, then its worker shuts down: not released
    // back to the queue, but cancelled.
    let long = app
        .enqueue(vec![test_job(
            Some(tenant),
            "test_sleep",
            json!({ "ms": 60000, "ignore_cancel": true }),
        )])
        .await[0];
    wait_until(30, "long job running", || async {
        app.job_status(long).await == "running"
    })
    .await;
    ledger.cancel(Some(tenant), long).await.unwrap();
    sigterm(worker.id().unwrap());
    worker.wait().await.unwrap();
    assert_eq!(app.job_status(long).await, "cancelled");
}
