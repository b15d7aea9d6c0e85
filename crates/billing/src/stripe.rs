//! The Stripe client: Checkout Sessions and subscriptions, typed.
//!
//! Form-encoded requests as Stripe's API takes them, the secret key as a
//! Bearer token (never in a URL, an error or a log line), an
//! `Idempotency-Key` on every create, a time bound on every call, no
//! redirects followed, and the base URL from config (`stripe.api_base_url`)
//! so tests and outside checks point it at a fake.

use crate::types::{self, CheckoutSession, List, Subscription};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// What went wrong with a call; never holds the secret key.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// Stripe answered with an error status (its `error.message` kept).
    #[error("Stripe {call}: {status}: {message}")]
    Status {
        call: &'static str,
        status: u16,
        message: String,
    },
    /// No answer (connection, timeout) or an answer that is not the object.
    #[error("Stripe {call}: {reason}")]
    Transport { call: &'static str, reason: String },
    /// No secret key configured (`stripe.secret_key`).
    #[error("Stripe is not configured (stripe.secret_key)")]
    NotConfigured,
}

/// The client; cheap to clone.
#[derive(Clone)]
pub struct Stripe {
    http: reqwest::Client,
    base: String,
    secret_key: Option<SecretString>,
}

/// A Checkout Session for a subscription to one price.
pub struct CheckoutRequest<'a> {
    pub price: &'a str,
    /// Our tenant id: `client_reference_id`, and metadata on the session and
    /// on the subscription it creates (so a subscription names its tenant).
    pub tenant_id: &'a str,
    pub package: &'a str,
    /// The tenant's Stripe customer, when it has one (else Stripe makes one).
    pub customer: Option<&'a str>,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
}

impl Stripe {
    pub fn new(base: &str, secret_key: Option<SecretString>, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client with a timeout and no redirects builds");
        Stripe {
            http,
            base: base.trim_end_matches('/').to_string(),
            secret_key,
        }
    }

    pub fn configured(&self) -> bool {
        self.secret_key.is_some()
    }

    /// `POST /v1/checkout/sessions` in subscription mode.
    pub async fn create_checkout_session(
        &self,
        req: &CheckoutRequest<'_>,
        idempotency_key: &str,
    ) -> Result<CheckoutSession, StripeError> {
        let mut form: Vec<(&str, &str)> = vec![
            ("mode", "subscription"),
            ("line_items[0][price]", req.price),
            ("line_items[0][quantity]", "1"),
            ("client_reference_id", req.tenant_id),
            ("success_url", req.success_url),
            ("cancel_url", req.cancel_url),
            ("metadata[tenant_id]", req.tenant_id),
            ("metadata[package]", req.package),
            ("subscription_data[metadata][tenant_id]", req.tenant_id),
            ("subscription_data[metadata][package]", req.package),
        ];
        if let Some(customer) = req.customer {
            form.push(("customer", customer));
        }
        let body = serde_urlencoded::to_string(&form).map_err(|e| StripeError::Transport {
            call: "create checkout session",
            reason: e.to_string(),
        })?;
        let request = self
            .http
            .post(format!("{}/v1/checkout/sessions", self.base))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Idempotency-Key", idempotency_key)
            .body(body);
        self.send("create checkout session", request).await
    }

    /// `GET /v1/subscriptions/{id}`: its state now (canceled ones too).
    pub async fn subscription(&self, id: &str) -> Result<Subscription, StripeError> {
        let request = self.http.get(format!(
            "{}/v1/subscriptions/{}",
            self.base,
            path_segment(id)
        ));
        self.send("get subscription", request).await
    }

    /// One page of `GET /v1/subscriptions?status=all`, after `starting_after`.
    pub async fn subscriptions(
        &self,
        starting_after: Option<&str>,
        limit: u32,
    ) -> Result<List<Subscription>, StripeError> {
        let mut query = vec![("status", "all".to_string()), ("limit", limit.to_string())];
        if let Some(after) = starting_after {
            query.push(("starting_after", after.to_string()));
        }
        let request = self
            .http
            .get(format!("{}/v1/subscriptions", self.base))
            .query(&query);
        self.send("list subscriptions", request).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        call: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, StripeError> {
        let key = self.secret_key.as_ref().ok_or(StripeError::NotConfigured)?;
        let transport = |reason: String| StripeError::Transport { call, reason };
        let response = request
            .bearer_auth(key.expose_secret())
            .send()
            .await
            // Without the URL: nothing secret is in it, but an error stays short.
            .map_err(|e| transport(e.without_url().to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| transport(e.without_url().to_string()))?;
        if !status.is_success() {
            let message = serde_json::from_slice::<types::ErrorBody>(&body)
                .map(|b| b.error.message.unwrap_or_default())
                .unwrap_or_else(|_| "no error message".into());
            return Err(StripeError::Status {
                call,
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_slice(&body).map_err(|e| transport(format!("unexpected answer: {e}")))
    }
}

/// An id as one path segment: Stripe ids are `[A-Za-z0-9_]`; anything else
/// is percent-encoded rather than allowed to change the path.
fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}
