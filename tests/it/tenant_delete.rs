//! Tenant deletion (issue 19): scheduled, cancellable, then every row of
//! the tenant gone, its sole-source contacts out of the corpus, shared
//! contacts derived again from the others' rows, other tenants intact.

use crate::harness::{problem, wait_until, TestApp, TestDb};
use crate::imports::Imports;
use bizcontacts_domain::{PackageName, Role, SystemRole, TenantId};
use serde_json::{json, Value};
use uuid::Uuid;

async fn schedule(
    app: &TestApp,
    token: &str,
    tenant: TenantId,
    confirm: &str,
) -> reqwest::Response {
    app.post(&format!("/v1/admin/tenants/{tenant}/delete"), token)
        .json(&json!({ "reason": "customer asked", "confirm": confirm }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_deleted_tenant_leaves_no_row_and_the_corpus_derived_again() {
    // No grace: the deletion is due as soon as it is asked for.
    let app =
        TestApp::spawn_with(TestDb::new().await, |s| s.retention.deletion_grace_days = 0).await;
    let t = Imports::on(app, PackageName::Pro).await;
    let app = &t.app;
    let doomed = t.tenant;
    let name: String = sqlx::query_scalar("SELECT name FROM tenants WHERE id = $1")
        .bind(doomed.0)
        .fetch_one(&app.store.pool)
        .await
        .unwrap();
    let platform = app.system_user(SystemRole::PlatformAdmin).await.token;
    let survivor = app.tenant(PackageName::Pro).await;
    let both = app.member(survivor, Role::Member).await;
    sqlx::query("INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'member')")
        .bind(doomed.0)
        .bind(both.id.0)
        .execute(&app.store.pool)
        .await
        .unwrap();

    let worker = app.worker().await;
    let import = t
        .merged(&format!(
            "{}{}",
            "Solo Deleted Ltd,Sam,Solo,sam@solo-deleted.example,,,Leeds,,GB\n",
            "Shared Co,Ann,Share,ann@shared.example,,,York,,GB\n"
        ))
        .await;
    let links = t.links(&import).await;
    let (solo, shared): (Uuid, Uuid) = (
        links[0].as_deref().unwrap().parse().unwrap(),
        links[1].as_deref().unwrap().parse().unwrap(),
    );
    // The survivor's own batch also fed the shared contact (another city).
    let theirs = Uuid::now_v7();
    for sql in [
        "INSERT INTO imports (id, tenant_id, source, status) VALUES ($1, $2, 'csv', 'staged')",
        "INSERT INTO staged_rows (id, import_id, row_number, status, raw, fingerprint, company_name, email, city, country, contact_id, outcome, merged_at)
         VALUES (gen_random_uuid(), $1, 1, 'merged', '{}', '\\x01', 'Shared Co', 'ann@shared.example', 'Hull', 'GB', $3, 'merged', now())",
    ] {
        sqlx::query(sql)
            .bind(theirs)
            .bind(survivor.0)
            .bind(shared)
            .execute(&app.store.pool)
            .await
            .unwrap();
    }
    // More of the doomed tenant's own records.
    for sql in [
        "INSERT INTO saved_contacts (id, tenant_id, contact_id) VALUES (gen_random_uuid(), $1, $2)",
        "INSERT INTO usage_daily (tenant_id, day, searches) VALUES ($1, current_date - 1, 3)",
        "INSERT INTO crm_connections (tenant_id, method, status, location_id, token_sealed, token_key_id)
         VALUES ($1, 'private_integration', 'connected', 'loc-d', '\\x00', 'k')",
    ] {
        let q = sqlx::query(sql).bind(doomed.0);
        let q = if sql.contains("$2") { q.bind(solo) } else { q };
        q.execute(&app.store.pool).await.unwrap();
    }

    // Guards: only a platform admin, and the name must match.
    problem(schedule(app, &t.reviewer.token, doomed, &name).await, 403).await;
    let p = problem(schedule(app, &platform, doomed, "Someone Else").await, 422).await;
    assert_eq!(p["errors"][0]["field"], "confirm");
    // Cancellable before it starts (no worker picks it up in between: it is
    // cancelled in the same breath).
    worker.stop().await;
    assert_eq!(schedule(app, &platform, doomed, &name).await.status(), 202);
    problem(schedule(app, &platform, doomed, &name).await, 409).await;
    let res = app
        .post(
            &format!("/v1/admin/tenants/{doomed}/delete/cancel"),
            &platform,
        )
        .json(&json!({ "reason": "changed their mind" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.count("tenants").await, 2);

    // Now for real.
    let res = schedule(app, &platform, doomed, &name).await;
    assert_eq!(res.status(), 202);
    let job: Uuid = res.json::<Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let worker = app.worker().await;
    wait_until(60, "tenant_delete succeeded", || async {
        app.job_status(job).await == "succeeded"
    })
    .await;
    worker.stop().await;

    // Every table with a tenant column holds nothing of the tenant.
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.columns
         WHERE table_schema = 'public' AND column_name = 'tenant_id' ORDER BY 1",
    )
    .fetch_all(&app.store.pool)
    .await
    .unwrap();
    assert!(tables.len() >= 15, "{tables:?}");
    for table in &tables {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {table} WHERE tenant_id = $1"
        ))
        .bind(doomed.0)
        .fetch_one(&app.store.pool)
        .await
        .unwrap();
        assert_eq!(n, 0, "{table} still holds the tenant's rows");
    }
    let staged: i64 =
        sqlx::query_scalar("SELECT count(*) FROM staged_rows WHERE import_id = $1::uuid")
            .bind(&import)
            .fetch_one(&app.store.pool)
            .await
            .unwrap();
    assert_eq!(staged, 0);
    assert_eq!(app.count("tenants").await, 1);
    // Its only-here members are gone; the one who also belongs elsewhere stays.
    for (user, kept) in [
        (t.importer.id.0, false),
        (t.reviewer.id.0, false),
        (both.id.0, true),
    ] {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE id = $1")
            .bind(user)
            .fetch_one(&app.store.pool)
            .await
            .unwrap();
        assert_eq!(n == 1, kept, "{user}");
    }
    // The corpus: the sole-source contact left search; the shared one keeps
    // the survivor's values only.
    let (solo_active,): (bool,) = sqlx::query_as("SELECT active FROM contacts WHERE id = $1")
        .bind(solo)
        .fetch_one(&app.store.pool)
        .await
        .unwrap();
    assert!(!solo_active);
    let (active, city): (bool, Option<String>) =
        sqlx::query_as("SELECT active, city FROM contacts WHERE id = $1")
            .bind(shared)
            .fetch_one(&app.store.pool)
            .await
            .unwrap();
    assert!(active);
    assert_eq!(city.as_deref(), Some("Hull"));
    // The survivor is intact; the deletion's own record names the tenant.
    let theirs_rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM staged_rows WHERE import_id = $1")
            .bind(theirs)
            .fetch_one(&app.store.pool)
            .await
            .unwrap();
    assert_eq!(theirs_rows, 1);
    let details: Value = sqlx::query_scalar(
        "SELECT details FROM audit_events WHERE action = 'tenant.deleted' AND target_id = $1",
    )
    .bind(doomed.to_string())
    .fetch_one(&app.store.pool)
    .await
    .unwrap();
    assert_eq!(details["tenant_name"], name);
    assert_eq!(details["import_batches"], 1);
}

/// kill -9 while the deletion is half-way: the retry finishes it, and
/// nothing of the other tenant goes.
#[tokio::test]
async fn a_deletion_killed_half_way_resumes_and_finishes() {
    let app =
        TestApp::spawn_with(TestDb::new().await, |s| s.retention.deletion_grace_days = 0).await;
    let doomed = app.tenant(PackageName::Pro).await;
    let survivor = app.tenant(PackageName::Pro).await;
    let platform = app.system_user(SystemRole::PlatformAdmin).await.token;
    let name: String = sqlx::query_scalar("SELECT name FROM tenants WHERE id = $1")
        .bind(doomed.0)
        .fetch_one(&app.store.pool)
        .await
        .unwrap();
    // 400 batches of 200 staged rows each for the doomed tenant (one batch
    // a transaction), and one for the survivor.
    for (tenant, batches) in [(doomed, 400), (survivor, 1)] {
        sqlx::query(
            "WITH b AS (
                 INSERT INTO imports (id, tenant_id, source, status)
                 SELECT gen_random_uuid(), $1, 'csv', 'staged' FROM generate_series(1, $2)
                 RETURNING id)
             INSERT INTO staged_rows (id, import_id, row_number, status, raw, fingerprint, company_name)
             SELECT gen_random_uuid(), b.id, n, 'valid', '{}', '\\x00', 'Row ' || n
             FROM b, generate_series(1, 200) n",
        )
        .bind(tenant.0)
        .bind(batches)
        .execute(&app.store.pool)
        .await
        .unwrap();
    }
    let res = schedule(&app, &platform, doomed, &name).await;
    assert_eq!(res.status(), 202);
    let job: Uuid = res.json::<Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let batches = |t: TenantId| {
        let pool = app.store.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM imports WHERE tenant_id = $1")
                .bind(t.0)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let mut worker = app.spawn_worker_process();
    wait_until(60, "the deletion is under way", || async {
        batches(doomed).await < 400
    })
    .await;
    worker.0.start_kill().unwrap();
    worker.0.wait().await.unwrap();
    let left = batches(doomed).await;
    assert!(left > 0, "killed half-way (all 400 went before the kill)");
    assert_eq!(
        app.count("tenants").await,
        2,
        "the tenant row waits for the end"
    );
    let _again = app.spawn_worker_process();
    wait_until(120, "the deletion resumes and succeeds", || async {
        app.job_status(job).await == "succeeded"
    })
    .await;
    assert_eq!(batches(doomed).await, 0);
    assert_eq!(batches(survivor).await, 1);
    assert_eq!(app.count("tenants").await, 1);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM staged_rows")
        .fetch_one(&app.store.pool)
        .await
        .unwrap();
    assert_eq!(rows, 200, "only the survivor's rows remain");
}
