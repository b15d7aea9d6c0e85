//! Billing (issue 18) against a fake Stripe: checkout, signed webhooks,
//! events twice and out of order, billing_reconcile, manual activation,
//! and package limits that change at once.

use crate::harness::{problem, wait_until, TestApp, TestDb};
use bizcontacts_domain::{PackageName, Permission, Role, SystemRole, TenantId};
use bizcontacts_fakes::stripe::FakeStripe;
use serde_json::{json, Value};

pub(crate) const SECRET_KEY: &str = "sk_test_fake_51Hx";
const WHSEC: &str = "whsec_test_current";
const WHSEC_OLD: &str = "whsec_test_previous";
const PRICES: [&str; 3] = ["price_starter", "price_pro", "price_enterprise"];

struct Billed {
    app: TestApp,
    fake: FakeStripe,
    tenant: TenantId,
    /// The tenant's org admin (billing:manage).
    admin: String,
    /// A platform admin.
    platform: String,
}

async fn setup() -> Billed {
    let fake = FakeStripe::start(SECRET_KEY, &PRICES).await;
    let base = fake.base.clone();
    let app = TestApp::spawn_with(TestDb::new().await, |s| {
        s.stripe.api_base_url = base;
        s.stripe.secret_key = SECRET_KEY.to_string().into();
        // Rolling: the old secret is still accepted beside the new one.
        s.stripe.webhook_secret = vec![WHSEC_OLD.to_string().into(), WHSEC.to_string().into()];
        s.stripe.prices.starter = PRICES[0].into();
        s.stripe.prices.pro = PRICES[1].into();
        s.stripe.prices.enterprise = PRICES[2].into();
        s.billing.success_url = "https://bc.example/billing/done".into();
        s.billing.cancel_url = "https://bc.example/billing/cancelled".into();
    })
    .await;
    let tenant = app.tenant(PackageName::Free).await;
    let admin = app.member(tenant, Role::OrgAdmin).await.token;
    let platform = app.system_user(SystemRole::PlatformAdmin).await.token;
    Billed {
        app,
        fake,
        tenant,
        admin,
        platform,
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Billed {
    async fn package(&self) -> String {
        sqlx::query_scalar("SELECT package FROM tenants WHERE id = $1")
            .bind(self.tenant.0)
            .fetch_one(&self.app.store.pool)
            .await
            .unwrap()
    }

    async fn post_webhook(&self, body: &str, signature: Option<&str>) -> reqwest::Response {
        let mut req = self
            .app
            .client
            .post(self.app.url("/v1/webhooks/stripe"))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(s) = signature {
            req = req.header("stripe-signature", s);
        }
        req.send().await.unwrap()
    }

    /// Deliver a correctly signed event; returns its status and body.
    async fn deliver(&self, id: &str, kind: &str, object: Value) -> (u16, Value) {
        let (body, sig) = FakeStripe::event(id, kind, object, WHSEC, now());
        let res = self.post_webhook(&body, Some(&sig)).await;
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// The tenant's pro subscription in the fake, as Stripe now has it.
    fn subscription(&self, id: &str, status: &str) -> Value {
        self.fake.put_subscription(
            id,
            "cus_acme",
            PRICES[1],
            status,
            Some(&self.tenant.to_string()),
        )
    }

    /// Stripe now has the tenant's subscription in `status`, and an event
    /// about it arrives.
    async fn subscription_event(&self, id: &str, kind: &str, status: &str) -> (u16, Value) {
        let sub = self.subscription("sub_1", status);
        self.deliver(id, kind, sub).await
    }

    /// POST `body` to `path` as the tenant's org admin.
    async fn admin_post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.app
            .post(path, &self.admin)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// One of the package's limits, as `/usage` shows it.
    async fn limit(&self, name: &str) -> Value {
        let usage = self
            .app
            .get_json(&format!("/v1/tenants/{}/usage", self.tenant), &self.admin)
            .await;
        usage["limits"][name].clone()
    }

    async fn audit_count(&self, action: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE tenant_id = $1 AND action = $2")
            .bind(self.tenant.0)
            .bind(action)
            .fetch_one(&self.app.store.pool)
            .await
            .unwrap()
    }

    async fn billing(&self) -> Value {
        self.app
            .get_json(&format!("/v1/tenants/{}/billing", self.tenant), &self.admin)
            .await
    }

    /// Start billing_reconcile as the platform admin and wait for it;
    /// returns its progress message.
    async fn reconcile(&self) -> String {
        let res = self
            .app
            .post("/v1/admin/billing/reconcile", &self.platform)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        let job: Value = res.json().await.unwrap();
        let id: uuid::Uuid = job["job_id"].as_str().unwrap().parse().unwrap();
        let worker = self.app.worker().await;
        wait_until(30, "billing_reconcile succeeded", || async {
            self.app.job_status(id).await == "succeeded"
        })
        .await;
        worker.stop().await;
        sqlx::query_scalar("SELECT progress_message FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&self.app.store.pool)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn checkout_opens_a_stripe_session_for_the_package() {
    let b = setup().await;
    let path = format!("/v1/tenants/{}/billing/checkout", b.tenant);
    let checkout = |key: &'static str| {
        b.app
            .post(&path, &b.admin)
            .header("idempotency-key", key)
            .json(&json!({ "package": "pro" }))
            .send()
    };
    let res = checkout("click-1").await.unwrap();
    assert_eq!(res.status(), 200);
    let first: Value = res.json().await.unwrap();
    let url = first["checkout_url"].as_str().unwrap();
    assert!(url.starts_with("https://checkout.stripe.test/"), "{url}");
    let forms = b.fake.checkouts();
    assert_eq!(forms.len(), 1);
    let form = &forms[0];
    let tenant = b.tenant.to_string();
    assert_eq!(form["mode"], "subscription");
    assert_eq!(form["line_items[0][price]"], PRICES[1]);
    assert_eq!(form["line_items[0][quantity]"], "1");
    assert_eq!(form["client_reference_id"], tenant);
    assert_eq!(form["subscription_data[metadata][tenant_id]"], tenant);
    assert_eq!(form["success_url"], "https://bc.example/billing/done");
    assert_eq!(form["cancel_url"], "https://bc.example/billing/cancelled");
    assert!(!form.contains_key("customer"), "no customer yet");
    // The same click again: the same session, no second one at Stripe.
    let again: Value = checkout("click-1").await.unwrap().json().await.unwrap();
    assert_eq!(again, first);
    assert_eq!(b.fake.checkouts().len(), 1);
    // Nothing changes until Stripe confirms.
    assert_eq!(b.package().await, "free");
    assert_eq!(b.audit_count("billing.checkout_started").await, 2);

    // A package not sold, a member without billing:manage.
    let res = b
        .app
        .post(&path, &b.admin)
        .json(&json!({ "package": "free" }))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res, 422).await["errors"][0]["field"], "package");
    let member = b.app.member(b.tenant, Role::Member).await.token;
    let res = b
        .app
        .post(&path, &member)
        .json(&json!({ "package": "pro" }))
        .send()
        .await
        .unwrap();
    problem(res, 403).await;

    // Once the tenant is a customer, checkout names it.
    let sub = b.subscription("sub_1", "active");
    b.deliver("evt_c1", "customer.subscription.created", sub)
        .await;
    checkout("click-2").await.unwrap();
    assert_eq!(b.fake.checkouts()[1]["customer"], "cus_acme");
}

#[tokio::test]
async fn webhooks_are_taken_only_with_a_valid_signature() {
    let b = setup().await;
    let sub = b.subscription("sub_1", "active");
    let (body, good) =
        FakeStripe::event("evt_1", "customer.subscription.created", sub, WHSEC, now());
    let v1 = good.split_once(",v1=").unwrap().1.to_string();
    let refused: Vec<(&str, String, String)> = vec![
        ("missing header", body.clone(), String::new()),
        ("malformed", body.clone(), "v1=abc".into()),
        (
            "wrong secret",
            body.clone(),
            FakeStripe::event(
                "evt_1",
                "customer.subscription.created",
                json!({}),
                "whsec_other",
                now(),
            )
            .1,
        ),
        (
            "tampered body",
            body.replace("active", "activf"),
            good.clone(),
        ),
        (
            "stale",
            body.clone(),
            bizcontacts_billing::signature::sign(WHSEC, now() - 301, body.as_bytes()),
        ),
        (
            "future",
            body.clone(),
            bizcontacts_billing::signature::sign(WHSEC, now() + 301, body.as_bytes()),
        ),
    ];
    for (what, body, sig) in refused {
        let res = b
            .post_webhook(&body, (!sig.is_empty()).then_some(sig.as_str()))
            .await;
        assert_eq!(res.status(), 401, "{what}");
        let p = problem(res, 401).await;
        assert!(
            p["detail"].as_str().unwrap().contains("ignature"),
            "{what}: {p}"
        );
    }
    assert_eq!(b.app.count("stripe_events").await, 0);
    assert_eq!(b.package().await, "free");
    // Several v1 values (Stripe signs with every live secret): one match is enough.
    let t = good.split(',').next().unwrap();
    let several = format!("{t},v1={},v1={v1}", "ab".repeat(32));
    assert_eq!(b.post_webhook(&body, Some(&several)).await.status(), 200);
    assert_eq!(b.package().await, "pro");
    // Signed with the rolled (previous) secret: still accepted while configured.
    let sub = b.subscription("sub_1", "active");
    let (body, old) = FakeStripe::event(
        "evt_2",
        "customer.subscription.updated",
        sub,
        WHSEC_OLD,
        now(),
    );
    assert_eq!(b.post_webhook(&body, Some(&old)).await.status(), 200);
    // Not JSON of an event, though signed: 400, nothing recorded.
    let junk = "not json";
    let sig = bizcontacts_billing::signature::sign(WHSEC, now(), junk.as_bytes());
    assert_eq!(b.post_webhook(junk, Some(&sig)).await.status(), 400);
    assert_eq!(b.app.count("stripe_events").await, 2);
}

#[tokio::test]
async fn an_event_takes_effect_once_also_when_two_copies_arrive_together() {
    let b = setup().await;
    let sub = b.subscription("sub_1", "active");
    let (body, sig) = FakeStripe::event(
        "evt_twice",
        "customer.subscription.created",
        sub,
        WHSEC,
        now(),
    );
    let copies = (0..8).map(|_| b.post_webhook(&body, Some(&sig)));
    let answers = futures::future::join_all(copies).await;
    let mut statuses = Vec::new();
    for a in answers {
        assert_eq!(a.status(), 200);
        let v: Value = a.json().await.unwrap();
        statuses.push(v["status"].as_str().unwrap().to_string());
    }
    assert_eq!(
        statuses.iter().filter(|s| *s == "processed").count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| *s == "duplicate").count(),
        7,
        "{statuses:?}"
    );
    assert_eq!(b.package().await, "pro");
    assert_eq!(b.audit_count("billing.package_changed").await, 1);
    // Later, again: still one effect.
    let res = b.post_webhook(&body, Some(&sig)).await;
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "duplicate");
    assert_eq!(b.app.count("stripe_events").await, 1);
    assert_eq!(b.audit_count("billing.package_changed").await, 1);
}

