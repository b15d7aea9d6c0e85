//! Routes, one module per resource; each exposes `router()`.

use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;

pub mod admin;
pub mod admin_corpus;
pub mod admin_erasure;
pub mod admin_jobs;
pub mod admin_schedules;
pub mod admin_tenants;
pub mod api_keys;
pub mod billing;
pub mod contacts;
pub mod crm;
pub mod crm_sync;
pub mod exports;
pub mod health;
pub mod import_matches;
pub mod import_review;
pub mod imports;
pub mod invitations;
pub mod jobs;
pub mod members;
pub mod saved;
pub mod search;
pub mod session;
pub mod stripe_webhook;
pub mod usage;
pub mod webhooks;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(health::router())
        .merge(session::router())
        .merge(members::router())
        .merge(invitations::router())
        .merge(api_keys::router())
        .merge(usage::router())
        .merge(admin::router())
        .merge(admin_tenants::router())
        .merge(jobs::router())
        .merge(admin_jobs::router())
        .merge(admin_schedules::router())
        .merge(imports::router())
        .merge(import_review::router())
        .merge(import_matches::router())
        .merge(contacts::router())
        .merge(search::router())
        .merge(saved::router())
        .merge(crm::router())
        .merge(crm_sync::router())
        .merge(webhooks::router())
        .merge(billing::router())
        .merge(exports::router())
        .merge(stripe_webhook::router())
        .merge(admin_corpus::router())
        .merge(admin_erasure::router())
}
