//! Pair scores: evidence for and against two records being one contact.
//!
//! Each field adds a weight when both records have it: positive when the
//! values agree, negative when they differ; a missing value adds nothing.
//! The weights follow how rare an accidental agreement is (an email or phone
//! almost never belongs to two businesses; a city often does) and how
//! telling a disagreement is (two people are two contacts even when they
//! share a switchboard number).

use crate::Prepared;
use serde::Deserialize;
use strsim::jaro_winkler;

/// Where scores turn into decisions (`config/base.yaml`, `dedupe`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Thresholds {
    /// At or above: the same contact, merged without asking.
    pub merge: f32,
    /// At or above (and below `merge`): a possible match for a reviewer.
    pub possible: f32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            merge: 6.0,
            possible: 3.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Same,
    Possible,
    Different,
}

impl Thresholds {
    pub fn verdict(&self, score: f32) -> Verdict {
        if score >= self.merge {
            Verdict::Same
        } else if score >= self.possible {
            Verdict::Possible
        } else {
            Verdict::Different
        }
    }
}

/// Both present and equal: `Some(true)`; both present and different:
/// `Some(false)`; otherwise no evidence.
fn exact(a: &str, b: &str) -> Option<bool> {
    (!a.is_empty() && !b.is_empty()).then(|| a == b)
}

fn similarity(a: &str, b: &str) -> Option<f64> {
    (!a.is_empty() && !b.is_empty()).then(|| if a == b { 1.0 } else { jaro_winkler(a, b) })
}

/// The evidence that `a` and `b` are the same contact; symmetric.
pub fn score(a: &Prepared, b: &Prepared) -> f32 {
    let mut s = 0.0;
    s += match exact(&a.email, &b.email) {
        Some(true) => 6.0,
        Some(false) => -1.0,
        None => 0.0,
    };
    s += match exact(&a.phone, &b.phone) {
        Some(true) => 5.0,
        Some(false) => -1.0,
        None => 0.0,
    };
    s += match exact(&a.domain, &b.domain) {
        Some(true) => 3.0,
        Some(false) => -4.0,
        None => 0.0,
    };
    s += match similarity(&a.company, &b.company) {
        Some(x) if x >= 0.97 => 3.0,
        Some(x) if x >= 0.92 => 1.5,
        Some(x) if x >= 0.85 => 0.0,
        Some(_) => -3.0,
        None => 0.0,
    };
    // Another person at the same company is another contact.
    s += match similarity(&a.person, &b.person) {
        Some(x) if x >= 0.95 => 2.0,
        Some(x) if x >= 0.88 => 1.0,
        Some(_) => -10.0,
        None => 0.0,
    };
    s += match similarity(&a.city, &b.city) {
        Some(x) if x >= 0.95 => 1.5,
        Some(_) => -2.5,
        None => 0.0,
    };
    s += match exact(&a.postcode, &b.postcode) {
        Some(true) => 1.5,
        Some(false) => -1.5,
        None => 0.0,
    };
    // Addresses are written in too many ways for a difference to count.
    s += match similarity(&a.address, &b.address) {
        Some(x) if x >= 0.93 => 1.5,
        _ => 0.0,
    };
    s += match exact(&a.country, &b.country) {
        Some(false) => -3.0,
        _ => 0.0,
    };
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Record;

    fn rec(company: &str, city: &str, f: impl FnOnce(&mut Record)) -> Prepared {
        let mut r = Record {
            company_name: Some(company.into()),
            city: Some(city.into()),
            country: Some("US".into()),
            ..Default::default()
        };
        f(&mut r);
        Prepared::new(&r)
    }

    fn verdict(a: &Prepared, b: &Prepared) -> Verdict {
        assert_eq!(score(a, b), score(b, a), "symmetric");
        Thresholds::default().verdict(score(a, b))
    }

    #[test]
    fn legal_form_variants_in_one_place_are_one_company() {
        let zip = |r: &mut Record| r.postcode = Some("94107".into());
        let a = rec("ACME Inc.", "San Francisco", zip);
        for name in ["Acme, Inc", "ACME INCORPORATED"] {
            assert_eq!(
                verdict(&a, &rec(name, "San Francisco", zip)),
                Verdict::Same,
                "{name}"
            );
        }
    }

    #[test]
    fn email_or_phone_with_the_name_is_enough() {
        let a = rec("Acme", "Boston", |r| {
            r.email = Some("Sales@Acme.com".into())
        });
        let b = rec("Acme Corp", "Cambridge", |r| {
            r.email = Some("sales@acme.com".into())
        });
        assert_eq!(verdict(&a, &b), Verdict::Same);
        let a = rec("Acme", "", |r| r.phone = Some("+14155552671".into()));
        let b = rec("ACME LLC", "", |r| r.phone = Some("+14155552671".into()));
        assert_eq!(verdict(&a, &b), Verdict::Same);
    }

    #[test]
    fn same_name_elsewhere_with_another_website_is_another_company() {
        let a = rec("Acme", "Boston", |r| {
            r.domain = Some("acme-boston.com".into())
        });
        let b = rec("Acme", "Denver", |r| {
            r.domain = Some("acmedenver.com".into())
        });
        assert_eq!(verdict(&a, &b), Verdict::Different);
    }

    #[test]
    fn colleagues_sharing_a_switchboard_stay_apart() {
        let base = |first: &'static str| {
            move |r: &mut Record| {
                r.first_name = Some(first.into());
                r.last_name = Some("Smith".into());
                r.phone = Some("+14155552671".into());
                r.domain = Some("acme.com".into());
            }
        };
        let a = rec("Acme", "Boston", base("John"));
        let b = rec("Acme", "Boston", base("Mary"));
        assert_eq!(verdict(&a, &b), Verdict::Different);
    }

    #[test]
    fn a_shared_email_with_an_unrelated_name_is_for_a_reviewer() {
        let a = rec("Acme", "", |r| r.email = Some("office@example.org".into()));
        let b = rec("Zenith Partners", "", |r| {
            r.email = Some("office@example.org".into())
        });
        assert_eq!(verdict(&a, &b), Verdict::Possible);
    }
}
