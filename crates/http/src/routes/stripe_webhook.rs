//! Webhooks from Stripe: verified over the raw body first, taken once,
//! applied from Stripe's current state.
//!
//! - The `Stripe-Signature` check (`bizcontacts_billing::signature`) runs
//!   before anything parses the body: 401 for a missing, malformed, stale,
//!   future or unmatched signature.
//! - Each event id takes effect once: its `stripe_events` row and its
//!   effect commit together, so a redelivery, also one arriving at the same
//!   moment (it waits on the first's key), is a 200 with no second effect.
//! - Order never matters: an event only says which subscription changed;
//!   its current state is read from Stripe (`GET /v1/subscriptions/{id}`,
//!   with no database connection held) and applied under the tenant's
//!   billing lock, where a read that started before the stored one is
//!   ignored. A late `customer.subscription.created` after a `deleted`
//!   reads the subscription as canceled: no rollback.
//! - Stripe unreachable: 503, and Stripe delivers again later (it retries
//!   for days); nothing is recorded.
//! - Handled: `checkout.session.completed` (links the customer to the
//!   tenant named by `client_reference_id`), `customer.subscription.*`,
//!   `invoice.paid` / `invoice.payment_succeeded` / `invoice.payment_failed`.
//!   Other types: 200, recorded, no effect.

use crate::error::{ApiError, Problem};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use bizcontacts_billing::signature::{self, SignatureError};
use bizcontacts_billing::types::{Event, Subscription};
use bizcontacts_billing::{sync, Cause, StripeError};
use bizcontacts_domain::TenantId;
use bizcontacts_store::audit::Actor;
use bizcontacts_store::{billing, tenants, StoreError};
use chrono::{TimeZone, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stripe))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct StripeAck {
    /// `processed`, `ignored` (a type we do not act on, or about no tenant
    /// of ours), or `duplicate` (this event id was taken before).
    status: &'static str,
}

/// What an event is about, read from its object.
#[derive(Default)]
struct About {
    /// Our tenant id, where the object carries it (checkout's
    /// `client_reference_id`, or `tenant_id` metadata).
    tenant: Option<TenantId>,
    customer: Option<String>,
    subscription: Option<String>,
    /// Checkout completed: the customer becomes the tenant's.
    links_customer: bool,
}

fn text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

fn tenant_id(v: &Value) -> Option<TenantId> {
    v.as_str().and_then(|s| s.parse().ok()).map(TenantId)
}

impl About {
    /// None for event types billing does not act on.
    fn of(event: &Event) -> Option<About> {
        let o = &event.data.object;
        let kind = event.kind.as_str();
        Some(match kind {
            "checkout.session.completed" => About {
                tenant: tenant_id(&o["client_reference_id"])
                    .or_else(|| tenant_id(&o["metadata"]["tenant_id"])),
                customer: text(&o["customer"]),
                subscription: text(&o["subscription"]),
                links_customer: true,
            },
            _ if kind.starts_with("customer.subscription.") => About {
                tenant: tenant_id(&o["metadata"]["tenant_id"]),
                customer: text(&o["customer"]),
                subscription: text(&o["id"]),
                links_customer: false,
            },
            "invoice.paid" | "invoice.payment_succeeded" | "invoice.payment_failed" => About {
                tenant: None,
                customer: text(&o["customer"]),
                // Where API versions from 2025-03-31 keep it, and before.
                subscription: text(&o["parent"]["subscription_details"]["subscription"])
                    .or_else(|| text(&o["subscription"])),
                links_customer: false,
            },
            _ => return None,
        })
    }
}

/// A Stripe webhook delivery (no bearer auth: the signature is the proof).
#[utoipa::path(post, path = "/v1/webhooks/stripe", tag = "webhooks",
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 200, body = StripeAck),
        (status = 400, body = Problem, description = "not a Stripe event"),
        (status = 401, body = Problem, description = "missing, bad, stale or future signature"),
        (status = 503, body = Problem, description = "Stripe could not be read; it delivers again")))]
