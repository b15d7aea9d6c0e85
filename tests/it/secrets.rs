//! Plant a known password and API key (and the CRM's and Stripe's
//! secrets), use them, export the tenant's data through the real binary with
//! debug logging, then look for them everywhere: every log line, every
//! response (headers and bodies), every text column of the database.

use crate::harness::{bin_env, free_addr, run_bin, wait_ready, TestDb, TestRedis, BIN};
use bizcontacts_fakes::highlevel::{FakeHighLevel, CLIENT_ID, CLIENT_SECRET};
use bizcontacts_fakes::stripe::FakeStripe;
use bizcontacts_store::Store;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;

const PASSWORD: &str = "Planted-Secret-Password-0xC0FFEE";
/// The password an invitee chooses when accepting.
const INVITEE_PASSWORD: &str = "Planted-Invitee-Password-0xBEEF";
/// HighLevel secrets: what the fake hands out on the OAuth exchange, the
/// Private Integration key an admin saves, and our app's client secret.
const ACCESS_TOKEN: &str = "Planted-HighLevel-Access-0xA11CE";
const REFRESH_TOKEN: &str = "Planted-HighLevel-Refresh-0xB0B";
const PRIVATE_KEY: &str = "Planted-Private-Integration-0xCAFE";
/// Stripe: our secret key, and two webhook endpoint secrets (one rolling).
const STRIPE_KEY: &str = "sk_test_Planted-Stripe-Key-0xD00D";
const STRIPE_WHSEC: &str = "whsec_Planted-Stripe-Webhook-0xF00D";
const STRIPE_WHSEC_OLD: &str = "whsec_Planted-Stripe-Old-0xFEED";

