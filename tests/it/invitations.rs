//! Members join by invitation and choose their own password; an existing
//! account joins only when its owner accepts; nobody grants more than they hold.

use crate::harness::{problem, TestApp, TestUser};
use bizcontacts_domain::{PackageName, Permission, Role, TenantId};
use serde_json::{json, Value};

async fn invite(
    app: &TestApp,
    tenant: TenantId,
    token: &str,
    email: &str,
    role: &str,
) -> reqwest::Response {
    app.post(&format!("/v1/tenants/{tenant}/members"), token)
        .json(&json!({ "email": email, "role": role }))
        .send()
        .await
        .unwrap()
}

async fn accept(
    app: &TestApp,
    secret: &str,
    session: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url(&format!("/v1/invitations/{secret}/accept")));
    if let Some(s) = session {
        req = req.bearer_auth(s);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

async fn login(app: &TestApp, email: &str, password: &str) -> u16 {
    app.client
        .post(app.url("/v1/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn is_member(app: &TestApp, tenant: TenantId, user: &TestUser) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM memberships WHERE tenant_id = $1 AND user_id = $2)",
    )
    .bind(tenant.0)
    .bind(user.id.0)
    .fetch_one(&app.store.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_new_person_sets_their_own_password_and_the_token_works_once() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant(PackageName::Pro).await;
    let admin = app.member(tenant, Role::OrgAdmin).await;
    let res = invite(
        &app,
        tenant,
        &admin.token,
        "newcomer@example.com",
        "importer",
    )
    .await;
    assert_eq!(res.status(), 201);
    let invited: Value = res.json().await.unwrap();
    let secret = invited["token"].as_str().unwrap().to_string();
    assert!(secret.starts_with("bci_"));

    // Listed without its token; stored only as a hash.
    let list: Value = app
        .get(&format!("/v1/tenants/{tenant}/invitations"), &admin.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["email"], "newcomer@example.com");
    assert!(!list.to_string().contains(&secret));
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM invitations")
        .fetch_one(&app.store.pool)
        .await
        .unwrap();
    assert_eq!(stored, bizcontacts_security::token_hash(&secret));

    // The invitee chooses the password; the policy applies.
    let body = problem(accept(&app, &secret, None, None).await, 422).await;
    assert_eq!(body["errors"][0]["field"], "password");
    let body = problem(
        accept(&app, &secret, None, Some(json!({ "password": "short" }))).await,
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "password");
    let res = accept(
        &app,
        &secret,
        None,
        Some(json!({ "password": "my own password" })),
    )
    .await;
    assert_eq!(res.status(), 201);
    let joined: Value = res.json().await.unwrap();
    assert_eq!(joined["role"], "importer");
    assert_eq!(joined["account_created"], true);
    assert_eq!(
        login(&app, "newcomer@example.com", "my own password").await,
        200
    );

    // Used once: a second accept, even with another password, finds nothing.
    problem(
        accept(
            &app,
            &secret,
            None,
            Some(json!({ "password": "a takeover attempt" })),
        )
        .await,
        404,
    )
    .await;
    assert_eq!(
        login(&app, "newcomer@example.com", "a takeover attempt").await,
        401
    );
    problem(
        accept(
            &app,
            "bci_not-a-real-token",
            None,
            Some(json!({ "password": "whatever long" })),
        )
        .await,
        404,
    )
    .await;
}

#[tokio::test]
async fn an_existing_account_joins_only_when_its_owner_accepts() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant(PackageName::Pro).await;
    let admin = app.member(tenant, Role::OrgAdmin).await;
    let victim = app.user().await;
    let stranger = app.user().await;

    let res = invite(&app, tenant, &admin.token, &victim.email, "member").await;
    assert_eq!(res.status(), 201);
    let secret = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !is_member(&app, tenant, &victim).await,
        "inviting is not joining"
    );

    // Whoever holds the token cannot set the account's password...
    let body = problem(
        accept(
            &app,
            &secret,
            None,
            Some(json!({ "password": "chosen by the inviter" })),
        )
        .await,
        401,
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("sign in"));
    assert_eq!(
        login(&app, &victim.email, "chosen by the inviter").await,
        401
    );
    assert_eq!(login(&app, &victim.email, &victim.password).await, 200);
    // ...nor accept it as someone else, nor with a bad token.
    problem(
        accept(&app, &secret, Some(&stranger.token), None).await,
        403,
    )
    .await;
    problem(accept(&app, &secret, Some("bcs_forged"), None).await, 401).await;
    assert!(!is_member(&app, tenant, &victim).await);

    // The owner accepts with their own session.
    let res = accept(&app, &secret, Some(&victim.token), None).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.json::<Value>().await.unwrap()["account_created"], false);
    assert!(is_member(&app, tenant, &victim).await);
    assert!(!is_member(&app, tenant, &stranger).await);
}

