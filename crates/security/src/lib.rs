//! Credentials: password hashing, opaque tokens, constant-time checks, and
//! secrets sealed at rest ([`sealing`]).
//!
//! Passwords are low-entropy, so they get argon2id. Session tokens and API keys
//! are 256-bit random strings we generate, so a plain SHA-256 is enough to make
//! a stolen database useless (nothing to brute-force) and lets us look a token
//! up by its hash in one indexed query.
//!
//! Token shapes: `bcs_<43 chars>` for sessions, `bci_<43 chars>` for
//! invitations, `bck_<8-char prefix>_<43 chars>` for API keys. The prefix is stored in clear so people can recognise a key in
//! a list; it is not secret and not enough to use the key.

pub mod sealing;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const SESSION_TOKEN_PREFIX: &str = "bcs_";
pub const API_KEY_PREFIX: &str = "bck_";
pub const INVITATION_TOKEN_PREFIX: &str = "bci_";

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// argon2id with the configured cost.
#[derive(Clone)]
pub struct PasswordHasherConfig {
    argon: Argon2<'static>,
    /// A hash of a random password, verified against when the user does not
    /// exist, so a failed sign-in takes the same time either way.
    dummy_hash: String,
}

impl PasswordHasherConfig {
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Self, SecurityError> {
        let params = Params::new(memory_kib, iterations, parallelism, None)
            .map_err(|e| SecurityError::Params(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::generate(&mut OsRng);
        let dummy_hash = argon
            .hash_password(random_token().as_bytes(), &salt)
            .map_err(|e| SecurityError::Hash(e.to_string()))?
            .to_string();
        Ok(Self { argon, dummy_hash })
    }

    /// A PHC string (`$argon2id$v=19$...`) with a fresh salt.
    pub fn hash(&self, password: &str) -> Result<String, SecurityError> {
        let salt = SaltString::generate(&mut OsRng);
        self.argon
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| SecurityError::Hash(e.to_string()))
    }

    /// Check a password against a stored hash; `None` burns the same time
    /// against a dummy hash and returns false.
    pub fn verify(&self, password: &str, stored: Option<&str>) -> bool {
        let hash = stored.unwrap_or(&self.dummy_hash);
        let Ok(parsed) = PasswordHash::new(hash) else {
            return false;
        };
        let ok = self
            .argon
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && stored.is_some()
    }
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a token, as stored.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Constant-time equality of two hashes.
pub fn hashes_equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// A new session token.
pub fn new_session_token() -> String {
    format!("{SESSION_TOKEN_PREFIX}{}", random_token())
}

/// A new invitation token (`bci_<43 chars>`), shown once to the inviter.
pub fn new_invitation_token() -> String {
    format!("{INVITATION_TOKEN_PREFIX}{}", random_token())
}

/// A new API key and its recognisable prefix (`bck_xxxxxxxx`).
pub struct NewApiKey {
    pub key: String,
    pub prefix: String,
}

pub fn new_api_key() -> NewApiKey {
    let secret = random_token();
    let prefix = format!("{API_KEY_PREFIX}{}", &secret[..8]);
    NewApiKey {
        key: format!("{prefix}_{}", &secret[8..]),
        prefix,
    }
}

/// A new random password, for seeded demo users.
pub fn new_password() -> String {
    random_token()[..24].to_string()
}

/// Length rules for a new password (NIST 800-63B: length over composition).
pub fn check_password_policy(password: &str) -> Result<(), &'static str> {
    let chars = password.chars().count();
    if chars < 10 {
        return Err("must be at least 10 characters");
    }
    if chars > 1024 {
        return Err("must be at most 1024 characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasherConfig {
        PasswordHasherConfig::new(1024, 1, 1).unwrap()
    }

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let h = cheap();
        let stored = h.hash("correct horse").unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(h.verify("correct horse", Some(&stored)));
        assert!(!h.verify("wrong", Some(&stored)));
        assert!(!h.verify("correct horse", None));
        assert!(!h.verify("x", Some("not a phc string")));
    }

    #[test]
    fn tokens_have_their_shapes_and_differ() {
        let a = new_api_key();
        let b = new_api_key();
        assert_ne!(a.key, b.key);
        assert!(a.key.starts_with(&a.prefix));
        assert_eq!(a.prefix.len(), 12);
        assert!(new_session_token().starts_with(SESSION_TOKEN_PREFIX));
        assert!(hashes_equal(&token_hash(&a.key), &token_hash(&a.key)));
        assert!(!hashes_equal(&token_hash(&a.key), &token_hash(&b.key)));
    }
}
