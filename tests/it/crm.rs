//! The CRM connection (issue 15) against a fake HighLevel: OAuth end to
//! end, Private Integration keys, refresh across processes, webhooks.

use crate::harness::{problem, TestApp, TestDb};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bizcontacts_domain::{PackageName, Role, TenantId};
use bizcontacts_fakes::highlevel::{FakeHighLevel, CLIENT_ID, CLIENT_SECRET};
use bizcontacts_highlevel::session::{Crm, SessionError};
use reqwest::Url;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const SCOPES: &str = "contacts.readonly contacts.write locations.readonly";

pub(crate) struct Crmed {
    pub app: TestApp,
    pub fake: FakeHighLevel,
    pub tenant: TenantId,
    pub admin: String,
}

pub(crate) async fn setup_with(change: impl FnOnce(&mut bizcontacts_config::Settings)) -> Crmed {
    let fake = FakeHighLevel::start().await;
    fake.add_location("loc-1", "Acme Sub-Account");
    fake.add_location("loc-2", "Second Sub-Account");
    let base = fake.base.clone();
    let app = TestApp::spawn_with(TestDb::new().await, |s| {
        s.highlevel.api_base_url = base.clone();
        s.highlevel.authorize_url = format!("{base}/oauth/chooselocation");
        s.highlevel.whitelabel_authorize_url = format!("{base}/wl/oauth/chooselocation");
        s.highlevel.client_id = CLIENT_ID.into();
        s.highlevel.client_secret = CLIENT_SECRET.to_string().into();
        s.highlevel.redirect_url = "https://bc.example/v1/crm/oauth/callback".into();
        change(s);
    })
    .await;
    let tenant = app.tenant(PackageName::Pro).await;
    let admin = app.member(tenant, Role::OrgAdmin).await.token;
    Crmed {
        app,
        fake,
        tenant,
        admin,
    }
}

async fn setup() -> Crmed {
    setup_with(|_| {}).await
}

impl Crmed {
    pub(crate) fn path(&self, rest: &str) -> String {
        format!("/v1/tenants/{}/crm/{rest}", self.tenant)
    }

