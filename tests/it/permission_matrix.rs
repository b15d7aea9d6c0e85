//! Every route x every kind of caller: the status must be exactly what the
//! product's role/permission matrix says (2xx / 401 / 403 / 404).
//!
//! The route table below must list every operation of `/openapi.json`; the
//! test fails when a route is added without joining it.

use crate::harness::{TestApp, TestUser};
use bizcontacts_domain::access::{system_permissions, tenant_permissions};
use bizcontacts_domain::{PackageName, Permission, Role, SystemRole, TenantId};
use bizcontacts_fakes::highlevel::FakeHighLevel;
use bizcontacts_fakes::stripe::FakeStripe;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// What a route demands.
#[derive(Clone, Copy, Debug)]
enum Need {
    Public,
    Authenticated,
    Tenant(Permission),
    /// Either permission in the tenant.
    TenantAny(Permission, Permission),
    System(Permission),
}

#[derive(Clone, Copy, Debug)]
enum Route {
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    Login,
    Logout,
    Me,
    ListMembers,
    InviteMember,
    ListInvitations,
    RevokeInvitation,
    AcceptInvitation,
    ChangeRole,
    RemoveMember,
    ListKeys,
    CreateKey,
    RevokeKey,
    Usage,
    AdminTenants,
    AdminSetPackage,
    AdminAudit,
    ListJobs,
    SubmitJob,
    GetJob,
    CancelJob,
    AdminJobStats,
    AdminJobs,
    AdminRetryJob,
    AdminCancelJob,
    UploadCsv,
    ApiImport,
    ManualEntry,
    ListImports,
    GetImport,
    ImportRows,
    ImportErrors,
    ReviewImport,
    ListMatches,
    DecideMatches,
    GetContact,
    CorrectContact,
    SearchContacts,
    ContactFacets,
    SaveContacts,
    ListSaved,
    UnsaveContact,
    AdminQuarantine,
    AdminStartSweep,
    AdminGetSweep,
    CrmConnect,
    CrmCallback,
    CrmPrivateIntegration,
    CrmConnection,
    CrmDisconnect,
    HighLevelWebhook,
    CrmPush,
    CrmPushes,
    CrmPull,
    BillingCheckout,
    GetBilling,
    StripeWebhook,
    AdminRevokePackage,
    AdminReconcile,
    AdminSuspend,
    AdminUnsuspend,
    StartExport,
    GetExport,
    AdminDeleteTenant,
    AdminCancelDelete,
    AdminEraseContact,
    AdminWorkers,
    AdminSchedules,
}

const ROUTES: &[Route] = &[
    Route::Healthz,
    Route::Readyz,
    Route::Metrics,
    Route::OpenApi,
    Route::Login,
    Route::Logout,
    Route::Me,
    Route::ListMembers,
    Route::InviteMember,
    Route::ListInvitations,
    Route::RevokeInvitation,
    Route::AcceptInvitation,
    Route::ChangeRole,
    Route::RemoveMember,
    Route::ListKeys,
    Route::CreateKey,
    Route::RevokeKey,
    Route::Usage,
    Route::AdminTenants,
    Route::AdminSetPackage,
    Route::AdminAudit,
    Route::ListJobs,
    Route::SubmitJob,
    Route::GetJob,
    Route::CancelJob,
    Route::AdminJobStats,
    Route::AdminJobs,
    Route::AdminRetryJob,
    Route::AdminCancelJob,
    Route::UploadCsv,
    Route::ApiImport,
    Route::ManualEntry,
    Route::ListImports,
    Route::GetImport,
    Route::ImportRows,
    Route::ImportErrors,
    Route::ReviewImport,
    Route::ListMatches,
    Route::DecideMatches,
    Route::GetContact,
    Route::CorrectContact,
    Route::SearchContacts,
    Route::ContactFacets,
    Route::SaveContacts,
    Route::ListSaved,
    Route::UnsaveContact,
    Route::AdminQuarantine,
    Route::AdminStartSweep,
    Route::AdminGetSweep,
    Route::CrmConnect,
    Route::CrmCallback,
    Route::CrmPrivateIntegration,
    Route::CrmConnection,
    Route::CrmDisconnect,
    Route::HighLevelWebhook,
    Route::CrmPush,
    Route::CrmPushes,
    Route::CrmPull,
    Route::BillingCheckout,
    Route::GetBilling,
    Route::StripeWebhook,
    Route::AdminRevokePackage,
    Route::AdminReconcile,
    Route::AdminSuspend,
    Route::AdminUnsuspend,
    Route::StartExport,
    Route::GetExport,
    Route::AdminDeleteTenant,
    Route::AdminCancelDelete,
    Route::AdminEraseContact,
    Route::AdminWorkers,
    Route::AdminSchedules,
];

