//! The controlled vocabularies of a contact.

use crate::access::wire_enum;
use crate::ParseError;
use serde::{Deserialize, Serialize};

wire_enum!(
    /// Market segment of a business.
    Segment {
        Smb => "smb",
        MidMarket => "mid_market",
        Enterprise => "enterprise",
        PublicSector => "public_sector",
    }
);

wire_enum!(
    /// How the business relates to the tenant.
    ContactType {
        Merchant => "merchant",
        Supplier => "supplier",
        Partner => "partner",
        Prospect => "prospect",
    }
);

/// Read a vocabulary word the way people write it: "Mid-Market" and
/// "mid market" are `mid_market`. Anything else is an error, never a guess.
pub fn parse_word<T: std::str::FromStr<Err = ParseError>>(raw: &str) -> Result<T, ParseError> {
    let word: String = raw
        .trim()
        .to_lowercase()
        .split([' ', '-', '_'])
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("_");
    word.parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_read_leniently_but_never_guessed() {
        assert_eq!(
            parse_word::<Segment>("Mid-Market").unwrap(),
            Segment::MidMarket
        );
        assert_eq!(
            parse_word::<Segment>(" public sector ").unwrap(),
            Segment::PublicSector
        );
        assert_eq!(
            parse_word::<ContactType>("SUPPLIER").unwrap(),
            ContactType::Supplier
        );
        assert!(parse_word::<Segment>("large")
            .unwrap_err()
            .reason
            .contains("expected one of"));
    }
}