    /// Connect: the consent URL's query, as a map.
    async fn start(&self, body: Value) -> HashMap<String, String> {
        let res = self
            .app
            .post(&self.path("connect"), &self.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let url: Value = res.json().await.unwrap();
        let url = Url::parse(url["authorization_url"].as_str().unwrap()).unwrap();
        url.query_pairs().into_owned().collect()
    }

    async fn callback(&self, query: &[(&str, &str)]) -> reqwest::Response {
        self.app
            .client
            .get(self.app.url("/v1/crm/oauth/callback"))
            .query(query)
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn connection_status(&self) -> String {
        self.connection().await["status"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn connection(&self) -> Value {
        self.app
            .get_json(&self.path("connection"), &self.admin)
            .await
    }

    fn crm(&self) -> Crm {
        let pool = self.app.store.pool.clone();
        bizcontacts::runtime::crm(&self.app.settings, &pool).unwrap()
    }

    async fn sealed(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        sqlx::query_as(
            "SELECT token_sealed, refresh_sealed FROM crm_connections WHERE tenant_id = $1",
        )
        .bind(self.tenant.0)
        .fetch_one(&self.app.store.pool)
        .await
        .unwrap()
    }

    async fn audit(&self, action: &str) -> Vec<Value> {
        sqlx::query_scalar("SELECT details FROM audit_events WHERE tenant_id = $1 AND action = $2")
            .bind(self.tenant.0)
            .bind(action)
            .fetch_all(&self.app.store.pool)
            .await
            .unwrap()
    }

    /// Connected with OAuth to loc-1, tokens planted.
    pub(crate) async fn oauth_connected(&self, access: &str, refresh: &str) {
        self.fake.plant_tokens(access, refresh);
        let q = self.start(json!({})).await;
        let code = self.fake.grant("loc-1", SCOPES);
        let res = self
            .callback(&[("code", &code), ("state", &q["state"])])
            .await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    }
}

#[tokio::test]
async fn oauth_connects_a_location_end_to_end_and_stores_tokens_sealed() {
    let c = setup().await;
    let q = c.start(json!({})).await;
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(
        q["redirect_uri"],
        "https://bc.example/v1/crm/oauth/callback"
    );
    assert_eq!(q["scope"], SCOPES);
    assert!(q["state"].len() >= 40);
    // The state is stored hashed, never in clear.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT state_hash FROM crm_oauth_states")
        .fetch_one(&c.app.store.pool)
        .await
        .unwrap();
    assert_ne!(stored, q["state"].as_bytes());

    c.fake.plant_tokens("planted-access-1", "planted-refresh-1");
    let code = c.fake.grant("loc-1", SCOPES);
    let res = c.callback(&[("code", &code), ("state", &q["state"])]).await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(!body.contains("planted-"), "{body}");
    let conn = c.connection().await;
    assert_eq!(conn["method"], "oauth");
    assert_eq!(conn["status"], "connected");
    assert_eq!(conn["location_id"], "loc-1");
    assert_eq!(conn["location_name"], "Acme Sub-Account");
    assert_eq!(conn["company_id"], "company-1");
    assert_eq!(conn["scopes"], json!(SCOPES.split(' ').collect::<Vec<_>>()));
    assert!(conn["token_expires_at"].is_string());
    assert!(!conn.to_string().contains("planted-"));
    let (token, refresh) = c.sealed().await;
    for sealed in [token, refresh.unwrap()] {
        assert!(!String::from_utf8_lossy(&sealed).contains("planted-"));
    }
    // The session opens what was sealed: the token works against HighLevel.
    let mut session = c.crm().session(c.tenant).await.unwrap();
    let loc = session
        .call(|client, token| async move { client.location(&token, "loc-1").await })
        .await
        .unwrap();
    assert_eq!(loc.name.as_deref(), Some("Acme Sub-Account"));
    let audit = c.audit("crm.connected").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["location_id"], "loc-1");

    // The white-label page is the other host.
    let res = c
        .app
        .post(&c.path("connect"), &c.admin)
        .json(&json!({ "whitelabel": true }))
        .send()
        .await
        .unwrap();
    let url: Value = res.json().await.unwrap();
    assert!(url["authorization_url"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}/wl/oauth/chooselocation?", c.fake.base)));
}

#[tokio::test]
async fn bad_states_denials_and_missing_scopes_store_nothing() {
    let c = setup().await;
    // Unknown state.
    let code = c.fake.grant("loc-1", SCOPES);
    let res = c
        .callback(&[("code", &code), ("state", "forged-state")])
        .await;
    assert_eq!(problem(res, 422).await["errors"][0]["field"], "state");
    // Reused state: the second use fails even with a fresh code.
    let q = c.start(json!({})).await;
    let res = c.callback(&[("code", &code), ("state", &q["state"])]).await;
    assert_eq!(res.status(), 200);
    let again = c.fake.grant("loc-2", SCOPES);
    let res = c
        .callback(&[("code", &again), ("state", &q["state"])])
        .await;
    let body = problem(res, 422).await;
    assert!(body["errors"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("already used"));
    assert_eq!(c.connection().await["location_id"], "loc-1");
    sqlx::query("DELETE FROM crm_connections")
        .execute(&c.app.store.pool)
        .await
        .unwrap();
    // Expired state.
    let q = c.start(json!({})).await;
    sqlx::query("UPDATE crm_oauth_states SET expires_at = now() - interval '1 second' WHERE used_at IS NULL")
        .execute(&c.app.store.pool)
        .await
        .unwrap();
    let res = c
        .callback(&[("code", &again), ("state", &q["state"])])
        .await;
    let body = problem(res, 422).await;
    assert!(body["errors"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("expired"));
    // Declined in HighLevel; and HTML for a browser.
    let q = c.start(json!({})).await;
    let res = c
        .app
        .client
        .get(c.app.url("/v1/crm/oauth/callback"))
        .query(&[("error", "access_denied"), ("state", q["state"].as_str())])
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let page = res.text().await.unwrap();
    assert!(page.contains("declined"), "{page}");
    // Not every scope granted.
    let q = c.start(json!({})).await;
    let partial = c
        .fake
        .grant("loc-1", "contacts.readonly locations.readonly");
    let res = c
        .callback(&[("code", &partial), ("state", &q["state"])])
        .await;
    let body = problem(res, 403).await;
    assert!(
        body["detail"].as_str().unwrap().contains("contacts.write"),
        "{body}"
    );
    // A code HighLevel refuses.
    let q = c.start(json!({})).await;
    let res = c
        .callback(&[("code", "made-up"), ("state", &q["state"])])
        .await;
    assert_eq!(problem(res, 422).await["errors"][0]["field"], "code");
    assert_eq!(c.app.count("crm_connections").await, 0);
    // Another tenant's admin cannot start a connection here (and is not
    // told the tenant exists).
    let other = c.app.tenant(PackageName::Pro).await;
    let stranger = c.app.member(other, Role::OrgAdmin).await.token;
    let res = c
        .app
        .post(&c.path("connect"), &stranger)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn private_integration_keys_are_verified_replaced_and_disconnected() {
    let c = setup().await;
    c.fake.private_key("pit-key-one", "loc-1");
    c.fake.private_key("pit-key-two", "loc-2");
    let put = |token: &str, location: &str| {
        c.app
            .client
            .put(c.app.url(&c.path("private-integration")))
            .bearer_auth(&c.admin)
            .json(&json!({ "token": token, "location_id": location }))
            .send()
    };
    let res = put("pit-wrong", "loc-1").await.unwrap();
    let body = problem(res, 422).await;
    assert_eq!(body["errors"][0]["field"], "token");
    assert!(!body.to_string().contains("pit-wrong"));
    let res = put("pit-key-one", "loc-404").await.unwrap();
    assert_eq!(problem(res, 422).await["errors"][0]["field"], "location_id");
    let res = put("pit-key-one", "loc 1; DROP").await.unwrap();
    assert_eq!(problem(res, 422).await["errors"][0]["field"], "location_id");
    assert_eq!(c.app.count("crm_connections").await, 0);

    let res = put("pit-key-one", "loc-1").await.unwrap();
    assert_eq!(res.status(), 200);
    let view: Value = res.json().await.unwrap();
    assert_eq!(view["method"], "private_integration");
    assert_eq!(view["location_name"], "Acme Sub-Account");
    let res = put("pit-key-two", "loc-2").await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(c.connection().await["location_id"], "loc-2");
    let audit = c.audit("crm.connected").await;
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[1]["replaced"], true);
    assert!(!json!(audit).to_string().contains("pit-key"));

    // Every other role is refused (the matrix test covers API keys).
    for role in [
        Role::BillingManager,
        Role::Importer,
        Role::Reviewer,
        Role::Member,
    ] {
        let token = c.app.member(c.tenant, role).await.token;
        let res = c
            .app
            .client
            .put(c.app.url(&c.path("private-integration")))
            .bearer_auth(&token)
            .json(&json!({ "token": "pit-key-one", "location_id": "loc-1" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{role:?}");
    }
    assert_eq!(c.connection().await["location_id"], "loc-2");

    // A refused key stops CRM work: needs_reconnect, audited, no retry loop.
    c.fake.private_key("pit-key-two", "elsewhere");
    let mut session = c.crm().session(c.tenant).await.unwrap();
    let err = session
        .call(|client, token| async move { client.location(&token, "loc-2").await })
        .await
        .unwrap_err();
    assert!(matches!(err, SessionError::NeedsReconnect(_)), "{err}");
    assert!(!err.is_transient());
    assert_eq!(c.connection().await["status"], "needs_reconnect");
    assert_eq!(c.audit("crm.needs_reconnect").await.len(), 1);

    let res = c
        .app
        .delete(&c.path("connection"), &c.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(c.connection().await["status"], "disconnected");
    let (token, refresh): (Option<Vec<u8>>, Option<Vec<u8>>) = sqlx::query_as(
        "SELECT token_sealed, refresh_sealed FROM crm_connections WHERE tenant_id = $1",
    )
    .bind(c.tenant.0)
    .fetch_one(&c.app.store.pool)
    .await
    .unwrap();
    assert_eq!((token, refresh), (None, None));
    assert_eq!(c.audit("crm.disconnected").await.len(), 1);
    let res = c
        .app
        .delete(&c.path("connection"), &c.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn two_processes_refreshing_at_once_spend_the_refresh_token_once() {
    let c = setup().await;
    // Tokens that expire within the refresh margin: every session refreshes.
    c.fake.set_access_ttl(Duration::from_secs(60));
    c.oauth_connected("access-0", "refresh-0").await;
    c.fake.set_access_ttl(Duration::from_secs(86_399));
    // Two workers: separate pools, as separate processes have.
    let other_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(c.app.db_url())
        .await
        .unwrap();
    let (a, mut b) = (c.crm(), c.crm());
    b.pool = other_pool;
    let (sa, sb) = tokio::join!(a.session(c.tenant), b.session(c.tenant));
    let (mut sa, mut sb) = (sa.unwrap(), sb.unwrap());
    assert_eq!(
        c.fake.refresh_calls(),
        1,
        "the refresh token was spent twice"
    );
    for s in [&mut sa, &mut sb] {
        s.call(|client, token| async move { client.location(&token, "loc-1").await })
            .await
            .unwrap();
    }
    assert!(!c.fake.is_live("access-0") || c.fake.refresh_calls() == 1);

    // A 401 mid-work: one refresh, the call succeeds.
    c.fake.expire_access_tokens();
    let calls = c.fake.refresh_calls();
    sa.call(|client, token| async move { client.location(&token, "loc-1").await })
        .await
        .unwrap();
    assert_eq!(c.fake.refresh_calls(), calls + 1);
    // The other process finds the token moved on and uses the new one.
    sb.call(|client, token| async move { client.location(&token, "loc-1").await })
        .await
        .unwrap();
    assert_eq!(c.fake.refresh_calls(), calls + 1);

    // A refused refresh: needs_reconnect, audited, a permanent error.
    c.fake.expire_access_tokens();
    c.fake.revoke_refresh_tokens();
    let err = sa
        .call(|client, token| async move { client.location(&token, "loc-1").await })
        .await
        .unwrap_err();
    assert!(matches!(err, SessionError::NeedsReconnect(_)), "{err}");
    assert_eq!(c.connection().await["status"], "needs_reconnect");
    let audit = c.audit("crm.needs_reconnect").await;
    assert_eq!(audit.len(), 1);
    assert!(audit[0]["reason"]
        .as_str()
        .unwrap()
        .contains("refresh token"));
    // And later sessions stop at once, without calling HighLevel.
    let calls = c.fake.refresh_calls();
    assert!(matches!(
        a.session(c.tenant).await,
        Err(SessionError::NeedsReconnect(_))
    ));
    assert_eq!(c.fake.refresh_calls(), calls);
}

/// Webhook signing keys: RSA (x-wh-signature) and Ed25519 (x-ghl-signature).
pub(crate) struct Signer {
    rsa: rsa::pkcs1v15::SigningKey<sha2::Sha256>,
    pub(crate) rsa_pem: String,
    ed: ed25519_dalek::SigningKey,
    pub(crate) ed_pem: String,
}

impl Signer {
    pub(crate) fn new() -> Self {
        use rsa::pkcs8::EncodePublicKey;
        let mut rng = rand::thread_rng();
        let private = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let rsa_pem = private
            .to_public_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        let ed = ed25519_dalek::SigningKey::generate(&mut rng);
        let ed_pem = ed25519_dalek::pkcs8::EncodePublicKey::to_public_key_pem(
            &ed.verifying_key(),
            Default::default(),
        )
        .unwrap();
        Signer {
            rsa: rsa::pkcs1v15::SigningKey::new(private),
            rsa_pem,
            ed,
            ed_pem,
        }
    }

    pub(crate) fn rsa(&self, body: &[u8]) -> String {
        use rsa::signature::{SignatureEncoding, Signer as _};
        STANDARD.encode(self.rsa.sign(body).to_vec())
    }

    pub(crate) fn ed(&self, body: &[u8]) -> String {
        use ed25519_dalek::Signer as _;
        STANDARD.encode(self.ed.sign(body).to_bytes())
    }
}

#[tokio::test]
async fn webhooks_are_verified_fresh_once_and_take_effect() {
    let signer = Arc::new(Signer::new());
    let keys = signer.clone();
    let c = setup_with(move |s| {
        s.highlevel.webhook_rsa_public_key = keys.rsa_pem.clone();
        s.highlevel.webhook_ed25519_public_key = keys.ed_pem.clone();
    })
    .await;
    c.oauth_connected("access-w", "refresh-w").await;
    let post = |body: Vec<u8>, headers: Vec<(&'static str, String)>| {
        let mut req = c
            .app
            .client
            .post(c.app.url("/v1/webhooks/highlevel"))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    let event = |kind: &str, id: &str, at: chrono::DateTime<chrono::Utc>| {
        serde_json::to_vec(&json!({
            "type": kind, "webhookId": id, "timestamp": at.to_rfc3339(),
            "locationId": "loc-1", "id": "crm-contact-1", "email": "a@example.com",
        }))
        .unwrap()
    };
    let now = chrono::Utc::now();

    // Valid RSA and valid Ed25519 deliveries.
    let body = event("ContactCreate", "wh-1", now);
    let res = post(body.clone(), vec![("x-wh-signature", signer.rsa(&body))])
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "processed");
    let body2 = event("ContactUpdate", "wh-2", now);
    let res = post(body2.clone(), vec![("x-ghl-signature", signer.ed(&body2))])
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(c.app.count("crm_contact_events").await, 2);

    // Replayed: acknowledged, no effect.
    let res = post(body.clone(), vec![("x-wh-signature", signer.rsa(&body))])
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "duplicate");
    assert_eq!(c.app.count("crm_contact_events").await, 2);

    // Tampered body, wrong key, no signature, stale, future: refused.
    let mut tampered = event("ContactDelete", "wh-3", now);
    let sig = signer.ed(&tampered);
    let at = tampered.len() - 3;
    tampered[at] ^= 1;
    let other = Signer::new();
    let stale = event("ContactDelete", "wh-5", now - chrono::Duration::minutes(6));
    let future = event("ContactDelete", "wh-6", now + chrono::Duration::minutes(10));
    let fresh = event("ContactDelete", "wh-4", now);
    for (body, headers) in [
        (tampered, vec![("x-ghl-signature", sig)]),
        (fresh.clone(), vec![("x-ghl-signature", other.ed(&fresh))]),
        (fresh.clone(), vec![("x-wh-signature", other.rsa(&fresh))]),
        (fresh.clone(), vec![]),
        (stale.clone(), vec![("x-wh-signature", signer.rsa(&stale))]),
        (
            future.clone(),
            vec![("x-ghl-signature", signer.ed(&future))],
        ),
    ] {
        let res = post(body, headers).await.unwrap();
        assert_eq!(res.status(), 401);
    }
    assert_eq!(c.app.count("crm_contact_events").await, 2);
    assert_eq!(c.app.count("highlevel_webhooks").await, 2);

    // UNINSTALL disconnects: tokens destroyed, audited.
    let body = serde_json::to_vec(&json!({
        "type": "UNINSTALL", "webhookId": "wh-9", "timestamp": now.to_rfc3339(),
        "appId": "app-1", "locationId": "loc-1",
    }))
    .unwrap();
    let res = post(body.clone(), vec![("x-ghl-signature", signer.ed(&body))])
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(c.connection().await["status"], "disconnected");
    let (token,): (Option<Vec<u8>>,) =
        sqlx::query_as("SELECT token_sealed FROM crm_connections WHERE tenant_id = $1")
            .bind(c.tenant.0)
            .fetch_one(&c.app.store.pool)
            .await
            .unwrap();
    assert!(token.is_none());
    assert_eq!(c.audit("crm.uninstalled").await.len(), 1);
}

#[tokio::test]
async fn secrets_rotate_reseals_with_the_new_key() {
    let c = setup().await;
    c.fake.private_key("pit-rotate", "loc-1");
    let res = c
        .app
        .client
        .put(c.app.url(&c.path("private-integration")))
        .bearer_auth(&c.admin)
        .json(&json!({ "token": "pit-rotate", "location_id": "loc-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let old_key = c.app.settings.secrets.encryption_key.clone();
    let new_key = bizcontacts_security::sealing::Keyring::generate_key();
    let mut env = crate::harness::bin_env(&c.app.db, &c.app.redis, "127.0.0.1:0");
    env.push((
        "BIZCONTACTS__SECRETS__ENCRYPTION_KEY".into(),
        new_key.clone(),
    ));
    env.push((
        "BIZCONTACTS__SECRETS__PREVIOUS_ENCRYPTION_KEYS".into(),
        secrecy::ExposeSecret::expose_secret(&old_key).to_string(),
    ));
    let (status, out, err) = crate::harness::run_bin(&["secrets", "rotate"], &env);
    assert!(status.success(), "{err}");
    assert_eq!(out.trim(), "1");
    // Only the new key is needed now: a session opens the key and calls.
    let mut settings = c.app.settings.clone();
    settings.secrets.encryption_key = new_key.into();
    let crm = bizcontacts::runtime::crm(&settings, &c.app.store.pool).unwrap();
    let mut session = crm.session(c.tenant).await.unwrap();
    session
        .call(|client, token| async move { client.location(&token, "loc-1").await })
        .await
        .unwrap();
    // The old key alone no longer opens it; nothing is left to re-seal.
    let mut old = c.app.settings.clone();
    old.secrets.encryption_key = old_key;
    let crm = bizcontacts::runtime::crm(&old, &c.app.store.pool).unwrap();
    assert!(matches!(
        crm.session(c.tenant).await,
        Err(SessionError::Unreadable(_))
    ));
    let (_, out, _) = crate::harness::run_bin(&["secrets", "rotate"], &env);
    assert_eq!(out.trim(), "0");
}
