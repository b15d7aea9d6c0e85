//! Worker presence (issue 20's workers view): every worker process shows
//! while it runs, as stopped after a graceful shutdown, and as lost once a
//! kill -9 leaves its heartbeat stale.

use crate::harness::{problem, wait_until, TestApp};
use bizcontacts_domain::{PackageName, Role, SystemRole};
use serde_json::Value;

async fn workers(app: &TestApp, token: &str) -> Vec<Value> {
    let v = app.get_json("/v1/admin/workers", token).await;
    v.as_array().unwrap_or_else(|| panic!("{v}")).clone()
}

fn state_of(list: &[Value], pid: u32) -> Option<String> {
    list.iter()
        .find(|w| w["pid"] == pid)
        .map(|w| w["state"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn workers_show_live_stopped_and_lost() {
    let app = TestApp::spawn().await;
    let support = app.system_user(SystemRole::Support).await.token;
    let tenant = app.tenant(PackageName::Pro).await;
    let member = app.member(tenant, Role::OrgAdmin).await.token;
    problem(
        app.get("/v1/admin/workers", &member).send().await.unwrap(),
        403,
    )
    .await;

    // In this process: live, with its kinds and their concurrency.
    let worker = app.worker().await;
    let here = std::process::id();
    // The worker registers from its own task, after `worker()` returns.
    wait_until(20, "the in-process worker registers", || async {
        state_of(&workers(&app, &support).await, here).is_some()
    })
    .await;
    let list = workers(&app, &support).await;
    let me = list.iter().find(|w| w["pid"] == here).expect("registered");
    assert_eq!(me["state"], "live");
    assert_eq!(me["kinds"]["import"], 2, "{me}");
    worker.stop().await;
    assert_eq!(
        state_of(&workers(&app, &support).await, here).as_deref(),
        Some("stopped")
    );

    // A worker process killed with SIGKILL: lost once its heartbeat is stale.
    let mut process = app.spawn_worker_process();
    let pid = process.0.id().unwrap();
    wait_until(20, "the process registers", || async {
        state_of(&workers(&app, &support).await, pid).as_deref() == Some("live")
    })
    .await;
    process.0.start_kill().unwrap();
    process.0.wait().await.unwrap();
    wait_until(20, "the killed worker shows as lost", || async {
        state_of(&workers(&app, &support).await, pid).as_deref() == Some("lost")
    })
    .await;
}

#[tokio::test]
async fn schedules_show_their_last_tick_and_its_jobs() {
    let app = TestApp::spawn().await;
    let support = app.system_user(SystemRole::Support).await.token;
    let ledger = app.ledger().await;
    let quota = bizcontacts_jobs::schedules()
        .into_iter()
        .find(|s| s.name == "quota_reset")
        .unwrap();
    let tick = quota.last_tick(chrono::Utc::now()).unwrap();
    bizcontacts_queue::scheduler::fire(&ledger, &quota, tick)
        .await
        .unwrap();
    let list = app.get_json("/v1/admin/schedules", &support).await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for name in ["quota_reset", "crm_pull", "billing_reconcile", "retention"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let q = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "quota_reset")
        .unwrap();
    assert_eq!(q["last_tick_jobs"]["queued"], 1, "{q}");
    let last: chrono::DateTime<chrono::Utc> = q["last_tick"].as_str().unwrap().parse().unwrap();
    let next: chrono::DateTime<chrono::Utc> = q["next_tick"].as_str().unwrap().parse().unwrap();
    assert_eq!(last, tick);
    assert_eq!(next - last, chrono::Duration::days(1));
}
