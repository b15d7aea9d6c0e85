//! A contact search as a parsed value: the filters of
//! `GET /contacts/search` and `/contacts/facets`, each value checked.
//!
//! Each filter may repeat: values of one filter are alternatives (OR), and
//! filters combine with AND. A value that is not one the corpus can hold
//! (an unknown country or category, a malformed MCC or range) is an error
//! naming the filter, never an empty result that looks like "no contacts".

use crate::contact::{categories, mcc_codes, parse_word, ContactType, CountryCode, Mcc, Segment};
use crate::ParseError;

/// Longest free text accepted (names are short; this bounds the trigram work).
pub const MAX_Q_CHARS: usize = 100;
/// Most values one filter may list.
pub const MAX_VALUES: usize = 50;

/// One `mcc` value: a code, or an inclusive range of codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MccFilter {
    Code(Mcc),
    /// Four-digit bounds, `start <= end`, e.g. 5811-5814.
    Range(String, String),
}

/// What a search asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchFilter {
    pub countries: Vec<CountryCode>,
    pub categories: Vec<&'static str>,
    pub segments: Vec<Segment>,
    pub types: Vec<ContactType>,
    pub mccs: Vec<MccFilter>,
    /// Lower-cased free text over company and person names.
    pub q: Option<String>,
}

/// A filter value that cannot be searched for: `field` is the query
/// parameter's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub field: &'static str,
    pub reason: String,
}

impl SearchFilter {
    /// Parse `(name, value)` query pairs; other names are left to the caller.
    /// Every bad value is reported, not only the first.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, Vec<FilterError>> {
        let mut f = SearchFilter::default();
        let mut errors = Vec::new();
        let mut counts = [0usize; 5];
        let known = categories();
        for (name, value) in pairs {
            let mut fail = |field: &'static str, e: ParseError| {
                errors.push(FilterError {
                    field,
                    reason: format!("{value:?}: {}", e.reason),
                })
            };
            let slot = match name {
                "country" => 0,
                "category" => 1,
                "segment" => 2,
                "type" => 3,
                "mcc" => 4,
                "q" => {
                    let q = value.trim().to_lowercase();
                    if q.chars().count() > MAX_Q_CHARS {
                        fail(
                            "q",
                            ParseError::new(format!("must be at most {MAX_Q_CHARS} characters")),
                        );
                    } else if f.q.is_some() {
                        fail("q", ParseError::new("may be given once"));
                    } else if !q.is_empty() {
                        f.q = Some(q);
                    }
                    continue;
                }
                _ => continue,
            };
            counts[slot] += 1;
            if counts[slot] > MAX_VALUES {
                if counts[slot] == MAX_VALUES + 1 {
                    errors.push(FilterError {
                        field: ["country", "category", "segment", "type", "mcc"][slot],
                        reason: format!("may list at most {MAX_VALUES} values"),
                    });
                }
                continue;
            }
            match slot {
                0 => match CountryCode::parse(value) {
                    Ok(c) => f.countries.push(c),
                    Err(e) => fail("country", e),
                },
                1 => match known.iter().find(|c| c.eq_ignore_ascii_case(value.trim())) {
                    Some(c) => f.categories.push(c),
                    None => fail(
                        "category",
                        ParseError::new(format!(
                            "is not an ISO 18245 category; one of {}",
                            known.join(", ")
                        )),
                    ),
                },
                2 => match parse_word::<Segment>(value) {
                    Ok(s) => f.segments.push(s),
                    Err(e) => fail("segment", e),
                },
                3 => match parse_word::<ContactType>(value) {
                    Ok(t) => f.types.push(t),
                    Err(e) => fail("type", e),
                },
                _ => match parse_mcc(value) {
                    Ok(m) => f.mccs.push(m),
                    Err(e) => fail("mcc", e),
                },
            }
        }
        if errors.is_empty() {
            Ok(f)
        } else {
            Err(errors)
        }
    }

    /// The MCCs a contact may have to match, or None when neither `mcc` nor
    /// `category` constrains it: the codes of the ISO list that fall in any
    /// `mcc` value (code or range) and in any `category`, in order. Stored
    /// MCCs are always on that list and a category is a function of the
    /// code, so this one set is the whole condition, and the store can test
    /// it with an index on the code alone. Empty means nothing can match.
    pub fn mcc_codes(&self) -> Option<Vec<&'static str>> {
        if self.mccs.is_empty() && self.categories.is_empty() {
            return None;
        }
        let in_mccs = |code: &str| {
            self.mccs.is_empty()
                || self.mccs.iter().any(|m| match m {
                    MccFilter::Code(c) => c.as_str() == code,
                    MccFilter::Range(a, b) => (a.as_str()..=b.as_str()).contains(&code),
                })
        };
        let in_categories = |code: &'static str| {
            self.categories.is_empty() || {
                let category = Mcc::parse(code).map(|m| m.category()).unwrap_or("");
                self.categories.contains(&category)
            }
        };
        Some(
            mcc_codes()
                .into_iter()
                .filter(|c| in_mccs(c) && in_categories(c))
                .collect(),
        )
    }

    /// A canonical text of the filter (sorted values), so that two requests
    /// asking the same thing in another order are the same query.
    pub fn canonical(&self) -> String {
        fn sorted<T: AsRef<str>>(v: &[T]) -> String {
            let mut v: Vec<&str> = v.iter().map(AsRef::as_ref).collect();
            v.sort_unstable();
            v.dedup();
            v.join(",")
        }
        let countries: Vec<&str> = self.countries.iter().map(|c| c.as_str()).collect();
        let segments: Vec<&str> = self.segments.iter().map(|s| s.as_str()).collect();
        let types: Vec<&str> = self.types.iter().map(|t| t.as_str()).collect();
        let mccs: Vec<String> = self
            .mccs
            .iter()
            .map(|m| match m {
                MccFilter::Code(c) => c.as_str().to_string(),
                MccFilter::Range(a, b) => format!("{a}-{b}"),
            })
            .collect();
        format!(
            "country={};category={};segment={};type={};mcc={};q={}",
            sorted(&countries),
            sorted(&self.categories),
            sorted(&segments),
            sorted(&types),
            sorted(&mccs),
            self.q.as_deref().unwrap_or("")
        )
    }
}