#[tokio::test]
async fn events_out_of_order_never_roll_a_tenant_back() {
    let b = setup().await;
    // Checkout completes: the customer becomes the tenant's, the package pro.
    let created = b.subscription("sub_1", "incomplete");
    let sub = b.subscription("sub_1", "active");
    let session = json!({ "id": "cs_1", "object": "checkout.session", "client_reference_id": b.tenant.to_string(),
        "customer": "cus_acme", "subscription": "sub_1", "mode": "subscription" });
    // updated before created: the late `created` (incomplete) reads the
    // subscription as it is now (active).
    assert_eq!(
        b.deliver("evt_u1", "customer.subscription.updated", sub.clone())
            .await
            .0,
        200
    );
    assert_eq!(
        b.deliver("evt_c1", "customer.subscription.created", created)
            .await
            .0,
        200
    );
    assert_eq!(
        b.deliver("evt_s1", "checkout.session.completed", session)
            .await
            .0,
        200
    );
    assert_eq!(b.package().await, "pro");
    let view = b.billing().await;
    assert_eq!(view["source"], "checkout", "{view}");
    assert_eq!(view["subscription_status"], "active", "{view}");
    // Canceled at Stripe; `deleted` arrives before a late `updated` (active).
    let deleted = b.subscription("sub_1", "canceled");
    assert_eq!(
        b.deliver("evt_d1", "customer.subscription.deleted", deleted)
            .await
            .0,
        200
    );
    assert_eq!(b.package().await, "free");
    assert_eq!(
        b.deliver("evt_u2", "customer.subscription.updated", sub)
            .await
            .0,
        200
    );
    assert_eq!(b.package().await, "free");
    assert_eq!(b.billing().await["subscription_status"], "canceled");
    // An event about a customer we do not know, and a type we do not act on.
    let stranger = b
        .fake
        .put_subscription("sub_x", "cus_stranger", PRICES[2], "active", None);
    let (s, v) = b
        .deliver("evt_x", "customer.subscription.created", stranger)
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("ignored")));
    let (s, v) = b
        .deliver("evt_y", "customer.created", json!({ "id": "cus_new" }))
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("ignored")));
    assert_eq!(b.package().await, "free");
}

