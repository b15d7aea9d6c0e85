//! Secrets at rest (CRM access and refresh tokens, Private Integration
//! keys): sealed with AES-256-GCM (the RustCrypto `aes-gcm` crate, audited
//! and widely used) under a key from config, `secrets.encryption_key`.
//!
//! A sealed value is `nonce (12 bytes) || ciphertext+tag`, stored beside
//! the id of the key that sealed it (the first 8 hex digits of the key's
//! SHA-256), so the key can rotate: the new key seals, the previous ones
//! still open, and `bizcontacts secrets rotate` re-seals what an old key
//! sealed. The associated data binds a ciphertext to its row and purpose
//! (e.g. `crm_connections/<tenant>/access_token`), so a ciphertext copied
//! into another row or column does not open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("secrets.encryption_key is not set: run `bizcontacts dev` once (it makes one) or set BIZCONTACTS__SECRETS__ENCRYPTION_KEY to base64 of 32 random bytes")]
    NoKey,
    #[error("an encryption key is not base64 of 32 bytes")]
    BadKey,
    #[error("no configured key has the id {0}: add the key that sealed it to secrets.previous_encryption_keys")]
    UnknownKey(String),
    #[error("a sealed secret did not open (wrong key, or altered)")]
    Corrupt,
}

/// A sealed secret: what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub bytes: Vec<u8>,
}

struct Key {
    id: String,
    cipher: Aes256Gcm,
}

/// The current key and the previous ones.
pub struct Keyring {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Keyring").field("key_ids", &ids).finish()
    }
}

impl Keyring {
    /// From `secrets.encryption_key` and `secrets.previous_encryption_keys`
    /// (comma separated).
    pub fn new(current: &SecretString, previous: &SecretString) -> Result<Self, SealError> {
        if current.expose_secret().trim().is_empty() {
            return Err(SealError::NoKey);
        }
        let mut keys = vec![Key::parse(current.expose_secret())?];
        for raw in previous.expose_secret().split(',') {
            if !raw.trim().is_empty() {
                keys.push(Key::parse(raw)?);
            }
        }
        Ok(Keyring { keys })
    }

    /// A new random key, as configured (base64 of 32 bytes).
    pub fn generate_key() -> String {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        STANDARD.encode(key)
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Seal `plain` for the place `aad` names.
    pub fn seal(&self, plain: &str, aad: &str) -> Sealed {
        let key = &self.keys[0];
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ciphertext = key
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&ciphertext);
        Sealed {
            key_id: key.id.clone(),
            bytes,
        }
    }

    /// Open what [`Self::seal`] sealed for `aad`.
    pub fn open(&self, sealed: &Sealed, aad: &str) -> Result<SecretString, SealError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| SealError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.bytes.len() < 12 {
            return Err(SealError::Corrupt);
        }
        let (nonce, ciphertext) = sealed.bytes.split_at(12);
        let plain = key
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SealError::Corrupt)?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| SealError::Corrupt)
    }
}

impl Key {
    fn parse(raw: &str) -> Result<Key, SealError> {
        let bytes = STANDARD.decode(raw.trim()).map_err(|_| SealError::BadKey)?;
        if bytes.len() != 32 {
            return Err(SealError::BadKey);
        }
        let digest = Sha256::digest(&bytes);
        let id = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| SealError::BadKey)?;
        Ok(Key { id, cipher })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(current: &str, previous: &str) -> Keyring {
        Keyring::new(&current.to_string().into(), &previous.to_string().into()).unwrap()
    }

    #[test]
    fn seals_open_only_with_their_key_and_place() {
        let (a, b) = (Keyring::generate_key(), Keyring::generate_key());
        let old = ring(&a, "");
        let sealed = old.seal("pit-token-123", "crm/t1/token");
        assert!(!String::from_utf8_lossy(&sealed.bytes).contains("pit-token-123"));
        assert_eq!(
            old.open(&sealed, "crm/t1/token").unwrap().expose_secret(),
            "pit-token-123"
        );
        // Another row's place does not open it.
        assert_eq!(
            old.open(&sealed, "crm/t2/token").unwrap_err(),
            SealError::Corrupt
        );
        // Rotated: the new key seals, the previous still opens.
        let rotated = ring(&b, &a);
        assert_ne!(rotated.current_id(), old.current_id());
        assert_eq!(
            rotated
                .open(&sealed, "crm/t1/token")
                .unwrap()
                .expose_secret(),
            "pit-token-123"
        );
        assert_eq!(rotated.seal("x", "p").key_id, rotated.current_id());
        // Without the old key: named, not a panic.
        assert!(matches!(
            ring(&b, "").open(&sealed, "crm/t1/token"),
            Err(SealError::UnknownKey(_))
        ));
        // Two seals of one value differ (random nonce).
        assert_ne!(old.seal("v", "p").bytes, old.seal("v", "p").bytes);
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        let none = Keyring::new(&String::new().into(), &String::new().into());
        assert_eq!(none.unwrap_err(), SealError::NoKey);
        let short = Keyring::new(&"c2hvcnQ=".to_string().into(), &String::new().into());
        assert_eq!(short.unwrap_err(), SealError::BadKey);
    }
}
