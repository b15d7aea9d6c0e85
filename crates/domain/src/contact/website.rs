//! Websites and the registrable domain used to match them.

use crate::ParseError;
use serde::Serialize;

/// A web address with its registrable domain ("shop.acme.co.uk" -> "acme.co.uk",
/// per the Public Suffix List shipped in `psl`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Website {
    /// `https://` + host + path as given (scheme added when missing, host lower-cased).
    pub url: String,
    pub domain: String,
}

impl Website {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(ParseError::new("must not be empty"));
        }
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ParseError::new("must not contain spaces"));
        }
        let lower = trimmed.to_ascii_lowercase();
        let (scheme, rest) = if let Some(r) = lower.strip_prefix("https://") {
            ("https", &trimmed[8..8 + r.len()])
        } else if let Some(r) = lower.strip_prefix("http://") {
            ("http", &trimmed[7..7 + r.len()])
        } else if lower.contains("://") {
            return Err(ParseError::new("must be an http or https address"));
        } else {
            ("https", trimmed)
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.contains('@') {
            return Err(ParseError::new("must not contain credentials"));
        }
        let host = authority
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(authority, |(h, _)| h)
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let labels_ok = host.split('.').count() >= 2
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !labels_ok || host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(ParseError::new("must be a web address such as acme.com"));
        }
        let domain = psl::domain_str(&host)
            .filter(|d| psl::suffix_str(d) != Some(*d))
            .ok_or_else(|| ParseError::new("has no registrable domain (a bare public suffix?)"))?
            .to_string();
        Ok(Self {
            url: format!("{scheme}://{host}{path}"),
            domain,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrable_domains_are_found() {
        let w = Website::parse("WWW.Acme.co.uk/contact").unwrap();
        assert_eq!(w.url, "https://www.acme.co.uk/contact");
        assert_eq!(w.domain, "acme.co.uk");
        let w = Website::parse("http://shop.acme.com:8080").unwrap();
        assert_eq!(
            (w.url.as_str(), w.domain.as_str()),
            ("http://shop.acme.com", "acme.com")
        );
    }

    #[test]
    fn non_addresses_are_refused() {
        for bad in [
            "localhost",
            "10.0.0.1",
            "ftp://acme.com",
            "co.uk",
            "acme .com",
            "user@acme.com",
        ] {
            assert!(Website::parse(bad).is_err(), "{bad}");
        }
    }
}