#[tokio::test]
async fn a_failed_payment_gives_a_grace_period_then_free() {
    let b = setup().await;
    b.subscription_event("evt_1", "customer.subscription.created", "active")
        .await;
    assert_eq!(b.package().await, "pro");
    b.subscription("sub_1", "past_due");
    let invoice = json!({ "id": "in_1", "object": "invoice", "customer": "cus_acme", "subscription": "sub_1" });
    assert_eq!(
        b.deliver("evt_2", "invoice.payment_failed", invoice.clone())
            .await
            .0,
        200
    );
    let view = b.billing().await;
    assert_eq!(view["subscription_status"], "past_due");
    let grace: chrono::DateTime<chrono::Utc> =
        view["grace_until"].as_str().unwrap().parse().unwrap();
    let days = (grace - chrono::Utc::now()).num_hours();
    assert!((167..=168).contains(&days), "7 days of grace, got {days} h");
    assert_eq!(b.package().await, "pro", "the package holds during grace");
    assert_eq!(b.audit_count("billing.past_due").await, 1);
    // A second failure does not extend the grace period.
    b.deliver("evt_3", "invoice.payment_failed", invoice).await;
    assert_eq!(b.billing().await["grace_until"], view["grace_until"]);
    // The grace period passes (moved into the past, as time would):
    // reconciliation drops the tenant to free, audited.
    sqlx::query(
        "UPDATE tenant_billing SET grace_until = now() - interval '1 minute' WHERE tenant_id = $1",
    )
    .bind(b.tenant.0)
    .execute(&b.app.store.pool)
    .await
    .unwrap();
    b.reconcile().await;
    assert_eq!(b.package().await, "free");
    assert_eq!(b.audit_count("billing.grace_ended").await, 1);
    // Paid after all: back to pro, grace cleared.
    b.subscription("sub_1", "active");
    let paid = json!({ "id": "in_2", "object": "invoice", "customer": "cus_acme",
        "parent": { "subscription_details": { "subscription": "sub_1" } } });
    b.deliver("evt_4", "invoice.paid", paid).await;
    assert_eq!(b.package().await, "pro");
    assert_eq!(b.billing().await["grace_until"], Value::Null);
}