impl Route {
    /// (method, OpenAPI path template, requirement)
    fn spec(self) -> (Method, &'static str, Need) {
        use Permission as P;
        match self {
            Route::Healthz => (Method::GET, "/healthz", Need::Public),
            Route::Readyz => (Method::GET, "/readyz", Need::Public),
            Route::Metrics => (Method::GET, "/metrics", Need::Public),
            Route::OpenApi => (Method::GET, "/openapi.json", Need::Public),
            Route::Login => (Method::POST, "/v1/auth/login", Need::Public),
            Route::Logout => (Method::POST, "/v1/auth/logout", Need::Authenticated),
            Route::Me => (Method::GET, "/v1/me", Need::Authenticated),
            Route::ListMembers => (
                Method::GET,
                "/v1/tenants/{tenant_id}/members",
                Need::Tenant(P::UsersManage),
            ),
            Route::InviteMember => (
                Method::POST,
                "/v1/tenants/{tenant_id}/members",
                Need::Tenant(P::UsersManage),
            ),
            Route::ListInvitations => (
                Method::GET,
                "/v1/tenants/{tenant_id}/invitations",
                Need::Tenant(P::UsersManage),
            ),
            Route::RevokeInvitation => (
                Method::DELETE,
                "/v1/tenants/{tenant_id}/invitations/{invitation_id}",
                Need::Tenant(P::UsersManage),
            ),
            // The invitation's token is the credential (sent anonymously here).
            Route::AcceptInvitation => {
                (Method::POST, "/v1/invitations/{token}/accept", Need::Public)
            }
            Route::ChangeRole => (
                Method::PATCH,
                "/v1/tenants/{tenant_id}/members/{user_id}",
                Need::Tenant(P::UsersManage),
            ),
            Route::RemoveMember => (
                Method::DELETE,
                "/v1/tenants/{tenant_id}/members/{user_id}",
                Need::Tenant(P::UsersManage),
            ),
            Route::ListKeys => (
                Method::GET,
                "/v1/tenants/{tenant_id}/api-keys",
                Need::Tenant(P::KeysManage),
            ),
            Route::CreateKey => (
                Method::POST,
                "/v1/tenants/{tenant_id}/api-keys",
                Need::Tenant(P::KeysManage),
            ),
            Route::RevokeKey => (
                Method::DELETE,
                "/v1/tenants/{tenant_id}/api-keys/{key_id}",
                Need::Tenant(P::KeysManage),
            ),
            Route::Usage => (
                Method::GET,
                "/v1/tenants/{tenant_id}/usage",
                Need::Tenant(P::UsageRead),
            ),
            Route::AdminTenants => (
                Method::GET,
                "/v1/admin/tenants",
                Need::System(P::AdminMonitor),
            ),
            Route::AdminSetPackage => (
                Method::PUT,
                "/v1/admin/tenants/{tenant_id}/package",
                Need::System(P::AdminOperate),
            ),
            Route::AdminAudit => (
                Method::GET,
                "/v1/admin/audit",
                Need::System(P::AdminMonitor),
            ),
            Route::ListJobs => (
                Method::GET,
                "/v1/tenants/{tenant_id}/jobs",
                Need::Tenant(P::JobsRead),
            ),
            // The test kinds need jobs:read; real kinds their own permission.
            Route::SubmitJob => (
                Method::POST,
                "/v1/tenants/{tenant_id}/jobs",
                Need::Tenant(P::JobsRead),
            ),
            Route::GetJob => (
                Method::GET,
                "/v1/tenants/{tenant_id}/jobs/{job_id}",
                Need::Tenant(P::JobsRead),
            ),
            Route::CancelJob => (
                Method::POST,
                "/v1/tenants/{tenant_id}/jobs/{job_id}/cancel",
                Need::Tenant(P::JobsRead),
            ),
            Route::AdminJobStats => (
                Method::GET,
                "/v1/admin/jobs/stats",
                Need::System(P::AdminMonitor),
            ),
            Route::AdminJobs => (Method::GET, "/v1/admin/jobs", Need::System(P::AdminMonitor)),
            Route::AdminRetryJob => (
                Method::POST,
                "/v1/admin/jobs/{job_id}/retry",
                Need::System(P::AdminOperate),
            ),
            Route::AdminCancelJob => (
                Method::POST,
                "/v1/admin/jobs/{job_id}/cancel",
                Need::System(P::AdminOperate),
            ),
            Route::UploadCsv => (
                Method::POST,
                "/v1/tenants/{tenant_id}/imports/csv",
                Need::Tenant(P::ImportsWrite),
            ),
            Route::ApiImport => (
                Method::POST,
                "/v1/tenants/{tenant_id}/imports",
                Need::Tenant(P::ImportsWrite),
            ),
            Route::ManualEntry => (
                Method::POST,
                "/v1/tenants/{tenant_id}/imports/manual",
                Need::Tenant(P::ImportsWrite),
            ),
            Route::ListImports => (
                Method::GET,
                "/v1/tenants/{tenant_id}/imports",
                Need::TenantAny(P::ImportsWrite, P::ImportsReview),
            ),
            Route::GetImport => (
                Method::GET,
                "/v1/tenants/{tenant_id}/imports/{import_id}",
                Need::TenantAny(P::ImportsWrite, P::ImportsReview),
            ),
            Route::ImportRows => (
                Method::GET,
                "/v1/tenants/{tenant_id}/imports/{import_id}/rows",
                Need::TenantAny(P::ImportsWrite, P::ImportsReview),
            ),
            Route::ImportErrors => (
                Method::GET,
                "/v1/tenants/{tenant_id}/imports/{import_id}/errors.csv",
                Need::TenantAny(P::ImportsWrite, P::ImportsReview),
            ),
            Route::ReviewImport => (
                Method::POST,
                "/v1/tenants/{tenant_id}/imports/{import_id}/review",
                Need::Tenant(P::ImportsReview),
            ),
            Route::ListMatches => (
                Method::GET,
                "/v1/tenants/{tenant_id}/imports/{import_id}/matches",
                Need::TenantAny(P::ImportsWrite, P::ImportsReview),
            ),
            Route::DecideMatches => (
                Method::POST,
                "/v1/tenants/{tenant_id}/imports/{import_id}/matches",
                Need::Tenant(P::ImportsReview),
            ),
            Route::SearchContacts => (
                Method::GET,
                "/v1/tenants/{tenant_id}/contacts/search",
                Need::Tenant(P::ContactsSearch),
            ),
            Route::ContactFacets => (
                Method::GET,
                "/v1/tenants/{tenant_id}/contacts/facets",
                Need::Tenant(P::ContactsSearch),
            ),
            Route::SaveContacts => (
                Method::POST,
                "/v1/tenants/{tenant_id}/saved-contacts",
                Need::Tenant(P::ContactsSave),
            ),
            Route::ListSaved => (
                Method::GET,
                "/v1/tenants/{tenant_id}/saved-contacts",
                Need::Tenant(P::ContactsSave),
            ),
            Route::UnsaveContact => (
                Method::DELETE,
                "/v1/tenants/{tenant_id}/saved-contacts/{contact_id}",
                Need::Tenant(P::ContactsSave),
            ),
            Route::GetContact => (
                Method::GET,
                "/v1/tenants/{tenant_id}/contacts/{contact_id}",
                Need::Tenant(P::ContactsSearch),
            ),
            Route::CorrectContact => (
                Method::POST,
                "/v1/tenants/{tenant_id}/contacts/{contact_id}/corrections",
                Need::Tenant(P::ContactsSave),
            ),
            Route::AdminQuarantine => (
                Method::POST,
                "/v1/admin/imports/{import_id}/quarantine",
                Need::System(P::AdminQuarantine),
            ),
            Route::AdminStartSweep => (
                Method::POST,
                "/v1/admin/dedupe/sweep",
                Need::System(P::AdminOperate),
            ),
            Route::AdminGetSweep => (
                Method::GET,
                "/v1/admin/dedupe/sweeps/{job_id}",
                Need::System(P::AdminMonitor),
            ),
            Route::CrmConnect => (
                Method::POST,
                "/v1/tenants/{tenant_id}/crm/connect",
                Need::Tenant(P::CrmConnect),
            ),
            // Public: the state is the proof (422 here, with none).
            Route::CrmCallback => (Method::GET, "/v1/crm/oauth/callback", Need::Public),
            Route::CrmPrivateIntegration => (
                Method::PUT,
                "/v1/tenants/{tenant_id}/crm/private-integration",
                Need::Tenant(P::CrmConnect),
            ),
            Route::CrmConnection => (
                Method::GET,
                "/v1/tenants/{tenant_id}/crm/connection",
                Need::TenantAny(P::CrmSync, P::CrmConnect),
            ),
            Route::CrmDisconnect => (
                Method::DELETE,
                "/v1/tenants/{tenant_id}/crm/connection",
                Need::Tenant(P::CrmConnect),
            ),
            // Public: the signature is the proof (401 here, with none).
            Route::HighLevelWebhook => (Method::POST, "/v1/webhooks/highlevel", Need::Public),
            Route::StripeWebhook => (Method::POST, "/v1/webhooks/stripe", Need::Public),
            Route::BillingCheckout => (
                Method::POST,
                "/v1/tenants/{tenant_id}/billing/checkout",
                Need::Tenant(P::BillingManage),
            ),
            Route::GetBilling => (
                Method::GET,
                "/v1/tenants/{tenant_id}/billing",
                Need::Tenant(P::BillingManage),
            ),
            Route::AdminRevokePackage => (
                Method::DELETE,
                "/v1/admin/tenants/{tenant_id}/package",
                Need::System(P::AdminOperate),
            ),
            Route::AdminReconcile => (
                Method::POST,
                "/v1/admin/billing/reconcile",
                Need::System(P::AdminOperate),
            ),
            Route::AdminSchedules => (
                Method::GET,
                "/v1/admin/schedules",
                Need::System(P::AdminMonitor),
            ),
            Route::AdminWorkers => (
                Method::GET,
                "/v1/admin/workers",
                Need::System(P::AdminMonitor),
            ),
            Route::AdminEraseContact => (
                Method::POST,
                "/v1/admin/contacts/{contact_id}/erase",
                Need::System(P::AdminQuarantine),
            ),
            Route::AdminDeleteTenant => (
                Method::POST,
                "/v1/admin/tenants/{tenant_id}/delete",
                Need::System(P::AdminOperate),
            ),
            Route::AdminCancelDelete => (
                Method::POST,
                "/v1/admin/tenants/{tenant_id}/delete/cancel",
                Need::System(P::AdminOperate),
            ),
            Route::StartExport => (
                Method::POST,
                "/v1/tenants/{tenant_id}/exports",
                Need::Tenant(P::UsersManage),
            ),
            Route::GetExport => (
                Method::GET,
                "/v1/tenants/{tenant_id}/exports/{export_id}",
                Need::Tenant(P::UsersManage),
            ),
            Route::AdminSuspend => (
                Method::POST,
                "/v1/admin/tenants/{tenant_id}/suspend",
                Need::System(P::AdminOperate),
            ),
            Route::AdminUnsuspend => (
                Method::POST,
                "/v1/admin/tenants/{tenant_id}/unsuspend",
                Need::System(P::AdminOperate),
            ),
            Route::CrmPush => (
                Method::POST,
                "/v1/tenants/{tenant_id}/crm/push",
                Need::Tenant(P::CrmSync),
            ),
            Route::CrmPushes => (
                Method::GET,
                "/v1/tenants/{tenant_id}/crm/pushes",
                Need::Tenant(P::CrmSync),
            ),
            Route::CrmPull => (
                Method::POST,
                "/v1/tenants/{tenant_id}/crm/pull",
                Need::Tenant(P::CrmSync),
            ),
        }
    }
}