fn parse_mcc(raw: &str) -> Result<MccFilter, ParseError> {
    let raw = raw.trim();
    let Some((a, b)) = raw.split_once('-') else {
        return Mcc::parse(raw).map(MccFilter::Code);
    };
    let bound = |s: &str| {
        let s = s.trim();
        if s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(s.to_string())
        } else {
            Err(ParseError::new(
                "a range is two 4-digit codes, e.g. 5811-5814",
            ))
        }
    };
    let (a, b) = (bound(a)?, bound(b)?);
    if a > b {
        return Err(ParseError::new(
            "a range starts at its lower code, e.g. 5811-5814",
        ));
    }
    Ok(MccFilter::Range(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<SearchFilter, Vec<FilterError>> {
        SearchFilter::parse(pairs.iter().copied())
    }

    #[test]
    fn mcc_and_category_become_one_set_of_listed_codes() {
        assert_eq!(parse(&[("country", "DE")]).unwrap().mcc_codes(), None);
        let range = parse(&[("mcc", "5811-5814")]).unwrap();
        assert_eq!(
            range.mcc_codes().unwrap(),
            vec!["5811", "5812", "5813", "5814"]
        );
        // AND across the two filters: the range's codes that are retail.
        let both = parse(&[("mcc", "5811-5814"), ("category", "Retail outlets")]).unwrap();
        let codes = both.mcc_codes().unwrap();
        assert!(codes
            .iter()
            .all(|c| Mcc::parse(c).unwrap().category() == "Retail outlets"));
        // Every code of a category, and only those.
        let retail = parse(&[("category", "retail outlets")])
            .unwrap()
            .mcc_codes()
            .unwrap();
        assert!(retail.contains(&"5411") && !retail.contains(&"0742"));
        // A code outside the category: nothing can match, not "no filter".
        let none = parse(&[("mcc", "0742"), ("category", "Retail outlets")]).unwrap();
        assert_eq!(none.mcc_codes(), Some(vec![]));
    }

    #[test]
    fn filters_repeat_and_parse_as_people_write_them() {
        let f = parse(&[
            ("country", "Germany"),
            ("country", "FR"),
            ("segment", "Mid-Market"),
            ("type", "prospect"),
            ("mcc", "5411"),
            ("mcc", "5811-5814"),
            ("category", "retail outlets"),
            ("q", "  Acme GmbH "),
            ("limit", "10"),
        ])
        .unwrap();
        assert_eq!(f.countries.len(), 2);
        assert_eq!(f.segments, [Segment::MidMarket]);
        assert_eq!(f.categories, ["Retail outlets"]);
        assert_eq!(f.mccs[1], MccFilter::Range("5811".into(), "5814".into()));
        assert_eq!(f.q.as_deref(), Some("acme gmbh"));
        // Order does not make another query.
        let g = parse(&[("country", "FR"), ("country", "DE")]).unwrap();
        let h = parse(&[("country", "de"), ("country", "fr")]).unwrap();
        assert_eq!(g.canonical(), h.canonical());
    }

    #[test]
    fn every_bad_value_is_named() {
        let errors = parse(&[
            ("country", "Atlantis"),
            ("category", "Spaceships"),
            ("segment", "huge"),
            ("mcc", "58a1"),
            ("mcc", "5814-5811"),
            ("mcc", "1' OR '1'='1"),
        ])
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            ["country", "category", "segment", "mcc", "mcc", "mcc"]
        );
        assert!(errors[4].reason.contains("lower code"), "{:?}", errors[4]);
    }
}
