//! Phone numbers in E.164, read with the row's country as the default region.

use super::country::CountryCode;
use crate::ParseError;
use rlibphonenumber::{PhoneNumber, PhoneNumberFormat, Region};
use serde::Serialize;
use std::str::FromStr;

/// A valid number in E.164 form: `+` and up to 15 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub struct PhoneE164(String);

impl PhoneE164 {
    /// `region` reads national numbers ("030 901820" in DE); numbers written
    /// with `+` or `00` need none.
    pub fn parse(raw: &str, region: Option<CountryCode>) -> Result<Self, ParseError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(ParseError::new("must not be empty"));
        }
        let international = trimmed.starts_with('+') || trimmed.starts_with("00");
        let id = region.and_then(|c| Region::from_str(c.as_str()).ok());
        if !international && id.is_none() {
            return Err(ParseError::new(
                "needs an international prefix (+...) or a valid country on the row",
            ));
        }
        let number = PhoneNumber::parse(trimmed, id)
            .map_err(|_| ParseError::new("is not a phone number"))?;
        if !number.is_valid() {
            return Err(ParseError::new(match region {
                Some(c) if !international => format!("is not a valid phone number in {c}"),
                _ => "is not a valid phone number".to_string(),
            }));
        }
        Ok(Self(number.format_as(PhoneNumberFormat::E164).into_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<PhoneE164> for String {
    fn from(p: PhoneE164) -> String {
        p.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(s: &str) -> Option<CountryCode> {
        Some(CountryCode::parse(s).unwrap())
    }

    #[test]
    fn formats_of_one_number_agree() {
        for raw in [
            "(415) 555-2671",
            "415.555.2671",
            "+1 415 555 2671",
            "+1 (415) 555-2671",
        ] {
            assert_eq!(
                PhoneE164::parse(raw, cc("US")).unwrap().as_str(),
                "+14155552671",
                "{raw}"
            );
        }
        assert_eq!(
            PhoneE164::parse("030 901820", cc("DE")).unwrap().as_str(),
            "+4930901820"
        );
        assert_eq!(
            PhoneE164::parse("+49 30 901820", None).unwrap().as_str(),
            "+4930901820"
        );
        assert_eq!(
            PhoneE164::parse("0049 30 901820", cc("FR"))
                .unwrap()
                .as_str(),
            "+4930901820"
        );
    }

    #[test]
    fn national_numbers_need_a_country_and_must_be_valid() {
        assert!(PhoneE164::parse("030 901820", None)
            .unwrap_err()
            .reason
            .contains("country"));
        assert!(PhoneE164::parse("12", cc("US")).is_err());
        assert!(PhoneE164::parse("not a phone", cc("US")).is_err());
    }
}
