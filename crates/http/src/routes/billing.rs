//! A tenant's billing: start a Stripe Checkout for a paid package, and see
//! where the package comes from. Packages change only through a verified
//! Stripe webhook, billing_reconcile, or a platform admin
//! (`routes/admin.rs`); nothing here changes one.

use crate::auth::{perm, TenantScope};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, RequestId};
use crate::idempotency::hash_parts;
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use bizcontacts_billing::CheckoutRequest;
use bizcontacts_domain::PackageName;
use bizcontacts_store::{audit, billing};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(checkout))
        .routes(routes!(get_billing))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutBody {
    /// starter, pro or enterprise.
    package: PackageName,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CheckoutView {
    /// Stripe's hosted payment page; send the browser there.
    checkout_url: String,
}

/// Start paying for a package: a Stripe Checkout Session in subscription
/// mode. The package changes once Stripe confirms the payment (webhook).
/// An `Idempotency-Key` header makes a retried click the same session.
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/billing/checkout", tag = "billing", security(("bearer" = [])),
    params(("tenant_id" = uuid::Uuid, Path)), request_body = CheckoutBody,
    responses((status = 200, body = CheckoutView), (status = 403, body = Problem),
        (status = 422, body = Problem, description = "a package not sold"),
        (status = 503, body = Problem, description = "Stripe is not configured or did not answer")))]
async fn checkout(
    State(state): State<AppState>,
    scope: TenantScope<perm::BillingManage>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    ApiJson(req): ApiJson<CheckoutBody>,
) -> Result<Json<CheckoutView>, ApiError> {
    let b = &state.billing;
    let price = b.prices.of(req.package).ok_or_else(|| {
        ApiError::field(
            "package",
            match req.package {
                PackageName::Free => "free needs no checkout".to_string(),
                p => format!("{p} is not sold here (no price configured)"),
            },
        )
    })?;
    if !b.stripe.configured() {
        return Err(ApiError::Unavailable(
            "billing is not configured on this platform (stripe.secret_key)".into(),
        ));
    }
    let tenant = scope.tenant_id();
    // Read with the pool, released before Stripe is called.
    let customer = billing::get(&state.store.pool, tenant)
        .await?
        .and_then(|r| r.stripe_customer_id);
    // The same tenant, package and client key: the same session (Stripe
    // keeps idempotency keys for 24 h); without a client key, one per request.
    let client_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let key: String = hash_parts([
        tenant.to_string().as_bytes(),
        req.package.as_str().as_bytes(),
        client_key.as_bytes(),
    ])
    .iter()
    .map(|b| format!("{b:02x}"))
    .collect();
    let tenant_id = tenant.to_string();
    let session = b
        .stripe
        .create_checkout_session(
            &CheckoutRequest {
                price,
                tenant_id: &tenant_id,
                package: req.package.as_str(),
                customer: customer.as_deref(),
                success_url: &b.success_url,
                cancel_url: &b.cancel_url,
            },
            &format!("checkout-{key}"),
        )
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "Stripe checkout failed");
            ApiError::Unavailable(
                "the payment provider did not accept the checkout; try again later".into(),
            )
        })?;
    let url = session.url.ok_or_else(|| {
        ApiError::Unavailable("the payment provider returned no checkout page; try again".into())
    })?;
    audit::record(
        &state.store.pool,
        scope.principal.event(
            Some(tenant),
            "billing.checkout_started",
            ("checkout_session", session.id),
            json!({ "package": req.package }),
            request_id.as_deref(),
        ),
    )
    .await?;
    Ok(Json(CheckoutView { checkout_url: url }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BillingView {
    package: PackageName,
    /// Where the package comes from: checkout, manual or default.
    source: String,
    /// Stripe's status of the subscription (active, past_due, canceled, ...).
    subscription_status: Option<String>,
    current_period_end: Option<DateTime<Utc>>,
    /// After a failed payment: the package holds until then, then free.
    grace_until: Option<DateTime<Utc>>,
    /// A manual activation's end (null with source manual: until revoked).
    manual_until: Option<DateTime<Utc>>,
}

/// The tenant's package, where it comes from, and its subscription.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/billing", tag = "billing", security(("bearer" = [])),
    params(("tenant_id" = uuid::Uuid, Path)),
    responses((status = 200, body = BillingView), (status = 403, body = Problem)))]
async fn get_billing(
    State(state): State<AppState>,
    scope: TenantScope<perm::BillingManage>,
) -> Result<Json<BillingView>, ApiError> {
    let row = billing::get(&state.store.pool, scope.tenant_id()).await?;
    let package = scope.tenant.package;
    Ok(Json(match row {
        Some(r) => BillingView {
            package,
            source: r.source,
            subscription_status: r.subscription_status,
            current_period_end: r.current_period_end,
            grace_until: r.grace_until,
            manual_until: r.manual_until.filter(|_| r.manual_package.is_some()),
        },
        // Never linked to Stripe: free by default, or set by an operator.
        None => BillingView {
            package,
            source: if package == PackageName::Free {
                "default"
            } else {
                "manual"
            }
            .into(),
            subscription_status: None,
            current_period_end: None,
            grace_until: None,
            manual_until: None,
        },
    }))
}