#[tokio::test]
async fn reconcile_fixes_lost_webhooks_and_leaves_manual_activations_alone() {
    let b = setup().await;
    // A webhook that never arrived: Stripe has the tenant on pro.
    b.subscription("sub_1", "active");
    // Another tenant, manually on enterprise, whose subscription ended.
    let manual = b.app.tenant(PackageName::Free).await;
    b.fake.put_subscription(
        "sub_m",
        "cus_manual",
        PRICES[0],
        "canceled",
        Some(&manual.to_string()),
    );
    let res = b
        .app
        .client
        .put(b.app.url(&format!("/v1/admin/tenants/{manual}/package")))
        .bearer_auth(&b.platform)
        .json(&json!({ "package": "enterprise", "reason": "contract signed offline" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Customers of no tenant of ours, enough to need two pages.
    for i in 0..120 {
        b.fake.put_subscription(
            &format!("sub_s{i}"),
            &format!("cus_s{i}"),
            PRICES[1],
            "active",
            None,
        );
    }
    // Both tenants' stored subscriptions were behind (lost webhooks); only
    // the first one's package changes, the manual activation holds.
    let report = b.reconcile().await;
    assert_eq!(
        report,
        "checked 122, in sync 0, fixed 2, unknown customer 120, superseded 0"
    );
    assert_eq!(b.package().await, "pro");
    assert_eq!(b.audit_count("billing.package_changed").await, 1);
    let manual_package: String = sqlx::query_scalar("SELECT package FROM tenants WHERE id = $1")
        .bind(manual.0)
        .fetch_one(&b.app.store.pool)
        .await
        .unwrap();
    assert_eq!(manual_package, "enterprise");
    assert!(
        b.fake
            .calls()
            .iter()
            .filter(|c| *c == "/v1/subscriptions")
            .count()
            >= 2
    );
    // Idempotent: a second run finds nothing to fix.
    let again = b.reconcile().await;
    assert_eq!(
        again,
        "checked 122, in sync 2, fixed 0, unknown customer 120, superseded 0"
    );
    assert_eq!(b.audit_count("billing.package_changed").await, 1);
    // The manual activation revoked: the ended subscription leaves it free.
    let res = b
        .app
        .client
        .delete(b.app.url(&format!("/v1/admin/tenants/{manual}/package")))
        .bearer_auth(&b.platform)
        .json(&json!({ "reason": "contract ended" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["package"], "free");
}

#[tokio::test]
async fn only_a_platform_admin_activates_a_package() {
    let b = setup().await;
    let path = format!("/v1/admin/tenants/{}/package", b.tenant);
    let put = |token: String, body: Value| {
        let req = b
            .app
            .client
            .put(b.app.url(&path))
            .bearer_auth(token)
            .json(&body);
        async move { req.send().await.unwrap() }
    };
    let body =
        json!({ "package": "enterprise", "reason": "pilot", "until": "2099-01-01T00:00:00Z" });
    for role in [SystemRole::Support, SystemRole::DataSteward] {
        let token = b.app.system_user(role).await.token;
        problem(put(token, body.clone()).await, 403).await;
    }
    // Tenant roles (of a tenant with room for them) have no say either.
    let other = b.app.tenant(PackageName::Pro).await;
    for role in [Role::OrgAdmin, Role::BillingManager] {
        let token = b.app.member(other, role).await.token;
        problem(put(token, body.clone()).await, 403).await;
    }
    assert_eq!(b.package().await, "free");
    // Bad input: no reason, an end in the past, an unknown package.
    for (bad, field) in [
        (json!({ "package": "pro", "reason": " " }), "reason"),
        (
            json!({ "package": "pro", "reason": "nul \u{0} byte" }),
            "reason",
        ),
        (
            json!({ "package": "pro", "reason": "x", "until": "2001-01-01T00:00:00Z" }),
            "until",
        ),
    ] {
        let p = problem(put(b.platform.clone(), bad).await, 422).await;
        assert_eq!(p["errors"][0]["field"], field, "{p}");
    }
    problem(
        put(
            b.platform.clone(),
            json!({ "package": "gold", "reason": "x" }),
        )
        .await,
        422,
    )
    .await;
    let res = put(b.platform.clone(), body).await;
    assert_eq!(res.status(), 200);
    assert_eq!(b.package().await, "enterprise");
    let view = b.billing().await;
    assert_eq!(view["source"], "manual");
    assert_eq!(view["manual_until"], "2099-01-01T00:00:00Z");
    assert_eq!(b.audit_count("billing.manual_activation").await, 1);
    // Stripe says otherwise meanwhile: the activation holds.
    b.fake.put_subscription(
        "sub_1",
        "cus_acme",
        PRICES[0],
        "active",
        Some(&b.tenant.to_string()),
    );
    b.deliver(
        "evt_1",
        "customer.subscription.created",
        b.fake.put_subscription(
            "sub_1",
            "cus_acme",
            PRICES[0],
            "active",
            Some(&b.tenant.to_string()),
        ),
    )
    .await;
    assert_eq!(b.package().await, "enterprise");
}

#[tokio::test]
async fn limits_follow_the_package_at_once() {
    let b = setup().await;
    let tenant = b.tenant;
    let admin_user = b.app.member(tenant, Role::OrgAdmin).await;
    let search = format!("/v1/tenants/{tenant}/contacts/search?country=DE");
    let limit_header =
        |res: &reqwest::Response| res.headers()["x-usage-limit"].to_str().unwrap().to_string();
    // Free: 50 searches, no API access, 2 users (both taken by the admins).
    let res = b.app.get(&search, &b.admin).send().await.unwrap();
    assert_eq!(limit_header(&res), "50");
    let keys = format!("/v1/tenants/{tenant}/api-keys");
    let new_key = json!({ "name": "ci", "scopes": ["contacts:search"] });
    problem(b.admin_post(&keys, &new_key).await, 403).await;
    let invite = format!("/v1/tenants/{tenant}/members");
    let invitee = json!({ "email": "third@example.com", "role": "member" });
    let refused = b.admin_post(&invite, &invitee).await;
    assert!(refused.status().is_client_error(), "{}", refused.status());
    assert_eq!(b.limit("concurrent_jobs").await, 1);

    // Upgrade (webhook): every limit at once.
    b.subscription_event("evt_1", "customer.subscription.created", "active")
        .await;
    let res = b.app.get(&search, &b.admin).send().await.unwrap();
    assert_eq!(limit_header(&res), "5000");
    let res = b.admin_post(&keys, &new_key).await;
    assert_eq!(res.status(), 201);
    let key = b
        .app
        .key(Some(tenant), admin_user.id, &[Permission::ContactsSearch])
        .await;
    assert_eq!(b.app.get(&search, &key).send().await.unwrap().status(), 200);
    let res = b.admin_post(&invite, &invitee).await;
    assert_eq!(res.status(), 201);
    assert_eq!(b.limit("concurrent_jobs").await, 5);

    // Downgrade (canceled): keys refused, no new member, nothing deleted.
    b.subscription_event("evt_2", "customer.subscription.deleted", "canceled")
        .await;
    let p = problem(b.app.get(&search, &key).send().await.unwrap(), 403).await;
    assert!(p["detail"].as_str().unwrap().contains("API access"), "{p}");
    let res = b.app.get(&search, &b.admin).send().await.unwrap();
    assert_eq!(limit_header(&res), "50");
    let another = json!({ "email": "fourth@example.com", "role": "member" });
    let refused = b.admin_post(&invite, &another).await;
    assert!(refused.status().is_client_error(), "{}", refused.status());
    let members: i64 = sqlx::query_scalar("SELECT count(*) FROM memberships WHERE tenant_id = $1")
        .bind(tenant.0)
        .fetch_one(&b.app.store.pool)
        .await
        .unwrap();
    assert_eq!(members, 2, "members stay after a downgrade");
    assert_eq!(b.app.count("api_keys").await, 2, "keys stay, refused");
}