/// Who calls.
#[derive(Clone, Debug)]
enum Caller {
    Anonymous,
    Role(Role, TestUser),
    /// A key of an org_admin of the tenant carrying exactly one scope.
    Key(Permission, String),
    System(SystemRole, TestUser),
    /// A system-role key of a platform admin with only `admin:monitor`.
    SystemKey(String),
    ForeignAdmin(TestUser),
    ForeignKey(String),
}

impl Caller {
    fn token(&self) -> Option<&str> {
        match self {
            Caller::Anonymous => None,
            Caller::Role(_, u) | Caller::System(_, u) | Caller::ForeignAdmin(u) => Some(&u.token),
            Caller::Key(_, k) | Caller::SystemKey(k) | Caller::ForeignKey(k) => Some(k),
        }
    }

    fn is_key(&self) -> bool {
        matches!(
            self,
            Caller::Key(..) | Caller::SystemKey(_) | Caller::ForeignKey(_)
        )
    }

    /// The status the matrix promises, as a class: 200 means "any 2xx".
    fn expected(&self, need: Need) -> u16 {
        let ok_or_403 = |allowed: bool| if allowed { 200 } else { 403 };
        match (need, self) {
            (Need::Public, _) => 200,
            (_, Caller::Anonymous) => 401,
            (Need::Authenticated, _) => 200,
            (
                Need::Tenant(_) | Need::TenantAny(..),
                Caller::ForeignAdmin(_) | Caller::ForeignKey(_),
            ) => 404,
            (Need::TenantAny(a, b), Caller::Role(role, _)) => {
                ok_or_403(role.allows(a) || role.allows(b))
            }
            (Need::TenantAny(a, b), Caller::Key(scope, _)) => ok_or_403(*scope == a || *scope == b),
            (Need::TenantAny(a, b), Caller::System(sr, _)) => {
                let held = tenant_permissions(None, &[*sr]);
                if held.is_empty() {
                    404
                } else {
                    ok_or_403(held.contains(a) || held.contains(b))
                }
            }
            (Need::TenantAny(..), Caller::SystemKey(_)) => 403,
            (Need::Tenant(p), Caller::Role(role, _)) => ok_or_403(role.allows(p)),
            (Need::Tenant(p), Caller::Key(scope, _)) => ok_or_403(*scope == p),
            (Need::Tenant(p), Caller::System(sr, _)) => {
                let held = tenant_permissions(None, &[*sr]);
                if held.is_empty() {
                    404
                } else {
                    ok_or_403(held.contains(p))
                }
            }
            (Need::Tenant(_), Caller::SystemKey(_)) => 403,
            (Need::System(p), Caller::System(sr, _)) => {
                ok_or_403(system_permissions(&[*sr]).contains(p))
            }
            (Need::System(p), Caller::SystemKey(_)) => ok_or_403(p == Permission::AdminMonitor),
            (Need::System(_), _) => 403,
        }
    }
}

