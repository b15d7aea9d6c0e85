//! Comparison levels: how closely two prepared records agree on each field.
//!
//! A pair of records becomes a comparison vector ([`Gamma`]): per field, the
//! level its values reach (0 is the closest) or `None` when either side has
//! no value. The levels are Splink's usual ones: exact, Jaro-Winkler bands
//! for names, one edit (Damerau) for codes typed by hand, else.

use crate::Prepared;
use serde::{Serialize, Serializer};
use strsim::{jaro_winkler, osa_distance};

/// Whether `a` becomes `b` by at most one insertion, deletion, substitution
/// or swap of neighbours (Damerau). Linear and allocation-free: the dedupe
/// job asks it millions of times, where `osa_distance` builds a matrix.
pub(crate) fn within_one_edit(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if long.len() - short.len() > 1 {
        return false;
    }
    let head = short.iter().zip(long).take_while(|(x, y)| x == y).count();
    if head == short.len() {
        return true; // equal, or one appended
    }
    if short.len() == long.len() {
        let swapped = head + 1 < short.len()
            && short[head] == long[head + 1]
            && short[head + 1] == long[head]
            && short[head + 2..] == long[head + 2..];
        swapped || short[head + 1..] == long[head + 1..]
    } else {
        short[head..] == long[head + 1..]
    }
}

/// The fields matching compares, in [`Gamma`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Email,
    Phone,
    Domain,
    Company,
    FirstName,
    LastName,
    Address,
    City,
    Postcode,
    Country,
}

pub const FIELD_COUNT: usize = 10;

/// Explanations name a field as the contact column does ([`Field::as_str`]).
impl Serialize for Field {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Field {
    pub const ALL: [Field; FIELD_COUNT] = [
        Field::Email,
        Field::Phone,
        Field::Domain,
        Field::Company,
        Field::FirstName,
        Field::LastName,
        Field::Address,
        Field::City,
        Field::Postcode,
        Field::Country,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Field::Email => "email",
            Field::Phone => "phone",
            Field::Domain => "domain",
            Field::Company => "company_name",
            Field::FirstName => "first_name",
            Field::LastName => "last_name",
            Field::Address => "address",
            Field::City => "city",
            Field::Postcode => "postcode",
            Field::Country => "country",
        }
    }

    /// The names of this field's levels, closest first.
    pub fn levels(self) -> &'static [&'static str] {
        match self {
            Field::Email | Field::Domain | Field::Country => &["exact", "different"],
            Field::Phone | Field::Postcode => &["exact", "one_edit", "different"],
            Field::Address | Field::City => &["exact", "similar", "different"],
            Field::Company | Field::FirstName | Field::LastName => &[
                "exact",
                "jaro_winkler_0.92",
                "jaro_winkler_0.80",
                "different",
            ],
        }
    }

    /// Whether it tells people apart rather than businesses: two colleagues
    /// share every other field (see [`crate::model`]).
    pub fn is_personal(self) -> bool {
        matches!(self, Field::FirstName | Field::LastName)
    }
}

/// Per field ([`Field::ALL`] order), the level reached, or `None` when a
/// value is missing on either side.
pub type Gamma = [Option<u8>; FIELD_COUNT];

fn both<'a>(a: &'a str, b: &'a str) -> Option<(&'a str, &'a str)> {
    (!a.is_empty() && !b.is_empty()).then_some((a, b))
}

fn exact(a: &str, b: &str) -> Option<u8> {
    both(a, b).map(|(a, b)| u8::from(a != b))
}

/// Codes typed by hand (phone digits, postcodes): one insertion, deletion,
/// substitution or transposition is level 1.
fn code(a: &str, b: &str) -> Option<u8> {
    both(a, b).map(|(a, b)| {
        if a == b {
            0
        } else if within_one_edit(a, b) {
            1
        } else {
            2
        }
    })
}

/// Jaro-Winkler bands, with edit distance beside them: Jaro-Winkler
/// punishes one typo in a short name ("zoe" / "zeo" is 0.78), where one
/// edit in three letters is still the commonest typo there is.
fn name_level(a: &str, b: &str) -> u8 {
    if a == b {
        return 0;
    }
    let jw = jaro_winkler(a, b);
    if jw >= 0.92 || within_one_edit(a, b) {
        1
    } else if jw >= 0.80 || a.len().min(b.len()) >= 5 && osa_distance(a, b) <= 2 {
        2
    } else {
        3
    }
}

fn name(a: &str, b: &str) -> Option<u8> {
    both(a, b).map(|(a, b)| name_level(a, b))
}

fn similar(a: &str, b: &str, at: f64) -> Option<u8> {
    both(a, b).map(|(a, b)| {
        if a == b {
            0
        } else if jaro_winkler(a, b) >= at {
            1
        } else {
            2
        }
    })
}

/// First and last names, compared straight and swapped (a source that put
/// them in the wrong columns, or a lone name in the other column): the
/// reading with the closer levels counts, a missing name counting as a
/// middling one.
fn names(a: &Prepared, b: &Prepared) -> (Option<u8>, Option<u8>) {
    let straight = (name(&a.first, &b.first), name(&a.last, &b.last));
    let (x, y) = (name(&a.first, &b.last), name(&a.last, &b.first));
    let total = |(f, l): (Option<u8>, Option<u8>)| f.unwrap_or(2) + l.unwrap_or(2);
    // Swapped only when a name really lands in the other column ("Jones" is
    // a little like "John": that is no reason to read them crossed).
    let lands = [x, y].iter().flatten().any(|l| *l <= 1);
    if lands && total((x, y)) < total(straight) {
        // Ordered so that comparing b with a gives the same vector.
        let key = |l: &Option<u8>| (l.is_none(), *l);
        if key(&x) <= key(&y) {
            (x, y)
        } else {
            (y, x)
        }
    } else {
        straight
    }
}

/// Two different house numbers are two premises, however alike the streets.
fn address(a: &Prepared, b: &Prepared) -> Option<u8> {
    let level = similar(&a.street, &b.street, 0.88)?;
    if !a.house.is_empty() && !b.house.is_empty() && a.house != b.house {
        return Some(2);
    }
    if a.house.is_empty() != b.house.is_empty() {
        return Some(level.max(1));
    }
    Some(level)
}

/// The comparison vector of a pair; symmetric.
pub fn compare(a: &Prepared, b: &Prepared) -> Gamma {
    let (first, last) = names(a, b);
    [
        exact(&a.email, &b.email),
        code(&a.phone, &b.phone),
        exact(&a.domain, &b.domain),
        name(&a.company, &b.company),
        first,
        last,
        address(a, b),
        similar(&a.city, &b.city, 0.88),
        code(&a.postcode, &b.postcode),
        exact(&a.country, &b.country),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_edit_is_what_osa_distance_calls_one() {
        let words = [
            "",
            "a",
            "ab",
            "ba",
            "abc",
            "acb",
            "bac",
            "abd",
            "abcd",
            "abdc",
            "acd",
            "zoe",
            "zeo",
            "ze",
            "khan",
            "kahn",
            "4930901820",
            "4930901802",
            "4930910820",
        ];
        for a in words {
            for b in words {
                assert_eq!(
                    within_one_edit(a, b),
                    osa_distance(a, b) <= 1,
                    "{a:?} {b:?}"
                );
            }
        }
    }
}
