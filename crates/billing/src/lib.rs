//! Billing: paid packages through Stripe, manual activation by platform
//! admins, and nothing else (terms: "Paid plans and billing features are
//! activated only through supported checkout, verified webhook events, or
//! approved manual administration").
//!
//! - [`stripe`]: the client (Checkout Sessions, subscriptions), [`types`]
//!   its objects.
//! - [`signature`]: the `Stripe-Signature` check webhooks pass first.
//! - [`policy`]: which package a tenant's billing state gives (pure).
//! - [`sync`]: applying a subscription, a manual activation or a passed
//!   deadline to a tenant, under its billing row's lock, audited.
//! - [`Billing`]: what the intake and the `billing_reconcile` job hold.
//!
//! Why not `async-stripe`: it generates types for the whole Stripe API
//! (minutes of build on a two-core CI machine) and brings its own HTTP
//! stack, for three calls whose fields fit on a page; and its webhook
//! helper takes one secret, while ours must roll. `hmac` and `sha2`
//! (RustCrypto, already in the tree) do the signature, compared in
//! constant time.

pub mod policy;
pub mod signature;
pub mod stripe;
pub mod sync;
pub mod types;

use bizcontacts_config::{BillingSettings, StripeSettings};
use secrecy::SecretString;
use std::time::Duration;
pub use stripe::{CheckoutRequest, Stripe, StripeError};
pub use sync::{Applied, Cause, Prices};

/// One error type for the layer.
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error(transparent)]
    Store(#[from] bizcontacts_store::StoreError),
    #[error(transparent)]
    Stripe(#[from] StripeError),
}

impl From<sqlx::Error> for BillingError {
    fn from(e: sqlx::Error) -> Self {
        BillingError::Store(e.into())
    }
}

/// Billing's settings and client; cheap to clone.
#[derive(Clone)]
pub struct Billing {
    pub stripe: Stripe,
    pub prices: Prices,
    /// `stripe.webhook_secret`: any of them may sign a webhook.
    pub webhook_secrets: Vec<SecretString>,
    pub grace: chrono::Duration,
    pub success_url: String,
    pub cancel_url: String,
}

impl Billing {
    pub fn new(stripe: &StripeSettings, billing: &BillingSettings) -> Self {
        use secrecy::ExposeSecret;
        let key = stripe.secret_key.expose_secret();
        Billing {
            stripe: Stripe::new(
                &stripe.api_base_url,
                (!key.is_empty()).then(|| stripe.secret_key.clone()),
                Duration::from_secs(stripe.timeout_secs),
            ),
            prices: Prices {
                starter: stripe.prices.starter.clone(),
                pro: stripe.prices.pro.clone(),
                enterprise: stripe.prices.enterprise.clone(),
            },
            webhook_secrets: stripe.webhook_secret.clone(),
            grace: chrono::Duration::days(i64::from(billing.grace_days)),
            success_url: billing.success_url.clone(),
            cancel_url: billing.cancel_url.clone(),
        }
    }
}