#[tokio::test]
async fn inviting_reveals_nothing_about_which_addresses_have_accounts() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant(PackageName::Pro).await;
    let admin = app.member(tenant, Role::OrgAdmin).await;
    let existing = app.user().await;
    let a = invite(&app, tenant, &admin.token, &existing.email, "member").await;
    let b = invite(
        &app,
        tenant,
        &admin.token,
        "nobody-yet@example.com",
        "member",
    )
    .await;
    assert_eq!(a.status(), b.status());
    let (a, b): (Value, Value) = (a.json().await.unwrap(), b.json().await.unwrap());
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&a), keys(&b));
    assert_eq!(
        keys(&a),
        ["email", "expires_at", "invitation_id", "role", "token"]
    );
}

#[tokio::test]
async fn open_invitations_take_seats_can_be_replaced_revoked_and_expire() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant(PackageName::Free).await; // 2 users
    let admin = app.member(tenant, Role::OrgAdmin).await;
    let first = invite(&app, tenant, &admin.token, "one@example.com", "member").await;
    let first: Value = first.json().await.unwrap();
    // The same address again replaces its invitation (no second seat).
    let again = invite(&app, tenant, &admin.token, "ONE@example.com", "reviewer").await;
    assert_eq!(again.status(), 201);
    let again: Value = again.json().await.unwrap();
    problem(
        accept(
            &app,
            first["token"].as_str().unwrap(),
            None,
            Some(json!({ "password": "long enough pw" })),
        )
        .await,
        404,
    )
    .await;
    let body = problem(
        invite(&app, tenant, &admin.token, "two@example.com", "member").await,
        409,
    )
    .await;
    assert_eq!(body["limit"], "users");

    // Revoking frees the seat and kills the token.
    let id = again["invitation_id"].as_str().unwrap();
    let path = format!("/v1/tenants/{tenant}/invitations/{id}");
    assert_eq!(
        app.delete(&path, &admin.token)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    problem(app.delete(&path, &admin.token).send().await.unwrap(), 404).await;
    problem(
        accept(
            &app,
            again["token"].as_str().unwrap(),
            None,
            Some(json!({ "password": "long enough pw" })),
        )
        .await,
        404,
    )
    .await;
    let res = invite(&app, tenant, &admin.token, "two@example.com", "member").await;
    assert_eq!(res.status(), 201);
    let two: Value = res.json().await.unwrap();

    // An expired invitation opens nothing.
    sqlx::query("UPDATE invitations SET expires_at = now() - interval '1 second'")
        .execute(&app.store.pool)
        .await
        .unwrap();
    problem(
        accept(
            &app,
            two["token"].as_str().unwrap(),
            None,
            Some(json!({ "password": "long enough pw" })),
        )
        .await,
        404,
    )
    .await;

    // Another tenant's invitation is not found.
    let other = app.tenant(PackageName::Pro).await;
    let other_admin = app.member(other, Role::OrgAdmin).await;
    problem(
        app.delete(
            &format!("/v1/tenants/{other}/invitations/{id}"),
            &other_admin.token,
        )
        .send()
        .await
        .unwrap(),
        404,
    )
    .await;
}

#[tokio::test]
async fn nobody_grants_a_role_beyond_their_own_permissions() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant(PackageName::Pro).await;
    let admin = app.member(tenant, Role::OrgAdmin).await;
    let narrow = app
        .key(Some(tenant), admin.id, &[Permission::UsersManage])
        .await;

    let body = problem(
        invite(&app, tenant, &narrow, "boss@example.com", "org_admin").await,
        403,
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("permissions you do not hold"),
        "{body}"
    );
    let member = app.member(tenant, Role::Member).await;
    let change = |token: &str, role: &str| {
        app.client
            .patch(app.url(&format!("/v1/tenants/{tenant}/members/{}", member.id)))
            .bearer_auth(token)
            .json(&json!({ "role": role }))
            .send()
    };
    problem(change(&narrow, "org_admin").await.unwrap(), 403).await;

    // A key holding a role's every permission may grant exactly that role.
    let member_perms = Role::Member.permissions();
    let mut scopes = member_perms.to_vec();
    scopes.push(Permission::UsersManage);
    let wide = app.key(Some(tenant), admin.id, &scopes).await;
    assert_eq!(
        invite(&app, tenant, &wide, "peer@example.com", "member")
            .await
            .status(),
        201
    );
    problem(
        invite(&app, tenant, &wide, "boss@example.com", "org_admin").await,
        403,
    )
    .await;
    problem(change(&wide, "org_admin").await.unwrap(), 403).await;
    assert_eq!(
        change(&admin.token, "org_admin").await.unwrap().status(),
        200
    );
    // Nor may the narrower key demote or remove the member it could not make.
    problem(change(&wide, "member").await.unwrap(), 403).await;
    let role: String = sqlx::query_scalar("SELECT role FROM memberships WHERE user_id = $1")
        .bind(member.id.0)
        .fetch_one(&app.store.pool)
        .await
        .unwrap();
    assert_eq!(role, "org_admin");
}
