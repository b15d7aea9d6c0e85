//! The admin dashboard over plain HTTP: who gets in, what each page
//! requires, CSRF on every action, and the headers. The browser flows are
//! in `admin_browser.rs`.

use crate::harness::*;
use bizcontacts_domain::{PackageName, Role, SystemRole};
use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::json;

const PAGES: [&str; 7] = [
    "/admin",
    "/admin/live",
    "/admin/jobs",
    "/admin/jobs?status=failed&error=planned",
    "/admin/workers",
    "/admin/schedules",
    "/admin/tenants",
];

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// Sign in through the form; the session cookie's `name=value`, or the
/// status and body when refused.
pub async fn sign_in(app: &TestApp, email: &str, password: &str) -> Result<String, (u16, String)> {
    let (cookie, csrf) = login_form(app).await;
    let res = post_login(app, &cookie, email, password, &csrf).await;
    let status = res.status().as_u16();
    let cookie = res
        .headers()
        .get(SET_COOKIE)
        .map(|c| c.to_str().unwrap().to_string());
    match (status, cookie) {
        (303, Some(c)) => {
            assert!(c.contains("HttpOnly"), "{c}");
            assert!(c.contains("SameSite=Strict"), "{c}");
            assert!(c.contains("Path=/admin"), "{c}");
            // Test settings: plain HTTP, so not Secure (production is, below).
            assert!(!c.contains("Secure"), "{c}");
            Ok(c.split(';').next().unwrap().to_string())
        }
        (s, _) => Err((s, res.text().await.unwrap())),
    }
}

/// Post the sign-in form with this form cookie (`name=value`) and token.
async fn post_login(
    app: &TestApp,
    cookie: &str,
    email: &str,
    password: &str,
    csrf: &str,
) -> reqwest::Response {
    client()
        .post(app.url("/admin/login"))
        .header(COOKIE, cookie)
        .form(&[("email", email), ("password", password), ("csrf", csrf)])
        .send()
        .await
        .unwrap()
}

/// The sign-in form: its cookie (`name=value`) and the token it carries.
pub async fn login_form(app: &TestApp) -> (String, String) {
    let form = client().get(app.url("/admin/login")).send().await.unwrap();
    let cookie = form.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(cookie.contains("Path=/admin/login") && cookie.contains("SameSite=Strict"));
    let cookie = cookie.split(';').next().unwrap().to_string();
    (cookie, csrf_in(&form.text().await.unwrap()))
}

async fn get(app: &TestApp, path: &str, cookie: &str) -> reqwest::Response {
    client()
        .get(app.url(path))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap()
}

/// The CSRF token a page's forms carry.
pub fn csrf_in(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    html[at..at + 32].to_string()
}

