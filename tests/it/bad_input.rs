//! Bad input gets a clear problem+json naming what is wrong, and writes nothing.

use crate::harness::{problem, TestApp};
use bizcontacts_domain::{PackageName, Permission, Role};
use bizcontacts_store::sessions;
use serde_json::json;

#[tokio::test]
async fn expired_credentials_are_refused_with_a_reason() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant(PackageName::Pro).await;
    let user = app.member(tenant, Role::OrgAdmin).await;

    let token = bizcontacts_security::new_session_token();
    sessions::create(
        &app.store.pool,
        user.id,
        &bizcontacts_security::token_hash(&token),
        chrono::Utc::now() - chrono::Duration::seconds(1),
    )
    .await
    .unwrap();
    let body = problem(app.get("/v1/me", &token).send().await.unwrap(), 401).await;
    assert!(body["detail"].as_str().unwrap().contains("expired"));

    let mut conn = app.store.pool.acquire().await.unwrap();
    let key = bizcontacts_http::identity::issue_api_key(
        &mut conn,
        Some(tenant),
        user.id,
        "short-lived",
        &[Permission::UsageRead],
        Some(chrono::Utc::now() - chrono::Duration::seconds(1)),
    )
    .await
    .map_err(|e| e.to_string())
    .unwrap()
    .secret;
    let body = problem(
        app.get(&format!("/v1/tenants/{tenant}/usage"), &key)
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("expired"));

    // Unknown tokens of either shape, and garbage.
    for token in ["bcs_doesnotexist", "bck_abcdefgh_nope", "plainly-wrong"] {
        let body = problem(app.get("/v1/me", token).send().await.unwrap(), 401).await;
        assert_eq!(body["detail"], "invalid token");
    }
}

#[tokio::test]
async fn malformed_authorization_headers_are_401_with_a_reason() {
    let app = TestApp::spawn().await;
    let body = problem(app.client.get(app.url("/v1/me")).send().await.unwrap(), 401).await;
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("missing Authorization"));
    for header in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "Bearer a b",
        "bcs_x",
    ] {
        let res = app
            .client
            .get(app.url("/v1/me"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
        let body = problem(res, 401).await;
        assert!(
            body["detail"].as_str().unwrap().contains("malformed"),
            "{header:?}: {body}"
        );
    }
    let res = app
        .client
        .get(app.url("/v1/me"))
        .header(
            "authorization",
            reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
        )
        .send()
        .await
        .unwrap();
    problem(res, 401).await;
}

#[tokio::test]
async fn bodies_of_the_wrong_size_type_or_shape_write_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant(PackageName::Pro).await;
    let admin = app.member(tenant, Role::OrgAdmin).await;
    let members = format!("/v1/tenants/{tenant}/members");
    let before = (
        app.count("users").await,
        app.count("memberships").await,
        app.count("audit_events").await,
    );

    // Oversized (the JSON limit is 1 MiB).
    let huge =
        json!({ "email": "a@example.com", "role": "member", "note": "x".repeat(2 * 1024 * 1024) });
    let body = problem(
        app.post(&members, &admin.token)
            .json(&huge)
            .send()
            .await
            .unwrap(),
        413,
    )
    .await;
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("larger than the limit"));

    // Wrong content type.
    let res = app
        .post(&members, &admin.token)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(problem(res, 415).await["detail"]
        .as_str()
        .unwrap()
        .contains("application/json"));

    // Malformed JSON.
    let res = app
        .post(&members, &admin.token)
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert!(problem(res, 400).await["detail"]
        .as_str()
        .unwrap()
        .contains("malformed JSON"));

    // Well-formed, wrong shape: each names its field.
    for (payload, field) in [
        (
            json!({ "email": "a@example.com", "role": "emperor" }),
            "role",
        ),
        (
            json!({ "email": "a@example.com", "role": "member", "admin": true }),
            "admin",
        ),
        (
            json!({ "email": "a@example.com", "role": "member", "password": "chosen for them" }),
            "password",
        ),
        (
            json!({ "email": "not-an-email", "role": "member" }),
            "email",
        ),
        (json!({ "role": "member" }), "email"),
    ] {
        let body = problem(
            app.post(&members, &admin.token)
                .json(&payload)
                .send()
                .await
                .unwrap(),
            422,
        )
        .await;
        let named = body["errors"][0]["field"].as_str().unwrap_or_default();
        assert!(
            named == field || named.is_empty() && body["detail"].as_str().unwrap().contains(field),
            "{payload}: {body}"
        );
    }

    // Query parameters are checked too.
    let res = app
        .get(&format!("{members}?limit=0"), &admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res, 422).await["errors"][0]["field"], "limit");
    let res = app
        .get(&format!("{members}?cursor=';DROP"), &admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res, 422).await["errors"][0]["field"], "cursor");
    let res = app
        .get(&format!("{members}?limit=ten"), &admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res, 422).await["errors"][0]["field"], "limit");

    let after = (
        app.count("users").await,
        app.count("memberships").await,
        app.count("audit_events").await,
    );
    assert_eq!(before, after, "nothing was written");
}

#[tokio::test]
async fn sql_metacharacters_are_just_characters() {
    let app = TestApp::spawn().await;
    let nasty = "x'); DROP TABLE users; --@example.com";
    let res = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({ "email": nasty, "password": "' OR '1'='1" }))
        .send()
        .await
        .unwrap();
    problem(res, 401).await;
    assert_eq!(
        app.count("users").await,
        0,
        "the table is still there and untouched"
    );

    // A real address with a quote in it is just an address.
    let hash = bizcontacts::runtime::passwords(&app.settings)
        .unwrap()
        .hash("a long password")
        .unwrap();
    let email = bizcontacts_domain::Email::parse("o'brien@example.com").unwrap();
    bizcontacts_store::users::create(&app.store.pool, &email, Some(&hash))
        .await
        .unwrap();
    let res = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({ "email": "o'brien@example.com", "password": "a long password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let attempts: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = 'auth.login_failed'")
            .fetch_one(&app.store.pool)
            .await
            .unwrap();
    assert_eq!(attempts, 1);
}
