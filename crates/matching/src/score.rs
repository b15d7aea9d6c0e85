//! Decisions: a pair's weight against the thresholds.

use crate::frequency::TermFrequencies;
use crate::model::{weight_of, Explanation, Model, Weights};
use crate::Prepared;

/// Where match probabilities turn into decisions (`config/base.yaml`,
/// `dedupe`), held as weights in bits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// At or above: the same contact, merged without asking.
    pub merge: f32,
    /// At or above (and below `merge`): a possible match for a reviewer.
    pub possible: f32,
}

impl Thresholds {
    pub fn from_probabilities(merge: f64, possible: f64) -> Self {
        Thresholds {
            merge: weight_of(merge),
            possible: weight_of(possible),
        }
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Self::from_probabilities(0.95, 0.5)
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

/// A model's weights with the thresholds: what the dedupe job scores with.
#[derive(Debug, Clone)]
pub struct Matcher {
    weights: Weights,
    pub thresholds: Thresholds,
}

impl Default for Matcher {
    fn default() -> Self {
        Matcher::new(&Model::default(), Thresholds::default())
    }
}

impl Matcher {
    pub fn new(model: &Model, thresholds: Thresholds) -> Self {
        Matcher {
            weights: model.weights(),
            thresholds,
        }
    }

    /// This matcher, exact agreement on the frequent values of `tf`
    /// counting for less ([`crate::frequency`]).
    pub fn with_term_frequencies(mut self, tf: &TermFrequencies) -> Self {
        self.weights = self.weights.with_term_frequencies(tf);
        self
    }

    /// The evidence that `a` and `b` are the same contact, in bits; symmetric.
    pub fn score(&self, a: &Prepared, b: &Prepared) -> f32 {
        self.weights.score(a, b)
    }

    pub fn verdict(&self, score: f32) -> Verdict {
        self.thresholds.verdict(score)
    }

    pub fn explain(&self, a: &Prepared, b: &Prepared) -> Explanation {
        self.weights.explain(a, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Field, Record};

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
        let m = Matcher::default();
        assert_eq!(m.score(a, b), m.score(b, a), "symmetric");
        m.verdict(m.score(a, b))
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
        // A common name's agreement is worth less than a rare one's, which
        // the model cannot tell without term frequencies: a reviewer may
        // see this pair, the matcher never merges it.
        assert_ne!(verdict(&a, &b), Verdict::Same);
        let full = |phone: &'static str, street: &'static str, zip: &'static str| {
            move |r: &mut Record| {
                r.phone = Some(phone.into());
                r.address = Some(street.into());
                r.postcode = Some(zip.into());
            }
        };
        let a = rec("Acme", "Boston", full("+16175550100", "1 Main St", "02108"));
        let b = rec("Acme", "Denver", full("+13035550199", "9 Elm St", "80202"));
        assert_eq!(verdict(&a, &b), Verdict::Different);
    }

    #[test]
    fn a_person_with_typos_and_no_shared_key_is_still_one_contact() {
        let a = rec("Acme", "Leeds", |r| {
            r.first_name = Some("Zoe".into());
            r.last_name = Some("Khan".into());
            r.phone = Some("+442078422413".into());
            r.address = Some("222 Mill Street".into());
            r.postcode = Some("97267".into());
        });
        let b = rec("ACME Ltd", "Lesd", |r| {
            r.first_name = Some("Zeo".into());
            r.last_name = Some("Kahn".into());
            r.phone = Some("+442078422431".into());
            r.address = Some("222 Mill Stret".into());
            r.postcode = Some("97267".into());
        });
        assert_eq!(verdict(&a, &b), Verdict::Same);
        // One name missing, the other in the wrong column.
        let c = rec("Acme", "Leeds", |r| {
            r.last_name = Some("Zoe".into());
            r.phone = Some("+442078422413".into());
            r.address = Some("222 Mill St".into());
        });
        assert_eq!(verdict(&a, &c), Verdict::Same);
    }

    #[test]
    fn colleagues_sharing_a_switchboard_stay_apart() {
        let base = |first: &'static str, last: &'static str| {
            move |r: &mut Record| {
                r.first_name = Some(first.into());
                r.last_name = Some(last.into());
                r.phone = Some("+14155552671".into());
                r.domain = Some("acme.com".into());
            }
        };
        let a = rec("Acme", "Boston", base("John", "Smith"));
        let b = rec("Acme", "Boston", base("Mary", "Jones"));
        assert_eq!(verdict(&a, &b), Verdict::Different);
        // Sharing a surname (a family business), they may reach a
        // reviewer; they are never merged.
        let c = rec("Acme", "Boston", base("Mary", "Smith"));
        assert_ne!(verdict(&a, &c), Verdict::Same);
    }

    #[test]
    fn a_shared_email_with_an_unrelated_name_is_for_a_reviewer() {
        let a = rec("Acme", "", |r| r.email = Some("office@example.org".into()));
        let b = rec("Zenith Partners", "", |r| {
            r.email = Some("office@example.org".into())
        });
        assert_eq!(verdict(&a, &b), Verdict::Possible);
    }

    #[test]
    fn a_common_name_in_another_town_is_not_enough_once_frequencies_are_known() {
        let dentist = |city: &'static str| {
            rec("Main Street Dental", city, |r| {
                r.first_name = Some("John".into());
                r.last_name = Some("Smith".into());
            })
        };
        let (a, b) = (dentist("Springfield"), dentist("Shelbyville"));
        let plain = Matcher::default();
        assert_eq!(plain.verdict(plain.score(&a, &b)), Verdict::Same);
        // The name is one place in ten, John one first name in twenty.
        let tf = TermFrequencies {
            values: vec![
                (Field::Company, "main street dental".into(), 100),
                (Field::FirstName, "john".into(), 50),
            ],
            totals: [1000, 1000, 1000],
        };
        let m = Matcher::default().with_term_frequencies(&tf);
        assert_eq!(m.score(&a, &b), m.score(&b, &a), "symmetric");
        assert_eq!(m.verdict(m.score(&a, &b)), Verdict::Different);
        let why = m.explain(&a, &b);
        let company = why
            .fields
            .iter()
            .find(|c| c.field == Field::Company)
            .unwrap();
        // u(exact) 0.002 against a share of 0.1.
        assert_eq!(company.term_frequency, Some(-5.64));
        // Rare values, and a corpus too small to count in, change nothing.
        let rare = Matcher::default().with_term_frequencies(&TermFrequencies {
            values: vec![(Field::Company, "main street dental".into(), 1)],
            totals: [1000, 1000, 1000],
        });
        assert_eq!(rare.score(&a, &b), plain.score(&a, &b));
    }
}