#[tokio::test]
async fn only_system_roles_get_in_and_only_admins_act() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant(PackageName::Pro).await;
    let owner = app.member(tenant, Role::OrgAdmin).await;
    let support = app.system_user(SystemRole::Support).await;
    let admin = app.system_user(SystemRole::PlatformAdmin).await;

    // No cookie: every page sends the browser to the sign-in form.
    for page in PAGES {
        let res = get(&app, page, "").await;
        assert_eq!(res.status(), 303, "{page}");
        assert_eq!(res.headers()[LOCATION], "/admin/login");
    }
    // A bearer session or an API key is not a dashboard session.
    let res = client()
        .get(app.url("/admin"))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let forged = format!("bc_admin={}", owner.token);
    assert_eq!(get(&app, "/admin", &forged).await.status(), 403);

    // A tenant owner with the right password is still refused, and gets no cookie.
    let (status, body) = sign_in(&app, &owner.email, &owner.password)
        .await
        .unwrap_err();
    assert_eq!(status, 403);
    assert!(body.contains("no platform role"), "{body}");
    let (status, _) = sign_in(&app, &admin.email, "wrong").await.unwrap_err();
    assert_eq!(status, 401);
    // The sign-in form has its own CSRF guard: a post from elsewhere (no
    // form cookie, or a token that is not the cookie's) signs nobody in.
    let (form_cookie, token) = login_form(&app).await;
    for (cookie, csrf) in [
        ("".to_string(), token.clone()),
        (form_cookie.clone(), "0".repeat(32)),
        (form_cookie.clone(), String::new()),
    ] {
        let res = post_login(&app, &cookie, &admin.email, &admin.password, &csrf).await;
        assert_eq!(res.status(), 403);
        assert!(res
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .all(|c| !c.to_str().unwrap().starts_with("bc_admin=")));
    }

    // Support reads every page, with no action buttons, and cannot act.
    let cookie = sign_in(&app, &support.email, &support.password)
        .await
        .unwrap();
    for page in PAGES {
        let res = get(&app, page, &cookie).await;
        assert_eq!(res.status(), 200, "{page}");
        let csp = res.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }
    let jobs = app
        .enqueue(vec![test_job(Some(tenant), "test_noop", json!({}))])
        .await;
    let page = get(&app, &format!("/admin/jobs/{}", jobs[0]), &cookie).await;
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("id=\"cancel\""),
        "support sees no cancel button"
    );
    let csrf = csrf_in(&html);
    let res = client()
        .post(app.url(&format!("/admin/jobs/{}/cancel", jobs[0])))
        .header(COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    // Filters are checked like the API's.
    let res = get(&app, "/admin/jobs?status=bogus", &cookie).await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("status"));
    let res = get(&app, "/admin/jobs?error=ab", &cookie).await;
    assert_eq!(res.status(), 422);
    let res = get(&app, "/admin/jobs?from=yesterday", &cookie).await;
    assert_eq!(res.status(), 422);
    let res = get(&app, "/admin/jobs/not-a-uuid", &cookie).await;
    assert_eq!(res.status(), 400);
    let missing = uuid::Uuid::now_v7();
    assert_eq!(
        get(&app, &format!("/admin/jobs/{missing}"), &cookie)
            .await
            .status(),
        404
    );

    // Signing out ends the session: the cookie no longer opens anything.
    let res = client()
        .post(app.url("/admin/logout"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(get(&app, "/admin", &cookie).await.status(), 303);
}

#[tokio::test]
async fn every_action_needs_the_sessions_csrf_token() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant(PackageName::Pro).await;
    let admin = app.system_user(SystemRole::PlatformAdmin).await;
    let other = app.system_user(SystemRole::PlatformAdmin).await;
    let cookie = sign_in(&app, &admin.email, &admin.password).await.unwrap();
    let other_cookie = sign_in(&app, &other.email, &other.password).await.unwrap();
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let mut job = test_job(Some(tenant), "test_noop", json!({}));
    job.run_after = Some(later);
    let id = app.enqueue(vec![job]).await[0];
    let html = get(&app, &format!("/admin/jobs/{id}"), &cookie)
        .await
        .text()
        .await
        .unwrap();
    let csrf = csrf_in(&html);
    let other_csrf = csrf_in(
        &get(&app, "/admin/jobs", &other_cookie)
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_ne!(csrf, other_csrf);

    let post = |path: String, form: Vec<(&'static str, String)>| {
        let cookie = cookie.clone();
        let app_url = app.url(&path);
        async move {
            client()
                .post(app_url)
                .header(COOKIE, cookie)
                .form(&form)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let cancel = format!("/admin/jobs/{id}/cancel");
    // No token, an empty one, another session's: refused, nothing changes.
    assert_eq!(post(cancel.clone(), vec![]).await, 403);
    assert_eq!(
        post(cancel.clone(), vec![("csrf", String::new())]).await,
        403
    );
    assert_eq!(
        post(cancel.clone(), vec![("csrf", other_csrf.clone())]).await,
        403
    );
    let bulk = "/admin/jobs/bulk".to_string();
    let ids = ("id", id.to_string());
    assert_eq!(
        post(bulk.clone(), vec![("action", "cancel".into()), ids.clone()]).await,
        403
    );
    assert_eq!(post("/admin/logout".into(), vec![]).await, 403);
    assert_eq!(app.job_status(id).await, "queued");
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = 'job.cancelled'")
            .fetch_one(&app.store.pool)
            .await
            .unwrap();
    assert_eq!(events, 0);

    // Bad bulk forms are 4xx with the field named.
    let with = |extra: Vec<(&'static str, String)>| {
        let mut f = vec![("csrf", csrf.clone())];
        f.extend(extra);
        f
    };
    assert_eq!(
        post(
            bulk.clone(),
            with(vec![("action", "explode".into()), ids.clone()])
        )
        .await,
        422
    );
    assert_eq!(
        post(bulk.clone(), with(vec![("action", "cancel".into())])).await,
        422
    );
    assert_eq!(
        post(
            bulk.clone(),
            with(vec![
                ("action", "cancel".into()),
                ("id", "1; DROP TABLE jobs".into())
            ])
        )
        .await,
        422
    );

    // With the token: cancelled, audited with the dashboard as the channel.
    assert_eq!(post(cancel, vec![("csrf", csrf.clone())]).await, 303);
    assert_eq!(app.job_status(id).await, "cancelled");
    let via: String = sqlx::query_scalar(
        "SELECT details->>'via' FROM audit_events WHERE action = 'job.cancelled' AND target_id = $1",
    )
    .bind(id.to_string())
    .fetch_one(&app.store.pool)
    .await
    .unwrap();
    assert_eq!(via, "admin dashboard");
    // A cancelled job offers neither cancel nor retry (only failed and dead
    // jobs can be retried).
    let html = get(&app, &format!("/admin/jobs/{id}"), &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains("id=\"retry\"") && !html.contains("id=\"cancel\""));
}

/// The Grafana dashboard (deploy/grafana) charts only metrics the code
/// records: a renamed metric would leave an empty panel, silently.
#[test]
fn grafana_dashboard_names_only_recorded_metrics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/bizcontacts-jobs.json")).unwrap(),
    )
    .unwrap();
    let sources = [
        "crates/queue/src/metrics.rs",
        "crates/http/src/middleware.rs",
    ]
    .map(|p| std::fs::read_to_string(root.join(p)).unwrap())
    .join("\n");
    let mut seen = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                let metric = word.strip_suffix("_bucket").unwrap_or(word);
                if metric.ends_with("_total")
                    || metric.ends_with("_seconds")
                    || metric == "job_queue_depth"
                {
                    assert!(
                        sources.contains(&format!("\"{metric}\"")),
                        "{metric} is not recorded"
                    );
                    seen += 1;
                }
            }
        }
    }
    assert!(seen >= 10, "the dashboard charts the job metrics");
}

/// In production (served behind TLS) both cookies are `Secure`.
#[tokio::test]
async fn production_cookies_are_secure() {
    let app =
        TestApp::spawn_with(TestDb::new().await, |s| s.environment = "production".into()).await;
    let admin = app.system_user(SystemRole::PlatformAdmin).await;
    let form = client().get(app.url("/admin/login")).send().await.unwrap();
    let form_cookie = form.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(form_cookie.ends_with("; Secure"), "{form_cookie}");
    let csrf = csrf_in(&form.text().await.unwrap());
    let cookie = form_cookie.split(';').next().unwrap();
    let res = post_login(&app, cookie, &admin.email, &admin.password, &csrf).await;
    assert_eq!(res.status(), 303);
    let session = res.headers()[SET_COOKIE].to_str().unwrap();
    assert!(
        session.starts_with("bc_admin=") && session.ends_with("; Secure"),
        "{session}"
    );
}
