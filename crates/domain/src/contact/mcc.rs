//! Merchant Category Codes (ISO 18245).
//!
//! The ISO list and its ranges ship with this crate (`data/mcc/`, MIT, see
//! its NOTICE.md) and are parsed once on first use. Only codes on the ISO list
//! are accepted: the card networks' wider lists (private-use 3000-3999 and
//! more) are not part of the governed corpus.

use crate::ParseError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::LazyLock;

const OFFICIAL: &str = include_str!("../../data/mcc/iso18245_official_list.csv");
const RANGES: &str = include_str!("../../data/mcc/iso18245_ranges.csv");

struct Catalogue {
    /// code -> description
    codes: BTreeMap<String, String>,
    /// (start, end, category), inclusive, sorted by start
    ranges: Vec<(u16, u16, String)>,
}

static CATALOGUE: LazyLock<Catalogue> = LazyLock::new(|| {
    let records = |text: &'static str| {
        csv::Reader::from_reader(text.as_bytes())
            .into_records()
            .map(|r| r.expect("shipped MCC list is valid CSV"))
            .collect::<Vec<_>>()
    };
    let codes = records(OFFICIAL)
        .into_iter()
        .map(|r| (r[0].to_string(), r[1].to_string()))
        .collect();
    let mut ranges: Vec<(u16, u16, String)> = records(RANGES)
        .into_iter()
        .map(|r| {
            let n = |s: &str| s.parse::<u16>().expect("shipped MCC range is numeric");
            (n(&r[0]), n(&r[1]), r[2].to_string())
        })
        .collect();
    ranges.sort();
    Catalogue { codes, ranges }
});

/// A 4-character code on the ISO 18245 list; leading zeros are part of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub struct Mcc(String);

impl Mcc {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let code = raw.trim();
        if code.is_empty() {
            return Err(ParseError::new("must not be empty"));
        }
        if !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::new("must be 4 digits"));
        }
        if code.len() < 4 {
            // Spreadsheets turn "0742" into 742; saying so saves the user a search.
            let padded = format!("{code:0>4}");
            let hint = if CATALOGUE.codes.contains_key(&padded) {
                format!("; did you mean {padded}? (spreadsheets often drop leading zeros)")
            } else {
                String::new()
            };
            return Err(ParseError::new(format!("must be 4 digits{hint}")));
        }
        if code.len() > 4 {
            return Err(ParseError::new("must be 4 digits"));
        }
        if !CATALOGUE.codes.contains_key(code) {
            return Err(ParseError::new("is not on the ISO 18245 list"));
        }
        Ok(Self(code.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn description(&self) -> &'static str {
        CATALOGUE
            .codes
            .get(&self.0)
            .map(String::as_str)
            .unwrap_or("")
    }

    /// The category of the ISO range the code falls in, e.g. "Retail outlets".
    pub fn category(&self) -> &'static str {
        let n: u16 = self.0.parse().expect("an Mcc is 4 digits");
        CATALOGUE
            .ranges
            .iter()
            .find(|(start, end, _)| (*start..=*end).contains(&n))
            .map(|(_, _, c)| c.as_str())
            .unwrap_or("Other")
    }
}

/// Every code on the ISO 18245 list, in order.
pub fn mcc_codes() -> Vec<&'static str> {
    CATALOGUE.codes.keys().map(String::as_str).collect()
}

/// Every category name the ISO ranges define, sorted, without repeats.
pub fn categories() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = CATALOGUE
        .ranges
        .iter()
        .map(|(_, _, c)| c.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

impl From<Mcc> for String {
    fn from(m: Mcc) -> String {
        m.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_keep_leading_zeros_and_derive_a_category() {
        let m = Mcc::parse(" 0742 ").unwrap();
        assert_eq!(m.as_str(), "0742");
        assert_eq!(m.category(), "Agricultural services");
        assert_eq!(m.description(), "Veterinary services");
        assert_eq!(Mcc::parse("5411").unwrap().category(), "Retail outlets");
    }

    #[test]
    fn short_unknown_and_malformed_codes_are_refused_with_a_reason() {
        let e = Mcc::parse("742").unwrap_err().reason;
        assert!(e.contains("did you mean 0742"), "{e}");
        assert_eq!(
            Mcc::parse("0001").unwrap_err().reason,
            "is not on the ISO 18245 list"
        );
        assert_eq!(Mcc::parse("54a1").unwrap_err().reason, "must be 4 digits");
        assert_eq!(Mcc::parse("54111").unwrap_err().reason, "must be 4 digits");
        // Private-use airline codes are on the networks' lists, not ISO's.
        assert!(Mcc::parse("3000").is_err());
    }
}