#[tokio::test]
async fn planted_secrets_never_appear_in_clear() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let addr = free_addr();
    let env = bin_env(&db, &redis, &addr);
    let mut logs = String::new();

    let (s, tenant, err) = run_bin(
        &[
            "tenant",
            "create",
            "--name",
            "Secretive",
            "--package",
            "pro",
        ],
        &env,
    );
    assert!(s.success(), "{err}");
    logs += &err;
    let tenant = tenant.trim().to_string();
    let (s, _, err) = run_bin(
        &[
            "user",
            "create",
            "--email",
            "keeper@example.com",
            "--password",
            PASSWORD,
            "--tenant",
            &tenant,
            "--role",
            "org_admin",
        ],
        &env,
    );
    assert!(s.success(), "{err}");
    logs += &err;
    let (s, key, err) = run_bin(
        &[
            "api-key",
            "create",
            "--tenant",
            &tenant,
            "--email",
            "keeper@example.com",
        ],
        &env,
    );
    assert!(s.success(), "{err}");
    logs += &err;
    let key = key.trim().to_string();
    assert!(key.starts_with("bck_"));

    let fake = FakeHighLevel::start().await;
    fake.add_location("loc-s", "Secretive Sub-Account");
    fake.private_key(PRIVATE_KEY, "loc-s");
    fake.plant_tokens(ACCESS_TOKEN, REFRESH_TOKEN);
    let stripe = FakeStripe::start(STRIPE_KEY, &["price_pro", "price_enterprise"]).await;
    let mut server = tokio::process::Command::new(BIN)
        .arg("serve")
        .envs(env.iter().cloned())
        .env("BIZCONTACTS__STRIPE__API_BASE_URL", &stripe.base)
        .env("BIZCONTACTS__STRIPE__SECRET_KEY", STRIPE_KEY)
        .env(
            "BIZCONTACTS__STRIPE__WEBHOOK_SECRET",
            format!("{STRIPE_WHSEC_OLD},{STRIPE_WHSEC}"),
        )
        .env("BIZCONTACTS__STRIPE__PRICES__PRO", "price_pro")
        .env(
            "BIZCONTACTS__STRIPE__PRICES__ENTERPRISE",
            "price_enterprise",
        )
        // A price Stripe refuses: its error must not carry the key either.
        .env("BIZCONTACTS__STRIPE__PRICES__STARTER", "price_unknown")
        .env("BIZCONTACTS__HIGHLEVEL__API_BASE_URL", &fake.base)
        .env("BIZCONTACTS__HIGHLEVEL__CLIENT_ID", CLIENT_ID)
        .env("BIZCONTACTS__HIGHLEVEL__CLIENT_SECRET", CLIENT_SECRET)
        .env("RUST_LOG", "debug")
        .env("BIZCONTACTS__LOG__FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://{addr}");
    wait_ready(&format!("{base}/healthz")).await;

    let client = reqwest::Client::new();
    let mut responses = String::new();
    let record = |res: reqwest::Response| async move {
        let mut text = format!("{} {:?}\n", res.status(), res.headers());
        text += &res.text().await.unwrap_or_default();
        text
    };
    let login = client
        .post(format!("{base}/v1/auth/login"))
        .json(&serde_json::json!({ "email": "keeper@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let body: serde_json::Value = login.json().await.unwrap();
    let session = body["token"].as_str().unwrap().to_string();
    // The login response is the one place the session token belongs.
    assert!(!body.to_string().contains(PASSWORD));
    // A failed attempt with the secret as the email, and the key in odd places.
    responses += &record(
        client
            .post(format!("{base}/v1/auth/login"))
            .json(&serde_json::json!({ "email": PASSWORD, "password": PASSWORD }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    for auth in [
        format!("Bearer {key}"),
        format!("Bearer {key} extra"),
        format!("Token {key}"),
        key.clone(),
    ] {
        responses += &record(
            client
                .get(format!("{base}/v1/me"))
                .header("authorization", auth)
                .send()
                .await
                .unwrap(),
        )
        .await;
    }
    responses += &record(
        client
            .get(format!("{base}/v1/tenants/{tenant}/usage"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    responses += &record(
        client
            .get(format!("{base}/v1/me?api_key={key}"))
            .bearer_auth(&session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    responses += &record(
        client
            .get(format!("{base}/v1/tenants/{tenant}/api-keys"))
            .bearer_auth(&session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    // An invitation: its token is shown once, to the inviter, and is then
    // only ever a hash; the invitee's chosen password likewise.
    let invited = client
        .post(format!("{base}/v1/tenants/{tenant}/members"))
        .bearer_auth(&session)
        .json(&serde_json::json!({ "email": "invitee@example.com", "role": "member" }))
        .send()
        .await
        .unwrap();
    assert_eq!(invited.status(), 201);
    let invitation = invited.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    responses += &record(
        client
            .get(format!("{base}/v1/tenants/{tenant}/invitations"))
            .bearer_auth(&session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    for _ in 0..2 {
        // The second accept fails (used once) and must not echo the token.
        responses += &record(
            client
                .post(format!("{base}/v1/invitations/{invitation}/accept"))
                .json(&serde_json::json!({ "password": INVITEE_PASSWORD }))
                .send()
                .await
                .unwrap(),
        )
        .await;
    }
    // The CRM: a Private Integration key (refused once, with the key in a
    // wrong place, then saved), then OAuth with planted tokens.
    let crm = format!("{base}/v1/tenants/{tenant}/crm");
    for (token, location) in [
        (format!("{PRIVATE_KEY}-wrong"), "loc-s"),
        (PRIVATE_KEY.to_string(), "loc-s"),
    ] {
        responses += &record(
            client
                .put(format!("{crm}/private-integration"))
                .bearer_auth(&session)
                .json(&serde_json::json!({ "token": token, "location_id": location }))
                .send()
                .await
                .unwrap(),
        )
        .await;
    }
    let start: serde_json::Value = client
        .post(format!("{crm}/connect"))
        .bearer_auth(&session)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = reqwest::Url::parse(start["authorization_url"].as_str().unwrap()).unwrap();
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let code = fake.grant(
        "loc-s",
        "contacts.readonly contacts.write locations.readonly",
    );
    let callback = client
        .get(format!("{base}/v1/crm/oauth/callback"))
        .query(&[("code", code.as_str()), ("state", state.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(callback.status(), 200);
    responses += &record(callback).await;
    responses += &record(
        client
            .get(format!("{crm}/connection"))
            .bearer_auth(&session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    // Billing: checkouts (one Stripe refuses), a signed webhook, a forged one.
    for package in ["pro", "starter"] {
        responses += &record(
            client
                .post(format!("{base}/v1/tenants/{tenant}/billing/checkout"))
                .bearer_auth(&session)
                .json(&serde_json::json!({ "package": package }))
                .send()
                .await
                .unwrap(),
        )
        .await;
    }
    let sub = stripe.put_subscription(
        "sub_s",
        "cus_s",
        "price_enterprise",
        "active",
        Some(&tenant),
    );
    let now = chrono::Utc::now().timestamp();
    for (id, secret) in [("evt_good", STRIPE_WHSEC), ("evt_forged", "whsec_forged")] {
        let (body, sig) = FakeStripe::event(
            id,
            "customer.subscription.created",
            sub.clone(),
            secret,
            now,
        );
        responses += &record(
            client
                .post(format!("{base}/v1/webhooks/stripe"))
                .header("stripe-signature", sig)
                .body(body)
                .send()
                .await
                .unwrap(),
        )
        .await;
    }
    responses += &record(
        client
            .get(format!("{base}/v1/tenants/{tenant}/billing"))
            .bearer_auth(&session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    responses += &record(client.get(format!("{base}/metrics")).send().await.unwrap()).await;

    // The tenant's data export, made by a worker process: every file of the
    // ZIP, unpacked, joins what is searched.
    let mut worker = tokio::process::Command::new(BIN)
        .arg("worker")
        .envs(env.iter().cloned())
        .env("BIZCONTACTS__WORKER__HTTP_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "debug")
        .env("BIZCONTACTS__LOG__FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let started: serde_json::Value = client
        .post(format!("{base}/v1/tenants/{tenant}/exports"))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let export = format!(
        "{base}/v1/tenants/{tenant}/exports/{}",
        started["export_id"].as_str().unwrap()
    );
    let mut zip = None;
    for _ in 0..300 {
        let res = client
            .get(&export)
            .bearer_auth(&session)
            .send()
            .await
            .unwrap();
        if res.status() == 200 {
            zip = Some(res.bytes().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let zip = zip.expect("the export became ready");
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip.to_vec())).unwrap();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file, &mut text).unwrap();
        responses += &text;
    }
    assert!(
        responses.contains("keeper@example.com"),
        "the export was read"
    );

    // The admin dashboard: a support user signs in (the cookie is the one
    // place its session token belongs) and reads the pages, the export
    // job's detail (its params) included.
    let (s, _, err) = run_bin(
        &[
            "user",
            "create",
            "--email",
            "watcher@example.com",
            "--password",
            PASSWORD,
        ],
        &env,
    );
    assert!(s.success(), "{err}");
    let (s, _, err) = run_bin(
        &[
            "user",
            "grant-system-role",
            "--email",
            "watcher@example.com",
            "--role",
            "support",
        ],
        &env,
    );
    assert!(s.success(), "{err}");
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = browser
        .get(format!("{base}/admin/login"))
        .send()
        .await
        .unwrap();
    let form_cookie = form.headers()["set-cookie"].to_str().unwrap().to_string();
    let form_cookie = form_cookie.split(';').next().unwrap().to_string();
    let csrf = crate::admin_web::csrf_in(&form.text().await.unwrap());
    let signed_in = browser
        .post(format!("{base}/admin/login"))
        .header("cookie", form_cookie)
        .form(&[
            ("email", "watcher@example.com"),
            ("password", PASSWORD),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let admin_session = cookie.trim_start_matches("bc_admin=").to_string();
    let export_job = started["job_id"].as_str().unwrap_or_default().to_string();
    for page in [
        "/admin".to_string(),
        "/admin/jobs".into(),
        format!("/admin/jobs/{export_job}"),
        "/admin/workers".into(),
        "/admin/tenants".into(),
    ] {
        let res = browser
            .get(format!("{base}{page}"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        responses += &record(res).await;
    }
    assert!(
        responses.contains("Jobs per kind"),
        "the dashboard was read"
    );
    worker.start_kill().unwrap();
    let mut out = worker.stdout.take().unwrap();
    out.read_to_string(&mut logs).await.unwrap();
    let mut err = worker.stderr.take().unwrap();
    err.read_to_string(&mut logs).await.unwrap();
    let _ = worker.wait().await;

    // Stop the server and collect everything it wrote.
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.start_kill().unwrap();
    let mut out = String::new();
    server
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    let _ = server.wait().await;
    logs += &out;
    assert!(
        logs.contains("\"request_id\""),
        "debug JSON logs were captured: {}",
        &logs[..logs.len().min(500)]
    );

    let store = Store::connect(&db.url, 2, Duration::from_secs(5))
        .await
        .unwrap();
    let database = dump_text_columns(&store).await;
    assert!(
        database.contains("keeper@example.com"),
        "the dump reads the tables"
    );
    let connected: String =
        sqlx::query_scalar("SELECT status FROM crm_connections WHERE tenant_id = $1::uuid")
            .bind(&tenant)
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert_eq!(connected, "connected", "the OAuth flow ran");
    let package: String = sqlx::query_scalar("SELECT package FROM tenants WHERE id = $1::uuid")
        .bind(&tenant)
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(package, "enterprise", "the signed Stripe webhook was taken");
    assert_eq!(stripe.checkouts().len(), 1, "one checkout was accepted");
    store.pool.close().await;

    for secret in [
        PASSWORD,
        INVITEE_PASSWORD,
        key.as_str(),
        session.as_str(),
        admin_session.as_str(),
        &key[12..],
        invitation.as_str(),
        &invitation[4..],
        ACCESS_TOKEN,
        REFRESH_TOKEN,
        PRIVATE_KEY,
        CLIENT_SECRET,
        STRIPE_KEY,
        STRIPE_WHSEC,
        STRIPE_WHSEC_OLD,
    ] {
        if let Some(i) = logs.find(secret) {
            let before: String = logs[..i].chars().rev().take(300).collect();
            let before: String = before.chars().rev().collect();
            panic!("secret {secret:.8}... in logs: ...{before}");
        }
        if let Some(i) = responses.find(secret) {
            panic!(
                "secret in a response: ...{}...",
                &responses[i.saturating_sub(200)..i]
            );
        }
        if let Some(i) = database.find(secret) {
            panic!(
                "secret in the database: ...{}...",
                &database[i.saturating_sub(200)..(i + 100).min(database.len())]
            );
        }
    }
}

/// Every value of every text-like column of every table, as one string.
async fn dump_text_columns(store: &Store) -> String {
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns
         WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'jsonb', 'json', 'ARRAY', 'bytea')",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap();
    assert!(columns.len() > 10);
    let mut all = String::new();
    for (table, column, data_type) in columns {
        let expr = if data_type == "bytea" {
            format!("encode(\"{column}\", 'escape')")
        } else {
            format!("\"{column}\"::text")
        };
        let values: Vec<Option<String>> =
            sqlx::query_scalar(&format!("SELECT {expr} FROM \"{table}\""))
                .fetch_all(&store.pool)
                .await
                .unwrap_or_else(|e| panic!("{table}.{column}: {e}"));
        for v in values.into_iter().flatten() {
            all.push_str(&v);
            all.push('\n');
        }
    }
    all
}
