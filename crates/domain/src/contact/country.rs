//! Countries as ISO 3166-1 alpha-2 codes.
//!
//! The code tables come from `celes`; the names people actually type
//! ("UK", "South Korea", "Deutschland", "Côte d'Ivoire") are added here, since
//! no table of official names holds them all.

use crate::ParseError;
use celes::LookupTable;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::LazyLock;

/// Everyday names and abbreviations that the official tables lack.
const EXTRA_NAMES: &[(&str, &str)] = &[
    ("uk", "GB"),
    ("great britain", "GB"),
    ("britain", "GB"),
    ("united kingdom", "GB"),
    ("england", "GB"),
    ("scotland", "GB"),
    ("wales", "GB"),
    ("northern ireland", "GB"),
    ("us", "US"),
    ("united states", "US"),
    ("u s", "US"),
    ("u s a", "US"),
    ("united states of america", "US"),
    ("america", "US"),
    ("deutschland", "DE"),
    ("south korea", "KR"),
    ("korea", "KR"),
    ("republic of korea", "KR"),
    ("north korea", "KP"),
    ("ivory coast", "CI"),
    ("cote d ivoire", "CI"),
    ("viet nam", "VN"),
    ("russia", "RU"),
    ("czechia", "CZ"),
    ("czech republic", "CZ"),
    ("holland", "NL"),
    ("the netherlands", "NL"),
    ("uae", "AE"),
    ("emirates", "AE"),
    ("espana", "ES"),
    ("brasil", "BR"),
    ("mexico", "MX"),
    ("turkey", "TR"),
    ("turkiye", "TR"),
    ("iran", "IR"),
    ("syria", "SY"),
    ("laos", "LA"),
    ("bolivia", "BO"),
    ("venezuela", "VE"),
    ("tanzania", "TZ"),
    ("moldova", "MD"),
    ("taiwan", "TW"),
    ("hong kong", "HK"),
    ("macau", "MO"),
    ("vatican", "VA"),
    ("palestine", "PS"),
    ("swaziland", "SZ"),
    ("eswatini", "SZ"),
    ("macedonia", "MK"),
    ("north macedonia", "MK"),
    ("burma", "MM"),
    ("cape verde", "CV"),
    ("east timor", "TL"),
];

/// Lower-case ASCII letters and single spaces: "Côte d'Ivoire" -> "cote d ivoire".
fn name_key(s: &str) -> String {
    let ascii = deunicode::deunicode(s).to_ascii_lowercase();
    ascii
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

static BY_NAME: LazyLock<HashMap<String, &'static str>> = LazyLock::new(|| {
    let mut map = HashMap::new();
    for c in celes::Country::get_countries() {
        let mut names = vec![c.alpha2, c.alpha3, c.long_name];
        names.extend(c.aliases.iter().copied());
        for name in names {
            let key = name_key(name);
            // "The United States Of America" is also "United States Of America".
            if let Some(short) = key.strip_prefix("the ") {
                map.insert(short.to_string(), c.alpha2);
            }
            map.insert(key, c.alpha2);
        }
    }
    for (name, code) in EXTRA_NAMES {
        map.insert(name_key(name), *code);
    }
    map
});

/// An ISO 3166-1 alpha-2 code, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Accepts alpha-2, alpha-3 and common names, in any case.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let key = name_key(raw);
        if key.is_empty() {
            return Err(ParseError::new("must not be empty"));
        }
        let code = BY_NAME.get(&key).ok_or_else(|| {
            ParseError::new("is not a country: use an ISO 3166 code (DE, DEU) or its name")
        })?;
        let b = code.as_bytes();
        Ok(Self([b[0], b[1]]))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("alpha-2 codes are ASCII")
    }
}

impl From<CountryCode> for String {
    fn from(c: CountryCode) -> String {
        c.as_str().to_string()
    }
}

impl std::fmt::Display for CountryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_become_alpha2() {
        for (input, code) in [
            ("de", "DE"),
            ("DEU", "DE"),
            ("Germany", "DE"),
            ("  united states of america ", "US"),
            ("USA", "US"),
            ("UK", "GB"),
            ("United Kingdom", "GB"),
            ("Côte d'Ivoire", "CI"),
            ("South Korea", "KR"),
            ("Viet Nam", "VN"),
            ("FRA", "FR"),
        ] {
            assert_eq!(CountryCode::parse(input).unwrap().as_str(), code, "{input}");
        }
    }

    #[test]
    fn unknown_countries_are_refused() {
        assert!(CountryCode::parse("Atlantis").is_err());
        assert!(CountryCode::parse("ZZ").is_err());
        assert_eq!(
            CountryCode::parse(" ").unwrap_err().reason,
            "must not be empty"
        );
    }
}
