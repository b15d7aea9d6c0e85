//! Health, readiness, metrics, OpenAPI, request ids, and problem+json for
//! errors raised outside handlers.

use crate::harness::{problem, TestApp, TestDb};
use serde_json::{json, Value};

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["checks"]["postgres"], "ok");
    assert_eq!(body["checks"]["redis"], "ok");
    assert_eq!(body["checks"]["migrations"], "ok");
}

#[tokio::test]
async fn not_ready_while_migrations_are_pending() {
    let db = TestDb::reserve();
    bizcontacts_store::Store::create_database_if_missing(&db.url)
        .await
        .unwrap();
    let app = TestApp::spawn_on(db).await;
    let body = problem(
        app.client.get(app.url("/readyz")).send().await.unwrap(),
        503,
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("migrations: pending"),
        "{body}"
    );
    // Liveness does not depend on the database.
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_errors_quote_it() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert!(res.headers().contains_key("x-request-id"));

    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-me-123");

    let res = app
        .client
        .get(app.url("/no/such/route"))
        .send()
        .await
        .unwrap();
    let header = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let body = problem(res, 404).await;
    assert_eq!(body["request_id"], header.as_str());
    assert_eq!(body["instance"], "/no/such/route");
}

#[tokio::test]
async fn method_not_allowed_is_a_problem_with_allow() {
    let app = TestApp::spawn().await;
    let res = app.client.delete(app.url("/v1/me")).send().await.unwrap();
    assert!(res.headers()["allow"].to_str().unwrap().contains("GET"));
    problem(res, 405).await;
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let app = TestApp::spawn().await;
    app.client.get(app.url("/healthz")).send().await.unwrap();
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("http_requests_total"), "{text}");
    assert!(text.contains("route=\"/healthz\""), "{text}");
    assert!(text.contains("http_request_duration_seconds"));
}

#[tokio::test]
async fn openapi_document_is_generated_from_the_routes() {
    let app = TestApp::spawn().await;
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/auth/login",
        "/v1/me",
        "/v1/tenants/{tenant_id}/api-keys",
        "/readyz",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"].get("Problem").is_some());

    // Enums are documented as they travel (snake_case, scope names).
    let schemas = &doc["components"]["schemas"];
    let values = |name: &str| schemas[name]["enum"].as_array().unwrap().clone();
    assert!(
        values("Role").contains(&json!("org_admin")),
        "{}",
        schemas["Role"]
    );
    assert!(values("Permission").contains(&json!("contacts:search")));
    assert!(values("Source").contains(&json!("csv")));
    assert!(values("ImportStatus").contains(&json!("staged")));
    assert!(values("Encoding").contains(&json!("utf-8")));
    // Every error answer is a problem, with the statuses the intake gives.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (code, response) in op["responses"].as_object().unwrap() {
                if code.starts_with('4') || code.starts_with('5') {
                    let content = response["content"].as_object().unwrap();
                    assert!(
                        content.contains_key("application/problem+json") && content.len() == 1,
                        "{method} {path} {code}: {content:?}"
                    );
                }
            }
            if op.get("security").is_some() {
                assert!(
                    op["responses"].get("401").is_some(),
                    "{method} {path} lacks 401"
                );
            }
        }
    }
    let import = &doc["paths"]["/v1/tenants/{tenant_id}/imports"]["post"]["responses"];
    for code in ["400", "401", "413", "415", "422", "429"] {
        assert!(import.get(code).is_some(), "POST /imports lacks {code}");
    }
}
