//! The retention job (issue 19): each rule deletes exactly what is past its
//! window, in chunks, and reports the counts.

use crate::harness::{test_job, wait_until, TestApp, TestDb};
use bizcontacts_domain::{PackageName, Role};
use serde_json::json;
use uuid::Uuid;

/// Run `sql` with `$1` = a tenant and `$2` = a user.
async fn exec(app: &TestApp, sql: &str, tenant: Uuid, user: Uuid) {
    sqlx::query(sql)
        .bind(tenant)
        .bind(user)
        .execute(&app.store.pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test]
async fn retention_deletes_exactly_what_is_past_its_window() {
    // Chunks of two rows, so every rule takes several passes.
    let app = TestApp::spawn_with(TestDb::new().await, |s| s.retention.chunk_rows = 2).await;
    let tenant_id = app.tenant(PackageName::Pro).await;
    let tenant = tenant_id.0;
    let user = app.member(tenant_id, Role::OrgAdmin).await.id.0;
    let audits_before = app.count("audit_events").await;
    let sessions_before = app.count("sessions").await;
    // Old (past the defaults) and fresh (inside them), per kind: 5 old each.
    for sql in [
        // audit_events: 400 days.
        "INSERT INTO audit_events (id, at, tenant_id, action) SELECT gen_random_uuid(), now() - interval '401 days', $1, 'old' FROM generate_series(1, 5)",
        "INSERT INTO audit_events (id, at, tenant_id, action) SELECT gen_random_uuid(), now() - interval '399 days', $1, 'kept' FROM generate_series(1, 3)",
        // sessions and invitations: 7 days after they expired.
        "INSERT INTO sessions (id, user_id, token_hash, expires_at) SELECT gen_random_uuid(), $2, gen_random_uuid()::text::bytea, now() - interval '8 days' FROM generate_series(1, 5)",
        "INSERT INTO sessions (id, user_id, token_hash, expires_at) SELECT gen_random_uuid(), $2, gen_random_uuid()::text::bytea, now() - interval '6 days' FROM generate_series(1, 3)",
        "INSERT INTO invitations (id, tenant_id, email, role, token_hash, expires_at) SELECT gen_random_uuid(), $1, 'old' || i || '@example.com', 'member', gen_random_uuid()::text::bytea, now() - interval '8 days' FROM generate_series(1, 5) i",
        "INSERT INTO invitations (id, tenant_id, email, role, token_hash, expires_at, accepted_at, accepted_by) SELECT gen_random_uuid(), $1, 'accepted' || i || '@example.com', 'member', gen_random_uuid()::text::bytea, now() - interval '30 days', now() - interval '31 days', $2 FROM generate_series(1, 3) i",
        // webhook records: 30 days.
        "INSERT INTO highlevel_webhooks (webhook_id, kind, received_at) SELECT 'old-' || i, 'INSTALL', now() - interval '31 days' FROM generate_series(1, 5) i",
        "INSERT INTO highlevel_webhooks (webhook_id, kind, received_at) SELECT 'new-' || i, 'INSTALL', now() - interval '29 days' FROM generate_series(1, 3) i",
        "INSERT INTO stripe_events (id, type, created, received_at, outcome) SELECT 'evt_old' || i, 'invoice.paid', now(), now() - interval '31 days', 'ignored' FROM generate_series(1, 5) i",
        "INSERT INTO stripe_events (id, type, created, received_at, outcome) SELECT 'evt_new' || i, 'invoice.paid', now(), now() - interval '29 days', 'ignored' FROM generate_series(1, 3) i",
        // A failed batch finished 31 days ago with its upload, and a fresh one.
        "INSERT INTO imports (id, tenant_id, source, status, finished_at) VALUES ('00000000-0000-7000-8000-000000000001', $1, 'csv', 'failed', now() - interval '31 days'), ('00000000-0000-7000-8000-000000000002', $1, 'csv', 'failed', now() - interval '29 days')",
        "INSERT INTO import_uploads (import_id, seq, data) SELECT '00000000-0000-7000-8000-000000000001', i, '\\x00' FROM generate_series(1, 5) i",
        "INSERT INTO import_uploads (import_id, seq, data) SELECT '00000000-0000-7000-8000-000000000002', i, '\\x00' FROM generate_series(1, 3) i",
        // Rejected rows decided 91 days ago, 89 days ago, and an approved old one.
        "INSERT INTO staged_rows (id, import_id, row_number, status, raw, fingerprint, decided_at) SELECT gen_random_uuid(), '00000000-0000-7000-8000-000000000002', i, CASE WHEN i <= 5 THEN 'rejected' ELSE 'approved' END, '{}', '\\x00', now() - interval '91 days' FROM generate_series(1, 7) i",
        "INSERT INTO staged_rows (id, import_id, row_number, status, raw, fingerprint, decided_at) SELECT gen_random_uuid(), '00000000-0000-7000-8000-000000000002', 10 + i, 'rejected', '{}', '\\x00', now() - interval '89 days' FROM generate_series(1, 3) i",
    ] {
        exec(&app, sql, tenant, user).await;
    }
    let id = app
        .enqueue(vec![test_job(
            None,
            "retention",
            json!({ "day": "2026-12-03" }),
        )])
        .await[0];
    let worker = app.worker().await;
    wait_until(30, "retention succeeded", || async {
        app.job_status(id).await == "succeeded"
    })
    .await;
    worker.stop().await;

    let report: String = sqlx::query_scalar("SELECT progress_message FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(&app.store.pool)
        .await
        .unwrap();
    assert_eq!(
        report,
        "audit_events 5, crm_contact_events 0, crm_oauth_states 0, export_chunks 0, \
         highlevel_webhooks 5, import_uploads 5, invitations 5, rejected_rows 5, sessions 5, stripe_events 5"
    );
    // What stays: everything inside its window, and what no rule covers.
    let left = |sql: &'static str| {
        let pool = app.store.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        left("SELECT count(*) FROM audit_events WHERE action = 'kept'").await,
        3
    );
    assert_eq!(
        left("SELECT count(*) FROM audit_events WHERE action = 'old'").await,
        0
    );
    // The job's own closing event is new.
    assert_eq!(app.count("audit_events").await, audits_before + 3 + 1);
    assert_eq!(app.count("sessions").await, sessions_before + 3);
    assert_eq!(left("SELECT count(*) FROM invitations").await, 3);
    assert_eq!(app.count("highlevel_webhooks").await, 3);
    assert_eq!(app.count("stripe_events").await, 3);
    assert_eq!(app.count("import_uploads").await, 3);
    assert_eq!(
        left("SELECT count(*) FROM staged_rows WHERE status = 'approved'").await,
        2
    );
    assert_eq!(
        left("SELECT count(*) FROM staged_rows WHERE status = 'rejected'").await,
        3
    );
    assert_eq!(app.count("imports").await, 2, "batches stay");
}
