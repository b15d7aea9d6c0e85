//! Sign-in, sessions, API keys, members and their audit trail.

use crate::harness::{problem, status, TestApp};
use bizcontacts_domain::{PackageName, Permission, Role};
use serde_json::{json, Value};

async fn audit_actions(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT action FROM audit_events ORDER BY id")
        .fetch_all(&app.store.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn login_me_logout_round_trip() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant(PackageName::Starter).await;
    let user = app.member(tenant, Role::Reviewer).await;

    let res = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({ "email": user.email.to_uppercase(), "password": user.password }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("bcs_"));
    assert!(body["expires_at"].as_str().is_some());

    let me: Value = app
        .get("/v1/me", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["email"], user.email);
    assert_eq!(me["credential"]["type"], "session");
    assert_eq!(me["memberships"][0]["tenant_id"], tenant.to_string());
    assert_eq!(me["memberships"][0]["role"], "reviewer");
    let perms: Vec<&str> = me["memberships"][0]["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(
        perms,
        [
            "contacts:search",
            "imports:review",
            "jobs:read",
            "usage:read"
        ]
    );

    assert_eq!(
        app.post("/v1/auth/logout", &token)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let body = problem(app.get("/v1/me", &token).send().await.unwrap(), 401).await;
    assert!(body["detail"].as_str().unwrap().contains("signed out"));

    let actions = audit_actions(&app).await;
    assert!(actions.contains(&"auth.login".to_string()), "{actions:?}");
}

#[tokio::test]
async fn failed_sign_in_is_audited_and_says_nothing_more() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    for (email, password) in [
        (user.email.as_str(), "wrong password"),
        ("nobody@example.com", "whatever12"),
    ] {
        let res = app
            .client
            .post(app.url("/v1/auth/login"))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .unwrap();
        let body = problem(res, 401).await;
        assert_eq!(body["detail"], "invalid email or password");
    }
    let failures: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = 'auth.login_failed'")
            .fetch_one(&app.store.pool)
            .await
            .unwrap();
    assert_eq!(failures, 2);
    assert_eq!(
        app.count("sessions").await,
        1,
        "only the fixture's session exists"
    );
}

#[tokio::test]
async fn api_key_lifecycle_shown_once_hashed_scoped_revocable() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant(PackageName::Starter).await;
    let admin = app.member(tenant, Role::OrgAdmin).await;
    let path = format!("/v1/tenants/{tenant}/api-keys");

    let res = app
        .post(&path, &admin.token)
        .json(&json!({ "name": "ci", "scopes": ["usage:read", "keys:manage", "usage:read"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));
    assert_eq!(created["scopes"], json!(["usage:read", "keys:manage"]));

    // Listed without the secret.
    let list: Value = app
        .get(&path, &admin.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = list.to_string();
    assert!(!text.contains(&key));
    assert_eq!(list["items"][0]["prefix"], created["prefix"]);

    // Usable within its scopes, refused outside them, last use recorded.
    let usage = format!("/v1/tenants/{tenant}/usage");
    assert_eq!(app.get(&usage, &key).send().await.unwrap().status(), 200);
    problem(
        app.get(&format!("/v1/tenants/{tenant}/members"), &key)
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
    let last_used: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT last_used_at FROM api_keys WHERE id = $1::uuid")
            .bind(created["id"].as_str().unwrap())
            .fetch_one(&app.store.pool)
            .await
            .unwrap();
    assert!(last_used.is_some());

    // Re-checked against the owner's current role: demoted owner, narrowed key.
    sqlx::query("UPDATE memberships SET role = 'billing_manager' WHERE user_id = $1")
        .bind(admin.id.0)
        .execute(&app.store.pool)
        .await
        .unwrap();
    let body = problem(app.get(&path, &key).send().await.unwrap(), 403).await;
    assert!(body["detail"].as_str().unwrap().contains("keys:manage"));
    assert_eq!(app.get(&usage, &key).send().await.unwrap().status(), 200);
    sqlx::query("UPDATE memberships SET role = 'org_admin' WHERE user_id = $1")
        .bind(admin.id.0)
        .execute(&app.store.pool)
        .await
        .unwrap();
    assert_eq!(app.get(&path, &key).send().await.unwrap().status(), 200);

    // Revoked: 401 at once; revoking again is harmless.
    let revoke = format!("{path}/{}", created["id"].as_str().unwrap());
    assert_eq!(status(app.delete(&revoke, &admin.token)).await, 204);
    assert_eq!(status(app.delete(&revoke, &admin.token)).await, 204);
    let body = problem(app.get(&usage, &key).send().await.unwrap(), 401).await;
    assert!(body["detail"].as_str().unwrap().contains("revoked"));

    let actions = audit_actions(&app).await;
    assert!(actions.contains(&"api_key.created".to_string()));
    assert!(actions.contains(&"api_key.revoked".to_string()));
}

#[tokio::test]
async fn key_scopes_cannot_exceed_the_creator() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant(PackageName::Pro).await;
    let admin = app.member(tenant, Role::OrgAdmin).await;
    // A key holding keys:manage and usage:read may mint only those.
    let narrow = app
        .key(
            Some(tenant),
            admin.id,
            &[Permission::KeysManage, Permission::UsageRead],
        )
        .await;
    let res = app
        .post(&format!("/v1/tenants/{tenant}/api-keys"), &narrow)
        .json(&json!({ "name": "x", "scopes": ["usage:read", "crm:connect", "admin:operate", "bogus"] }))
        .send()
        .await
        .unwrap();
    let body = problem(res, 422).await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["scopes[1]", "scopes[2]", "scopes[3]"]);
    assert_eq!(app.count("api_keys").await, 1, "nothing written");
}

#[tokio::test]
async fn api_keys_refused_without_api_access_in_the_package() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant(PackageName::Free).await;
    let admin = app.member(tenant, Role::OrgAdmin).await;
    let res = app
        .post(&format!("/v1/tenants/{tenant}/api-keys"), &admin.token)
        .json(&json!({ "name": "x", "scopes": ["usage:read"] }))
        .send()
        .await
        .unwrap();
    let body = problem(res, 403).await;
    assert!(
        body["detail"].as_str().unwrap().contains("API access"),
        "{body}"
    );

    // A key made while on a paid plan stops working after a downgrade.
    let key = app
        .key(Some(tenant), admin.id, &[Permission::UsageRead])
        .await;
    let body = problem(
        app.get(&format!("/v1/tenants/{tenant}/usage"), &key)
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("free"), "{body}");
}

#[tokio::test]
async fn members_respect_the_package_user_limit_and_keep_an_admin() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant(PackageName::Free).await; // 2 users
    let admin = app.member(tenant, Role::OrgAdmin).await;
    let path = format!("/v1/tenants/{tenant}/members");

    // The invitation holds the second seat; a third person is over the limit.
    let res = app
        .post(&path, &admin.token)
        .json(&json!({ "email": "New.Person@Example.com", "role": "importer" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let invited: Value = res.json().await.unwrap();
    assert_eq!(invited["role"], "importer");
    assert_eq!(invited["email"], "New.Person@example.com");
    let res = app
        .post(&path, &admin.token)
        .json(&json!({ "email": "third@example.com", "role": "member" }))
        .send()
        .await
        .unwrap();
    let body = problem(res, 409).await;
    assert_eq!(body["limit"], "users");
    assert!(body["detail"].as_str().unwrap().contains("2 users"));
    let res = app
        .client
        .post(app.url(&format!(
            "/v1/invitations/{}/accept",
            invited["token"].as_str().unwrap()
        )))
        .json(&json!({ "password": "long enough pw" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let added: Value = res.json().await.unwrap();
    assert_eq!(app.count("users").await, 2, "only the invitee was created");

    // Role change and removal; the last org_admin stays.
    let member_path = format!("{path}/{}", added["user_id"].as_str().unwrap());
    let res = app
        .client
        .patch(app.url(&member_path))
        .bearer_auth(&admin.token)
        .json(&json!({ "role": "reviewer" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let own = format!("{path}/{}", admin.id);
    let res = app
        .client
        .delete(app.url(&own))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert!(problem(res, 409).await["detail"]
        .as_str()
        .unwrap()
        .contains("org_admin"));
    let res = app
        .client
        .delete(app.url(&member_path))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    problem(
        app.client
            .delete(app.url(&member_path))
            .bearer_auth(&admin.token)
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;

    let actions = audit_actions(&app).await;
    for a in [
        "invitation.created",
        "invitation.accepted",
        "member.role_changed",
        "member.removed",
    ] {
        assert!(
            actions.contains(&a.to_string()),
            "{a} missing from {actions:?}"
        );
    }
}

#[tokio::test]
async fn another_tenants_objects_are_not_found() {
    let app = TestApp::spawn().await;
    let a = app.tenant(PackageName::Pro).await;
    let b = app.tenant(PackageName::Pro).await;
    let admin_a = app.member(a, Role::OrgAdmin).await;
    let admin_b = app.member(b, Role::OrgAdmin).await;
    let key_b = app
        .key(Some(b), admin_b.id, &[Permission::KeysManage])
        .await;
    let key_b_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM api_keys WHERE tenant_id = $1")
        .bind(b.0)
        .fetch_one(&app.store.pool)
        .await
        .unwrap();
    // B's key through A's path: A says not found, B's key survives.
    let res = app
        .client
        .delete(app.url(&format!("/v1/tenants/{a}/api-keys/{key_b_id}")))
        .bearer_auth(&admin_a.token)
        .send()
        .await
        .unwrap();
    problem(res, 404).await;
    assert_eq!(
        app.get(&format!("/v1/tenants/{b}/api-keys"), &key_b)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // B's member through A's path.
    let res = app
        .client
        .patch(app.url(&format!("/v1/tenants/{a}/members/{}", admin_b.id)))
        .bearer_auth(&admin_a.token)
        .json(&json!({ "role": "member" }))
        .send()
        .await
        .unwrap();
    problem(res, 404).await;
    // A tenant that does not exist looks exactly like one you cannot see.
    let ghost = uuid::Uuid::now_v7();
    let body = problem(
        app.get(&format!("/v1/tenants/{ghost}/usage"), &admin_a.token)
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    let seen = problem(
        app.get(&format!("/v1/tenants/{b}/usage"), &admin_a.token)
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    assert_eq!(body["detail"], seen["detail"]);
}