#[tracing::instrument(skip_all)]
pub async fn stripe(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<StripeAck>, ApiError> {
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    signature::verify(
        header,
        &body,
        &state.billing.webhook_secrets,
        Utc::now().timestamp(),
    )
    .map_err(|e| match e {
        SignatureError::NotConfigured => ApiError::Unavailable(
            "Stripe webhooks are not configured (stripe.webhook_secret)".into(),
        ),
        other => ApiError::Unauthorized(other.to_string()),
    })?;
    let event: Event = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("not a Stripe event: {e}")))?;
    let created = Utc
        .timestamp_opt(event.created, 0)
        .single()
        .ok_or_else(|| ApiError::BadRequest("the event's created time is out of range".into()))?;
    let db = &state.store.pool;
    if billing::event_seen(db, &event.id).await? {
        return Ok(Json(StripeAck {
            status: "duplicate",
        }));
    }
    let about = About::of(&event);
    // Stripe's current state, read before a connection is taken.
    let read_at = Utc::now();
    let current = match about.as_ref().and_then(|a| a.subscription.as_deref()) {
        Some(id) => current_subscription(&state, id).await?,
        None => None,
    };
    let tenant = match &about {
        Some(a) => tenant_of(db, a, current.as_ref()).await?,
        None => None,
    };
    let outcome = match (&about, tenant) {
        (None, _) => "ignored",
        (Some(_), None) => "unknown_customer",
        (Some(_), Some(_)) => "processed",
    };
    let mut tx = db.begin().await?;
    if !billing::record_event(&mut tx, &event.id, &event.kind, created, tenant, outcome).await? {
        return Ok(Json(StripeAck {
            status: "duplicate",
        }));
    }
    if let (Some(about), Some(tenant)) = (&about, tenant) {
        let via = format!("webhook:{}", event.kind);
        let cause = Cause {
            actor: Actor::system(),
            request_id: None,
            via: &via,
        };
        if let (true, Some(customer)) = (about.links_customer, &about.customer) {
            billing::link_customer(&mut tx, tenant, customer).await?;
        }
        if let Some(sub) = &current {
            let b = &state.billing;
            sync::apply_subscription(&mut tx, &b.prices, b.grace, tenant, sub, read_at, cause)
                .await
                .map_err(|e| ApiError::Internal(e.into()))?;
        }
    }
    tx.commit().await?;
    tracing::info!(kind = %event.kind, event_id = %event.id, outcome, "Stripe webhook taken");
    Ok(Json(StripeAck {
        status: if outcome == "processed" {
            "processed"
        } else {
            "ignored"
        },
    }))
}

/// The subscription as Stripe has it now; None when Stripe does not know
/// it (another account's, or test data). Unreachable: 503, so Stripe
/// delivers the event again.
async fn current_subscription(
    state: &AppState,
    id: &str,
) -> Result<Option<Subscription>, ApiError> {
    match state.billing.stripe.subscription(id).await {
        Ok(sub) => Ok(Some(sub)),
        Err(StripeError::Status { status: 404, .. }) => Ok(None),
        Err(e) => {
            tracing::warn!(error = %e, "reading a subscription for a Stripe webhook failed");
            Err(ApiError::Unavailable(
                "Stripe could not be read to apply this event; deliver it again later".into(),
            ))
        }
    }
}

/// Our tenant the event is about: the one it names (if it exists), else the
/// subscription's metadata, else the customer's tenant.
async fn tenant_of(
    db: &sqlx::PgPool,
    about: &About,
    current: Option<&Subscription>,
) -> Result<Option<TenantId>, ApiError> {
    let named = about.tenant.or_else(|| {
        current
            .and_then(|s| s.metadata.get("tenant_id"))
            .and_then(|t| t.parse().ok())
            .map(TenantId)
    });
    if let Some(t) = named {
        match tenants::get(db, t).await {
            Ok(t) => return Ok(Some(t.id)),
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let customer = about
        .customer
        .as_deref()
        .or(current.map(|s| s.customer.as_str()));
    match customer {
        Some(c) => Ok(billing::tenant_of_customer(db, c).await?),
        None => Ok(None),
    }
}
