//! Email addresses as users sign in with them.

use crate::ParseError;
use serde::{Deserialize, Serialize};

/// A syntactically valid address: trimmed, domain lower-cased.
///
/// The local part keeps its case (RFC 5321 lets servers treat it as case
/// sensitive); identity lookups compare case-insensitively in the store instead.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(ParseError::new("must not be empty"));
        }
        if trimmed.len() > 254 {
            return Err(ParseError::new("must be at most 254 characters"));
        }
        let (local, domain) = trimmed
            .rsplit_once('@')
            .ok_or_else(|| ParseError::new("must contain '@'"))?;
        if local.is_empty() || local.len() > 64 {
            return Err(ParseError::new("local part must be 1 to 64 characters"));
        }
        if local.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"' | '@')
        }) {
            return Err(ParseError::new(
                "local part contains a character not allowed in an address",
            ));
        }
        let domain = domain.to_ascii_lowercase();
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii())
        };
        if labels.len() < 2 || !labels.iter().all(label_ok) {
            return Err(ParseError::new(
                "domain must be a valid host name such as example.com",
            ));
        }
        Ok(Self(format!("{local}@{domain}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Email {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> Self {
        e.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_lowercases_the_domain_only() {
        let e = Email::parse("  Jane.Doe@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "Jane.Doe@example.com");
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@localhost",
            "a b@example.com",
            "a@-x.com",
            "a@x..com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
