//! HighLevel webhooks: who signed a delivery, and what it says.
//!
//! A delivery is trusted only when its raw body verifies against one of
//! the configured keys: `x-wh-signature` (base64 RSA-SHA256 with the key
//! HighLevel publishes) or `x-ghl-signature` (base64 Ed25519, the newer
//! scheme); either is enough. Parsing comes after, and freshness
//! (`timestamp`) and replays (`webhookId`) are the receiver's to check, as
//! they need a clock and a store.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use rsa::signature::Verifier as _;
use serde::Deserialize;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error("no x-wh-signature or x-ghl-signature header")]
    Unsigned,
    #[error("the signature does not match the body")]
    BadSignature,
    #[error("the body is not a HighLevel event: {0}")]
    Malformed(String),
    #[error("{0} is not a valid public key (PEM)")]
    BadKey(&'static str),
}

/// The keys deliveries are checked with.
#[derive(Clone, Default)]
pub struct Verifier {
    rsa: Option<rsa::pkcs1v15::VerifyingKey<sha2::Sha256>>,
    ed25519: Option<ed25519_dalek::VerifyingKey>,
}

impl Verifier {
    /// From PEM texts; an empty text means that scheme is not accepted.
    pub fn new(rsa_pem: &str, ed25519_pem: &str) -> Result<Self, WebhookError> {
        let rsa = match rsa_pem.trim() {
            "" => None,
            pem => Some(rsa::pkcs1v15::VerifyingKey::new(
                rsa::RsaPublicKey::from_public_key_pem(pem)
                    .map_err(|_| WebhookError::BadKey("highlevel.webhook_rsa_public_key"))?,
            )),
        };
        let ed25519 = match ed25519_pem.trim() {
            "" => None,
            pem => Some(
                ed25519_dalek::VerifyingKey::from_public_key_pem(pem)
                    .map_err(|_| WebhookError::BadKey("highlevel.webhook_ed25519_public_key"))?,
            ),
        };
        Ok(Verifier { rsa, ed25519 })
    }

    /// Whether `body` carries a valid signature in either header.
    pub fn verify(
        &self,
        rsa_signature: Option<&str>,
        ed25519_signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), WebhookError> {
        if rsa_signature.is_none() && ed25519_signature.is_none() {
            return Err(WebhookError::Unsigned);
        }
        let decode = |s: &str| STANDARD.decode(s.trim()).ok();
        let rsa_ok = || {
            let (Some(key), Some(sig)) = (&self.rsa, rsa_signature.and_then(decode)) else {
                return false;
            };
            rsa::pkcs1v15::Signature::try_from(sig.as_slice())
                .is_ok_and(|sig| key.verify(body, &sig).is_ok())
        };
        let ed_ok = || {
            let (Some(key), Some(sig)) = (&self.ed25519, ed25519_signature.and_then(decode)) else {
                return false;
            };
            ed25519_dalek::Signature::from_slice(&sig)
                .is_ok_and(|sig| key.verify_strict(body, &sig).is_ok())
        };
        if ed_ok() || rsa_ok() {
            Ok(())
        } else {
            Err(WebhookError::BadSignature)
        }
    }
}

/// The fields of a delivery we act on; the rest stays in the raw body.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: String,
    pub webhook_id: String,
    pub timestamp: DateTime<Utc>,
    #[serde(default)]
    pub location_id: Option<String>,
    #[serde(default)]
    pub company_id: Option<String>,
    /// The contact's id in Contact* events.
    #[serde(default)]
    pub id: Option<String>,
}

impl Event {
    pub fn parse(body: &[u8]) -> Result<Self, WebhookError> {
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    use ed25519_dalek::Signer as _;

    #[test]
    fn the_published_rsa_key_parses_and_ed25519_signatures_verify() {
        let published = include_str!("../../../config/base.yaml")
            .split("webhook_rsa_public_key: |")
            .nth(1)
            .unwrap()
            .lines()
            .skip(1)
            .take_while(|l| l.trim_start().starts_with('-') || !l.contains(':'))
            .map(str::trim)
            .take_while(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        let mut seed = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut seed);
        let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
        let pem = signing
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        let v = Verifier::new(&published, &pem).unwrap();
        let body = br#"{"type":"INSTALL","webhookId":"w1","timestamp":"2026-12-02T00:00:00Z"}"#;
        let sig = STANDARD.encode(signing.sign(body).to_bytes());
        assert_eq!(v.verify(None, Some(&sig), body), Ok(()));
        let mut tampered = body.to_vec();
        tampered[10] ^= 1;
        assert_eq!(
            v.verify(None, Some(&sig), &tampered),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            v.verify(Some("AAAA"), None, body),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(v.verify(None, None, body), Err(WebhookError::Unsigned));
        assert_eq!(Event::parse(body).unwrap().webhook_id, "w1");
    }
}
