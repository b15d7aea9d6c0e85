//! Webhooks from HighLevel: verified, recorded once, answered fast.
//!
//! The signature is checked over the raw bytes before anything is parsed
//! (`x-wh-signature` RSA-SHA256 or `x-ghl-signature` Ed25519, keys from
//! config); a delivery older than five minutes, or dated in the future past
//! a small clock skew, is refused; each `webhookId` takes effect once (its
//! row and the effect commit together; a replay is acknowledged with 200
//! and changes nothing). Effects are small writes: INSTALL notes the
//! Location's company on its connection, UNINSTALL disconnects (tokens
//! destroyed), Contact* events are recorded, and a create or update starts
//! a pull a minute later unless one is already waiting (one per burst);
//! for a suspended tenant they are recorded and start nothing.

use crate::error::{ApiError, Problem};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use bizcontacts_domain::locks::{self, AdvisoryLock};
use bizcontacts_highlevel::webhook::{Event, WebhookError};
use bizcontacts_jobs::{CrmPullArgs, DEBOUNCE};
use bizcontacts_queue::args::JobArgs;
use bizcontacts_queue::ledger::Pending;
use bizcontacts_store::audit::{self, Actor, NewEvent};
use bizcontacts_store::crm::{self, Status};
use bizcontacts_store::tenants::{self, TenantStatus};
use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

/// Oldest delivery accepted.
const MAX_AGE: chrono::Duration = chrono::Duration::minutes(5);
/// How far ahead of our clock a delivery's timestamp may be.
const MAX_SKEW: chrono::Duration = chrono::Duration::seconds(60);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(highlevel))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Ack {
    /// `processed`, or `duplicate` for a webhookId seen before.
    status: &'static str,
}

/// A HighLevel webhook delivery (no bearer auth: the signature is the proof).
#[utoipa::path(post, path = "/v1/webhooks/highlevel", tag = "webhooks",
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 200, body = Ack),
        (status = 400, body = Problem, description = "not a HighLevel event"),
        (status = 401, body = Problem, description = "missing or bad signature, or a stale or future timestamp")))]
#[tracing::instrument(skip_all)]
pub async fn highlevel(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Ack>, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    state
        .webhooks
        .verify(header("x-wh-signature"), header("x-ghl-signature"), &body)
        .map_err(|e| match e {
            WebhookError::Unsigned => ApiError::Unauthorized(
                "a HighLevel webhook must carry x-wh-signature or x-ghl-signature".into(),
            ),
            _ => ApiError::Unauthorized("the webhook signature does not match its body".into()),
        })?;
    let event = Event::parse(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let now = Utc::now();
    if event.timestamp < now - MAX_AGE {
        return Err(ApiError::Unauthorized(
            "the webhook's timestamp is more than 5 minutes old".into(),
        ));
    }
    if event.timestamp > now + MAX_SKEW {
        return Err(ApiError::Unauthorized(
            "the webhook's timestamp is in the future".into(),
        ));
    }
    let mut tx = state.store.pool.begin().await?;
    let location = event.location_id.as_deref();
    if !crm::first_delivery(&mut *tx, &event.webhook_id, &event.kind, location).await? {
        return Ok(Json(Ack {
            status: "duplicate",
        }));
    }
    let pulls = match location {
        Some(location) => apply(&state, &mut tx, &event, location, &body).await?,
        None => Vec::new(),
    };
    tx.commit().await?;
    for pending in pulls {
        state.ledger.push(pending).await;
    }
    tracing::info!(kind = %event.kind, webhook_id = %event.webhook_id, "HighLevel webhook processed");
    Ok(Json(Ack {
        status: "processed",
    }))
}

/// The event's effect; returns the pulls it started, to push after commit.
async fn apply(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    event: &Event,
    location: &str,
    body: &[u8],
) -> Result<Vec<Pending>, ApiError> {
    let mut pulls = Vec::new();
    let audit = |tenant, action, details| NewEvent {
        tenant_id: Some(tenant),
        actor: Actor::system(),
        action,
        target_type: Some("crm_connection"),
        target_id: Some(location.to_string()),
        details,
        request_id: None,
    };
    let tenants = crm::tenants_of_location(&mut *tx, location).await?;
    match event.kind.as_str() {
        "INSTALL" => {
            crm::installed(&mut *tx, location, event.company_id.as_deref()).await?;
            for (tenant, _) in tenants.iter().filter(|(_, s)| *s != Status::Disconnected) {
                let details = json!({ "location_id": location, "company_id": event.company_id });
                audit::record(&mut *tx, audit(*tenant, "crm.installed", details)).await?;
            }
        }
        "UNINSTALL" => {
            for (tenant, _) in &tenants {
                if crm::disconnect(&mut *tx, *tenant, "the app was uninstalled in HighLevel")
                    .await?
                {
                    let details = json!({ "location_id": location });
                    audit::record(&mut *tx, audit(*tenant, "crm.uninstalled", details)).await?;
                }
            }
        }
        kind @ ("ContactCreate" | "ContactUpdate" | "ContactDelete") => {
            let Some(contact) = event.id.as_deref() else {
                return Err(ApiError::BadRequest(format!(
                    "a {kind} event names no contact id"
                )));
            };
            let payload: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
            for (tenant, _) in tenants.iter().filter(|(_, s)| *s == Status::Connected) {
                crm::record_contact_event(&mut *tx, *tenant, location, kind, contact, &payload)
                    .await?;
                // A suspended tenant's events are recorded and start no work.
                let suspended =
                    tenants::get(&mut *tx, *tenant).await?.status == TenantStatus::Suspended;
                if kind != "ContactDelete" && !suspended {
                    pulls.extend(debounced_pull(state, tx, *tenant).await?);
                }
            }
        }
        // Other events are acknowledged; we subscribe to no more.
        _ => {}
    }
    Ok(pulls)
}

/// A pull [`DEBOUNCE`] from now, unless one is already waiting to start:
/// a burst of contact events for a Location becomes one pull. Serialized
/// per tenant, so concurrent deliveries agree.
async fn debounced_pull(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    tenant: bizcontacts_domain::TenantId,
) -> Result<Option<Pending>, ApiError> {
    sqlx::query(locks::SQL)
        .bind(AdvisoryLock::TenantPullDebounce.class())
        .bind(tenant.0.to_string())
        .execute(&mut *tx)
        .await?;
    if crm::pull_pending(&mut *tx, tenant).await? {
        return Ok(None);
    }
    let due = Utc::now() + chrono::Duration::from_std(DEBOUNCE).expect("a minute");
    let job = CrmPullArgs::default().job().tenant(tenant).after(due);
    let (_, pending) = state
        .ledger
        .enqueue(tx, job)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(Some(pending))
}
