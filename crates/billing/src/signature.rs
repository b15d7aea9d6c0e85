//! `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`, where each `v1` is
//! the hex HMAC-SHA256 of `"{t}.{raw body}"` under an endpoint secret.
//! Checked over the raw bytes before anything parses them; every `v1`
//! against every configured secret (so a secret can roll: the old and the
//! new one are both configured while Stripe signs with both), in constant
//! time; a timestamp more than the tolerance away from now, in the past or
//! the future, is refused (a captured delivery cannot be replayed later).

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// Stripe's own default tolerance.
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    Missing,
    #[error("the Stripe-Signature header is malformed (expected t=<unix>,v1=<hex>)")]
    Malformed,
    #[error("the signature's timestamp is {0} s from now, more than the 300 s allowed")]
    OutsideTolerance(i64),
    #[error("no v1 signature matches a configured webhook secret")]
    NoMatch,
    #[error("no webhook secret is configured (stripe.webhook_secret)")]
    NotConfigured,
}

/// Check `header` over `body` at `now` (unix seconds).
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[SecretString],
    now: i64,
) -> Result<(), SignatureError> {
    if secrets.is_empty() {
        return Err(SignatureError::NotConfigured);
    }
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp: Option<&str> = None;
    let mut signatures: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match k {
            "t" if timestamp.is_none() => timestamp = Some(v),
            "t" => return Err(SignatureError::Malformed),
            // A value that is not hex cannot match; the others may.
            "v1" => signatures.extend(hex::decode(v).ok()),
            // v0 (test mode's old scheme) and future schemes: not ours.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    let t: i64 = timestamp.parse().map_err(|_| SignatureError::Malformed)?;
    let age = now - t;
    if age.abs() > TOLERANCE_SECS {
        return Err(SignatureError::OutsideTolerance(age));
    }
    for secret in secrets {
        let mac = signed(secret.expose_secret(), timestamp, body);
        for sig in &signatures {
            if mac.clone().verify_slice(sig).is_ok() {
                return Ok(());
            }
        }
    }
    Err(SignatureError::NoMatch)
}

fn signed(secret: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header Stripe would send for `body` at `t` under `secret` (for the
/// fake Stripe and the tests).
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mac = signed(secret, &t.to_string(), body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(s: &[&str]) -> Vec<SecretString> {
        s.iter()
            .map(|s| SecretString::from(s.to_string()))
            .collect()
    }

    #[test]
    fn a_signature_is_checked_over_the_raw_body() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign("whsec_a", 1_000, body);
        let keys = secrets(&["whsec_a"]);
        assert_eq!(verify(Some(&header), body, &keys, 1_000), Ok(()));
        assert_eq!(
            verify(Some(&header), br#"{"id":"evt_2"}"#, &keys, 1_000),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(Some(&header), body, &secrets(&["whsec_b"]), 1_000),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(None, body, &keys, 1_000),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(Some("v1=abc"), body, &keys, 1_000),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(Some(&header), body, &keys, 1_301),
            Err(SignatureError::OutsideTolerance(301))
        );
        assert_eq!(
            verify(Some(&header), body, &keys, 699),
            Err(SignatureError::OutsideTolerance(-301))
        );
        assert_eq!(
            verify(Some(&header), body, &[], 1_000),
            Err(SignatureError::NotConfigured)
        );
    }

    #[test]
    fn any_v1_under_any_configured_secret_is_enough() {
        let body = b"{}";
        let new = sign("whsec_new", 50, body);
        let new_v1 = new.split_once(",v1=").unwrap().1;
        // Stripe signs with both secrets while one rolls.
        let header = format!("t=50,v1={},v1=nothex,v0=ignored", "00".repeat(32)) + ",v1=" + new_v1;
        assert_eq!(
            verify(
                Some(&header),
                body,
                &secrets(&["whsec_old", "whsec_new"]),
                50
            ),
            Ok(())
        );
        assert_eq!(
            verify(Some(&header), body, &secrets(&["whsec_old"]), 50),
            Err(SignatureError::NoMatch)
        );
    }
}
