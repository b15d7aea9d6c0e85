//! Tenant suspension (issue 19): callers refused with the reason, jobs held
//! across a worker restart and resumed, nothing deleted.

use crate::harness::{problem, test_job, wait_until, TestApp};
use bizcontacts_domain::{PackageName, Permission, Role, SystemRole, TenantId};
use serde_json::{json, Value};
use uuid::Uuid;

async fn post_admin(
    app: &TestApp,
    token: &str,
    tenant: TenantId,
    action: &str,
    reason: &str,
) -> reqwest::Response {
    app.post(&format!("/v1/admin/tenants/{tenant}/{action}"), token)
        .json(&json!({ "reason": reason }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_suspended_tenants_sessions_and_keys_are_refused_with_the_reason() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant(PackageName::Pro).await;
    let other = app.tenant(PackageName::Pro).await;
    let admin = app.member(tenant, Role::OrgAdmin).await;
    let key = app
        .key(Some(tenant), admin.id, &[Permission::UsageRead])
        .await;
    let neighbour = app.member(other, Role::OrgAdmin).await;
    let platform = app.system_user(SystemRole::PlatformAdmin).await.token;
    let support = app.system_user(SystemRole::Support).await.token;
    let usage = format!("/v1/tenants/{tenant}/usage");
    assert_eq!(
        app.get(&usage, &admin.token).send().await.unwrap().status(),
        200
    );

    // Only a platform admin suspends.
    problem(
        post_admin(&app, &support, tenant, "suspend", "abuse").await,
        403,
    )
    .await;
    problem(
        post_admin(&app, &admin.token, tenant, "suspend", "abuse").await,
        403,
    )
    .await;
    let p = problem(
        post_admin(&app, &platform, tenant, "suspend", " ").await,
        422,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "reason");
    let res = post_admin(&app, &platform, tenant, "suspend", "abuse report #42").await;
    assert_eq!(res.status(), 200);
    let view: Value = res.json().await.unwrap();
    assert_eq!(view["status"], "suspended");
    assert_eq!(view["suspended_reason"], "abuse report #42");
    problem(
        post_admin(&app, &platform, tenant, "suspend", "again").await,
        409,
    )
    .await;

    for token in [&admin.token, &key] {
        let p = problem(app.get(&usage, token).send().await.unwrap(), 403).await;
        let detail = p["detail"].as_str().unwrap();
        assert!(
            detail.contains("suspended") && detail.contains("abuse report #42"),
            "{detail}"
        );
    }
    // Other tenants are untouched; support reads the state.
    let theirs = format!("/v1/tenants/{other}/usage");
    assert_eq!(
        app.get(&theirs, &neighbour.token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let list = app.get_json("/v1/admin/tenants?limit=200", &support).await;
    let row = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant_id"] == tenant.to_string())
        .unwrap()
        .clone();
    assert_eq!(row["status"], "suspended", "{row}");
    assert_eq!(row["suspended_reason"], "abuse report #42", "{row}");
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE tenant_id = $1 AND action = 'tenant.suspended'",
    )
    .bind(tenant.0)
    .fetch_one(&app.store.pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);

    // Lifted: the same credentials work again.
    let res = post_admin(&app, &platform, tenant, "unsuspend", "resolved").await;
    assert_eq!(res.status(), 200);
    for token in [&admin.token, &key] {
        assert_eq!(app.get(&usage, token).send().await.unwrap().status(), 200);
    }
    problem(
        post_admin(&app, &platform, tenant, "unsuspend", "again").await,
        409,
    )
    .await;
}

async fn job_row(app: &TestApp, id: Uuid) -> (String, i32, Option<String>) {
    sqlx::query_as("SELECT status, attempts, waiting_reason FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(&app.store.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_suspension_holds_jobs_across_a_worker_restart_and_resumes_them() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant(PackageName::Pro).await;
    let platform = app.system_user(SystemRole::PlatformAdmin).await.token;
    // One job running (it checkpoints every few ms), then the suspension.
    let running = app
        .enqueue(vec![test_job(
            Some(tenant),
            "test_sleep",
            json!({ "ms": 60000 }),
        )])
        .await[0];
    let worker = app.worker().await;
    wait_until(20, "the sleeper runs", || async {
        job_row(&app, running).await.0 == "running"
    })
    .await;
    assert_eq!(
        post_admin(&app, &platform, tenant, "suspend", "security review")
            .await
            .status(),
        200
    );
    // Released at its next checkpoint, then held: not failed, not counted.
    wait_until(20, "the sleeper is held", || async {
        job_row(&app, running).await.0 == "deferred"
    })
    .await;
    // Jobs that arrive meanwhile are held too.
    let queued = app
        .enqueue(vec![
            test_job(Some(tenant), "test_noop", json!({})),
            test_job(Some(tenant), "test_noop", json!({})),
        ])
        .await;
    for id in &queued {
        let (status, attempts, reason) = job_row(&app, *id).await;
        assert_eq!((status.as_str(), attempts), ("deferred", 0), "{id}");
        assert_eq!(reason.as_deref(), Some("tenant is suspended"));
    }
    // A worker restart changes nothing: still held.
    worker.stop().await;
    let worker = app.worker().await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let (status, attempts, reason) = job_row(&app, running).await;
    assert_eq!(status, "deferred");
    assert_eq!(attempts, 0, "a released run is not an attempt");
    assert_eq!(reason.as_deref(), Some("tenant is suspended"));
    for id in &queued {
        assert_eq!(job_row(&app, *id).await.0, "deferred");
    }
    // Unsuspended: everything resumes and finishes (the sleeper shortened,
    // so the test does not wait a minute).
    sqlx::query("UPDATE jobs SET params = '{\"ms\": 100}' WHERE id = $1")
        .bind(running)
        .execute(&app.store.pool)
        .await
        .unwrap();
    assert_eq!(
        post_admin(&app, &platform, tenant, "unsuspend", "cleared")
            .await
            .status(),
        200
    );
    let all: Vec<Uuid> = queued.iter().copied().chain([running]).collect();
    wait_until(30, "held jobs resume and succeed", || async {
        app.count_status(&all, "succeeded").await == 3
    })
    .await;
    worker.stop().await;
}