struct Ctx<'a> {
    app: &'a TestApp,
    tenant: TenantId,
    owner: TestUser,
}

/// The Private Integration key the matrix's fake HighLevel accepts.
const MATRIX_KEY: &str = "matrix-private-integration-key";

impl Ctx<'_> {
    /// The tenant connected to its CRM (by its owner, through the API).
    async fn connected(&self) {
        let res = self
            .app
            .client
            .put(self.app.url(&format!(
                "/v1/tenants/{}/crm/private-integration",
                self.tenant
            )))
            .bearer_auth(&self.owner.token)
            .json(&json!({ "token": MATRIX_KEY, "location_id": "loc-m" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }

    /// A job row of the tenant in the given status, written directly.
    async fn job(&self, tenant: Option<TenantId>, status: &str) -> uuid::Uuid {
        let id = uuid::Uuid::now_v7();
        sqlx::query(
            "INSERT INTO jobs (id, tenant_id, kind, status, max_attempts, finished_at)
             VALUES ($1, $2, 'test_noop', $3, 3, CASE WHEN $3 = 'dead' THEN now() END)",
        )
        .bind(id)
        .bind(tenant.map(|t| t.0))
        .bind(status)
        .execute(&self.app.store.pool)
        .await
        .unwrap();
        id
    }

    /// A staged manual entry of the tenant: (import id, row id).
    async fn staged_import(&self) -> (String, String) {
        let res: Value = self
            .app
            .post(
                &format!("/v1/tenants/{}/imports/manual", self.tenant),
                &self.owner.token,
            )
            .json(&json!({ "company_name": "Matrix Ltd", "email": "m@matrix.example" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            res["import_id"].as_str().unwrap().to_string(),
            res["row_id"].as_str().unwrap().to_string(),
        )
    }

    /// An open invitation made by the owner: (id, token).
    async fn invitation(&self, email: &str) -> (String, String) {
        let res: Value = self
            .app
            .post(
                &format!("/v1/tenants/{}/members", self.tenant),
                &self.owner.token,
            )
            .json(&json!({ "email": email, "role": "member" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            res["invitation_id"].as_str().unwrap().to_string(),
            res["token"].as_str().unwrap().to_string(),
        )
    }

    /// A corpus contact, written directly (the matrix runs no worker).
    async fn contact(&self) -> uuid::Uuid {
        let id = uuid::Uuid::now_v7();
        sqlx::query(
            "INSERT INTO contacts (id, company_name, country) VALUES ($1, 'Matrix Ltd', 'GB')",
        )
        .bind(id)
        .execute(&self.app.store.pool)
        .await
        .unwrap();
        id
    }

    /// Build a request for `route` as `caller`, creating whatever it acts on
    /// afresh so every call can succeed on its own.
    async fn request(
        &self,
        route: Route,
        caller: &Caller,
    ) -> (Method, String, Option<Value>, Option<String>) {
        let (method, template, _) = route.spec();
        let t = self.tenant;
        let mut token = caller.token().map(str::to_string);
        let fresh_email = || format!("m-{}@example.com", uuid::Uuid::new_v4().simple());
        let (path, body) = match route {
            Route::Login => {
                token = None;
                let u = self.app.user().await;
                (
                    template.to_string(),
                    Some(json!({ "email": u.email, "password": u.password })),
                )
            }
            Route::Logout => {
                // Logging out a shared caller's session would break its later calls.
                if let Caller::Role(_, u) | Caller::System(_, u) | Caller::ForeignAdmin(u) = caller
                {
                    token = Some(self.app.session(u.id).await);
                }
                (template.to_string(), None)
            }
            Route::InviteMember => (
                format!("/v1/tenants/{t}/members"),
                Some(json!({ "email": fresh_email(), "role": "member" })),
            ),
            Route::RevokeInvitation => {
                let (id, _) = self.invitation(&fresh_email()).await;
                (format!("/v1/tenants/{t}/invitations/{id}"), None)
            }
            Route::AcceptInvitation => {
                token = None;
                let (_, secret) = self.invitation(&fresh_email()).await;
                (
                    format!("/v1/invitations/{secret}/accept"),
                    Some(json!({ "password": "a long password" })),
                )
            }
            Route::ChangeRole | Route::RemoveMember => {
                let m = self.app.member(t, Role::Member).await;
                let body =
                    matches!(route, Route::ChangeRole).then(|| json!({ "role": "reviewer" }));
                (format!("/v1/tenants/{t}/members/{}", m.id), body)
            }
            Route::CreateKey => (
                format!("/v1/tenants/{t}/api-keys"),
                Some(json!({ "name": "matrix", "scopes": ["keys:manage"] })),
            ),
            Route::RevokeKey => {
                let _ = self
                    .app
                    .key(Some(t), self.owner.id, &[Permission::UsageRead])
                    .await;
                let id: uuid::Uuid = sqlx::query_scalar(
                    "SELECT id FROM api_keys WHERE tenant_id = $1 ORDER BY id DESC LIMIT 1",
                )
                .bind(t.0)
                .fetch_one(&self.app.store.pool)
                .await
                .unwrap();
                (format!("/v1/tenants/{t}/api-keys/{id}"), None)
            }
            Route::SubmitJob => (
                format!("/v1/tenants/{t}/jobs"),
                Some(json!({ "kind": "test_noop" })),
            ),
            Route::GetJob => (
                format!("/v1/tenants/{t}/jobs/{}", self.job(Some(t), "queued").await),
                None,
            ),
            Route::CancelJob => (
                format!(
                    "/v1/tenants/{t}/jobs/{}/cancel",
                    self.job(Some(t), "queued").await
                ),
                None,
            ),
            Route::AdminRetryJob => (
                format!("/v1/admin/jobs/{}/retry", self.job(Some(t), "dead").await),
                None,
            ),
            Route::AdminCancelJob => (
                format!(
                    "/v1/admin/jobs/{}/cancel",
                    self.job(Some(t), "queued").await
                ),
                None,
            ),
            Route::AdminSetPackage => (
                format!("/v1/admin/tenants/{t}/package"),
                Some(json!({ "package": "enterprise", "reason": "matrix" })),
            ),
            Route::UploadCsv => (
                format!("/v1/tenants/{t}/imports/csv"),
                Some(Value::String("company,email\nAcme,a@acme.example\n".into())),
            ),
            Route::ApiImport => (
                format!("/v1/tenants/{t}/imports"),
                Some(json!({ "rows": [{ "company_name": "Acme", "email": "a@acme.example" }] })),
            ),
            Route::ManualEntry => (
                format!("/v1/tenants/{t}/imports/manual"),
                Some(json!({ "company_name": "Acme", "email": "a@acme.example" })),
            ),
            Route::GetImport | Route::ImportRows | Route::ImportErrors => {
                let (import, _) = self.staged_import().await;
                (
                    template
                        .replace("{tenant_id}", &t.to_string())
                        .replace("{import_id}", &import),
                    None,
                )
            }
            Route::ReviewImport => {
                let (import, row) = self.staged_import().await;
                (
                    format!("/v1/tenants/{t}/imports/{import}/review"),
                    Some(json!({ "approve": [row] })),
                )
            }
            Route::ListMatches => {
                let (import, _) = self.staged_import().await;
                (format!("/v1/tenants/{t}/imports/{import}/matches"), None)
            }
            Route::DecideMatches => {
                let (import, row) = self.staged_import().await;
                let contact = self.contact().await;
                sqlx::query("INSERT INTO match_candidates (row_id, contact_id, score) VALUES ($1::uuid, $2, 4.5)")
                    .bind(&row)
                    .bind(contact)
                    .execute(&self.app.store.pool)
                    .await
                    .unwrap();
                (
                    format!("/v1/tenants/{t}/imports/{import}/matches"),
                    Some(
                        json!({ "decisions": [{ "row_id": row, "contact_id": contact, "decision": "different" }] }),
                    ),
                )
            }
            Route::GetContact => (
                format!("/v1/tenants/{t}/contacts/{}", self.contact().await),
                None,
            ),
            Route::SearchContacts => (format!("/v1/tenants/{t}/contacts/search?country=GB"), None),
            Route::ContactFacets => (format!("/v1/tenants/{t}/contacts/facets?by=country"), None),
            Route::SaveContacts => (
                format!("/v1/tenants/{t}/saved-contacts"),
                Some(json!({ "contact_ids": [self.contact().await] })),
            ),
            Route::UnsaveContact => {
                let contact = self.contact().await;
                sqlx::query(
                    "INSERT INTO saved_contacts (id, tenant_id, contact_id) VALUES ($1, $2, $3)",
                )
                .bind(uuid::Uuid::now_v7())
                .bind(t.0)
                .bind(contact)
                .execute(&self.app.store.pool)
                .await
                .unwrap();
                (format!("/v1/tenants/{t}/saved-contacts/{contact}"), None)
            }
            Route::CorrectContact => (
                format!(
                    "/v1/tenants/{t}/contacts/{}/corrections",
                    self.contact().await
                ),
                Some(json!({ "field": "city", "value": "Leeds", "note": "moved" })),
            ),
            Route::AdminQuarantine => {
                let (import, _) = self.staged_import().await;
                (
                    format!("/v1/admin/imports/{import}/quarantine"),
                    Some(json!({ "reason": "matrix" })),
                )
            }
            Route::AdminStartSweep => (template.to_string(), Some(json!({ "apply": false }))),
            Route::CrmConnect => (
                template.replace("{tenant_id}", &t.to_string()),
                Some(json!({})),
            ),
            Route::CrmPrivateIntegration => (
                template.replace("{tenant_id}", &t.to_string()),
                Some(json!({ "token": MATRIX_KEY, "location_id": "loc-m" })),
            ),
            Route::CrmConnection | Route::CrmDisconnect | Route::CrmPull => {
                self.connected().await;
                (template.replace("{tenant_id}", &t.to_string()), None)
            }
            Route::HighLevelWebhook => (template.to_string(), Some(json!({ "type": "INSTALL" }))),
            Route::StripeWebhook => (
                template.to_string(),
                Some(json!({ "id": "evt_m", "type": "invoice.paid" })),
            ),
            Route::BillingCheckout => (
                template.replace("{tenant_id}", &t.to_string()),
                Some(json!({ "package": "pro" })),
            ),
            // A contact of its own each time (an erased one stays erased).
            Route::AdminEraseContact => {
                let contact = self.contact().await;
                (
                    template.replace("{contact_id}", &contact.to_string()),
                    Some(json!({ "reason": "matrix" })),
                )
            }
            // A tenant of their own each time (scheduled for deletion, or to be).
            Route::AdminDeleteTenant | Route::AdminCancelDelete => {
                let fresh = self.app.tenant(PackageName::Pro).await;
                let name: String = sqlx::query_scalar("SELECT name FROM tenants WHERE id = $1")
                    .bind(fresh.0)
                    .fetch_one(&self.app.store.pool)
                    .await
                    .unwrap();
                let body = if matches!(route, Route::AdminCancelDelete) {
                    let job = self.job(None, "queued").await;
                    sqlx::query(
                        "UPDATE tenants SET delete_after = now() + interval '30 days', delete_job_id = $2
                         WHERE id = $1",
                    )
                    .bind(fresh.0)
                    .bind(job)
                    .execute(&self.app.store.pool)
                    .await
                    .unwrap();
                    json!({ "reason": "matrix" })
                } else {
                    json!({ "reason": "matrix", "confirm": name })
                };
                (
                    template.replace("{tenant_id}", &fresh.to_string()),
                    Some(body),
                )
            }
            Route::GetExport => {
                let id = uuid::Uuid::now_v7();
                sqlx::query(
                    "INSERT INTO exports (id, tenant_id, expires_at) VALUES ($1, $2, now() + interval '1 day')",
                )
                .bind(id)
                .bind(t.0)
                .execute(&self.app.store.pool)
                .await
                .unwrap();
                (
                    template
                        .replace("{tenant_id}", &t.to_string())
                        .replace("{export_id}", &id.to_string()),
                    None,
                )
            }
            // A tenant of their own each time: the matrix's tenant must stay active.
            Route::AdminSuspend | Route::AdminUnsuspend => {
                let fresh = self.app.tenant(PackageName::Pro).await;
                if matches!(route, Route::AdminUnsuspend) {
                    sqlx::query("UPDATE tenants SET status = 'suspended' WHERE id = $1")
                        .bind(fresh.0)
                        .execute(&self.app.store.pool)
                        .await
                        .unwrap();
                }
                (
                    template.replace("{tenant_id}", &fresh.to_string()),
                    Some(json!({ "reason": "matrix" })),
                )
            }
            Route::AdminRevokePackage => {
                // A manual activation in force, on a tenant of its own (ending
                // it leaves that tenant free).
                let fresh = self.app.tenant(PackageName::Enterprise).await;
                sqlx::query(
                    "INSERT INTO tenant_billing (tenant_id, source, manual_package, manual_reason)
                     VALUES ($1, 'manual', 'enterprise', 'matrix')",
                )
                .bind(fresh.0)
                .execute(&self.app.store.pool)
                .await
                .unwrap();
                (
                    template.replace("{tenant_id}", &fresh.to_string()),
                    Some(json!({ "reason": "matrix" })),
                )
            }
            Route::CrmPush => {
                self.connected().await;
                let contact = self.contact().await;
                sqlx::query(
                    "INSERT INTO saved_contacts (id, tenant_id, contact_id) VALUES ($1, $2, $3)",
                )
                .bind(uuid::Uuid::now_v7())
                .bind(t.0)
                .bind(contact)
                .execute(&self.app.store.pool)
                .await
                .unwrap();
                (
                    template.replace("{tenant_id}", &t.to_string()),
                    Some(json!({ "contact_ids": [contact] })),
                )
            }
            Route::AdminGetSweep => {
                let job = self.job(None, "succeeded").await;
                sqlx::query("INSERT INTO sweeps (job_id, apply) VALUES ($1, false)")
                    .bind(job)
                    .execute(&self.app.store.pool)
                    .await
                    .unwrap();
                (format!("/v1/admin/dedupe/sweeps/{job}"), None)
            }
            _ => (template.replace("{tenant_id}", &t.to_string()), None),
        };
        (method, path, body, token)
    }
}

#[tokio::test]
async fn every_route_answers_every_caller_as_the_matrix_says() {
    let fake = FakeHighLevel::start().await;
    fake.add_location("loc-m", "Matrix Location");
    fake.private_key(MATRIX_KEY, "loc-m");
    let stripe = FakeStripe::start(crate::billing::SECRET_KEY, &["price_m"]).await;
    let app = TestApp::spawn_with(crate::harness::TestDb::new().await, |s| {
        s.highlevel.api_base_url = fake.base.clone();
        s.highlevel.client_id = "matrix-client".into();
        s.stripe.api_base_url = stripe.base.clone();
        s.stripe.secret_key = crate::billing::SECRET_KEY.to_string().into();
        s.stripe.webhook_secret = vec!["whsec_matrix".to_string().into()];
        s.stripe.prices.pro = "price_m".into();
    })
    .await;
    let tenant = app.tenant(PackageName::Enterprise).await;
    let owner = app.member(tenant, Role::OrgAdmin).await;
    let foreign_tenant = app.tenant(PackageName::Enterprise).await;
    let foreign_admin = app.member(foreign_tenant, Role::OrgAdmin).await;

    let mut callers = vec![Caller::Anonymous];
    for role in Role::ALL {
        callers.push(Caller::Role(*role, app.member(tenant, *role).await));
    }
    for scope in Permission::TENANT {
        callers.push(Caller::Key(
            *scope,
            app.key(Some(tenant), owner.id, &[*scope]).await,
        ));
    }
    for sr in SystemRole::ALL {
        callers.push(Caller::System(*sr, app.system_user(*sr).await));
    }
    let operator = app.system_user(SystemRole::PlatformAdmin).await;
    callers.push(Caller::SystemKey(
        app.key(None, operator.id, &[Permission::AdminMonitor])
            .await,
    ));
    callers.push(Caller::ForeignKey(
        app.key(Some(foreign_tenant), foreign_admin.id, Permission::TENANT)
            .await,
    ));
    callers.push(Caller::ForeignAdmin(foreign_admin));

    let ctx = Ctx {
        app: &app,
        tenant,
        owner,
    };
    let mut failures = Vec::new();
    let mut checked = 0;
    for route in ROUTES {
        let (_, _, need) = route.spec();
        for caller in &callers {
            let (method, path, body, token) = ctx.request(*route, caller).await;
            let mut req = app.client.request(method.clone(), app.url(&path));
            if let Some(t) = &token {
                req = req.bearer_auth(t);
            }
            req = match &body {
                // A CSV upload is the one body that is not JSON.
                Some(Value::String(csv)) => {
                    req.header("content-type", "text/csv").body(csv.clone())
                }
                Some(b) => req.json(b),
                None => req,
            };
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let mut expected = caller.expected(need);
            // Logout is for sessions; a key gets a clear 400 instead.
            if matches!(route, Route::Logout) && caller.is_key() {
                expected = 400;
            }
            // Public routes proven otherwise: no state, no signature.
            match route {
                Route::CrmCallback => expected = 422,
                Route::HighLevelWebhook | Route::StripeWebhook => expected = 401,
                _ => {}
            }
            // A key of the one scope users:manage holds none of a role's
            // permissions, so it can grant, change or remove no role.
            if matches!(
                route,
                Route::InviteMember | Route::ChangeRole | Route::RemoveMember
            ) && matches!(caller, Caller::Key(..))
                && expected == 200
            {
                expected = 403;
            }
            let ok = if expected == 200 {
                (200..300).contains(&status)
            } else {
                status == expected
            };
            if !ok {
                let text = res.text().await.unwrap_or_default();
                failures.push(format!(
                    "{method} {path} as {caller:?}: expected {expected}, got {status}: {text}"
                ));
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn the_matrix_covers_every_documented_route() {
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
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                documented.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    documented.insert("GET /openapi.json".into());
    let covered: BTreeSet<String> = ROUTES
        .iter()
        .map(|r| {
            let (m, p, _) = r.spec();
            format!("{m} {p}")
        })
        .collect();
    assert_eq!(
        documented, covered,
        "routes missing from the matrix (or stale in it)"
    );
}
