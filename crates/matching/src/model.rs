//! The Fellegi-Sunter model: per field and level, m (how often a true match
//! reaches that level) and u (how often a non-match does); a level's weight
//! is log2(m / u) bits of evidence.
//!
//! One twist on the textbook sum: a contact is a person at a business, and
//! colleagues share every business field (switchboard phone, website,
//! address). Summing everything would let those shared fields outvote two
//! clearly different names. So the evidence is read in two parts:
//! - business: prior + every non-personal field, giving P(same business);
//! - person: `person_prior` (two records of one business naming people are
//!   about the same one) + the name fields, giving P(same person | same
//!   business), used only when both records name someone.
//!
//! P(same contact) = P(same business) x P(same person | same business),
//! reported as a weight in bits (log2 of the odds), which is what
//! [`crate::Thresholds`] compare.
//!
//! The parameters are estimated from data ([`crate::train`]): u from random
//! pairs, m and the prior by expectation-maximisation over blocked pairs, as
//! Splink does. [`Model::default`] holds an estimate made that way, see
//! `docs/benchmarks.md` for the run.

use crate::compare::{compare, Field, Gamma, FIELD_COUNT};
use crate::frequency::{Penalties, TermFrequencies};
use crate::Prepared;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// m and u of one field's levels ([`Field::levels`] order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldParams {
    pub m: Vec<f64>,
    pub u: Vec<f64>,
}

/// A trained model: what `dedupe.model` in the configuration may override.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// P(same business) of a blocked pair before any field is compared.
    pub prior: f64,
    /// P(same person) of two records of one business that both name someone.
    pub person_prior: f64,
    /// Per field, in [`Field::ALL`] order.
    pub fields: Vec<FieldParams>,
}

fn p(m: &[f64], u: &[f64]) -> FieldParams {
    FieldParams {
        m: m.to_vec(),
        u: u.to_vec(),
    }
}

impl Default for Model {
    /// Estimated with `bizcontacts-bench dedupe-train --mode hard` (EM, no
    /// labels; `docs/benchmarks.md` has the run), then rounded, with every m
    /// kept at 0.01 or more: the generator never changes a business's
    /// website or country between duplicates, and real sources do, so no
    /// disagreement is allowed to count as near-impossible for a match.
    /// Two judgements on top:
    /// - a company name unlike in every way keeps m = 0.001, so an email or
    ///   phone shared by two unrelated names goes to a reviewer;
    /// - u of an exact company name is 0.002, not the generator's 0.00012:
    ///   real corpora hold chains and generic names ("Main Street Dental"),
    ///   and without term frequencies one u serves them all.
    fn default() -> Self {
        Model {
            prior: 0.33,
            person_prior: 0.83,
            fields: vec![
                p(&[0.73, 0.27], &[0.000_1, 0.999_9]),
                p(&[0.57, 0.40, 0.03], &[0.000_06, 0.000_02, 0.999_92]),
                p(&[0.97, 0.03], &[0.000_1, 0.999_9]),
                p(&[0.87, 0.10, 0.029, 0.001], &[0.002, 0.002, 0.023, 0.973]),
                p(
                    &[0.66, 0.28, 0.038, 0.022],
                    &[0.036, 0.007_4, 0.020, 0.936_6],
                ),
                p(
                    &[0.61, 0.30, 0.076, 0.014],
                    &[0.038_6, 0.006_8, 0.002_1, 0.952_5],
                ),
                p(&[0.70, 0.267, 0.033], &[0.000_4, 0.000_08, 0.999_52]),
                p(&[0.80, 0.17, 0.03], &[0.035, 0.004, 0.961]),
                p(&[0.85, 0.14, 0.01], &[0.000_1, 0.000_5, 0.999_4]),
                p(&[0.99, 0.01], &[0.25, 0.75]),
            ],
        }
    }
}

impl Model {
    /// Refuses parameters that would give infinite or reversed evidence.
    pub fn check(&self) -> Result<(), String> {
        let unit = |x: f64| x > 0.0 && x < 1.0;
        if !unit(self.prior) || !unit(self.person_prior) {
            return Err("prior and person_prior must be between 0 and 1".into());
        }
        if self.fields.len() != FIELD_COUNT {
            return Err(format!("fields: {FIELD_COUNT} entries expected"));
        }
        for (f, params) in Field::ALL.iter().zip(&self.fields) {
            let n = f.levels().len();
            if params.m.len() != n || params.u.len() != n {
                return Err(format!("{}: {n} levels expected", f.as_str()));
            }
            if params.m.iter().chain(&params.u).any(|x| !unit(*x)) {
                return Err(format!("{}: m and u must be between 0 and 1", f.as_str()));
            }
        }
        Ok(())
    }

    /// The weights, computed once.
    pub fn weights(&self) -> Weights {
        let mut w = [[0f32; 4]; FIELD_COUNT];
        let mut u_exact = [0f64; FIELD_COUNT];
        for (i, params) in self.fields.iter().enumerate() {
            u_exact[i] = params.u[0];
            for (l, (m, u)) in params.m.iter().zip(&params.u).enumerate() {
                w[i][l] = (m / u).log2() as f32;
            }
        }
        Weights {
            prior: logit2(self.prior),
            person_prior: logit2(self.person_prior),
            w,
            u_exact,
            penalties: Arc::default(),
        }
    }
}

fn logit2(p: f64) -> f32 {
    (p / (1.0 - p)).log2() as f32
}

/// P from a weight in bits.
pub fn probability(weight: f32) -> f64 {
    1.0 / (1.0 + (-weight as f64).exp2())
}

/// log2 odds of a probability, clamped to what an f32 shows.
pub fn weight_of(p: f64) -> f32 {
    logit2(p.clamp(1e-12, 1.0 - 1e-12))
}

/// Precomputed log2(m/u) per field and level, with the term-frequency
/// adjustments of frequent values ([`crate::frequency`]).
#[derive(Debug, Clone)]
pub struct Weights {
    prior: f32,
    person_prior: f32,
    w: [[f32; 4]; FIELD_COUNT],
    u_exact: [f64; FIELD_COUNT],
    /// Shared: every dedupe chunk clones the weights.
    penalties: Arc<Penalties>,
}

/// P(same business) x P(same person), as a weight.
fn combine(parts: (f32, Option<f32>)) -> f32 {
    match parts {
        (b, None) => b,
        (b, Some(p)) => weight_of(probability(b) * probability(p)),
    }
}

/// Why a pair scored what it did: each field's level and bits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// The pair's weight in bits (log2 odds of being one contact).
    #[serde(serialize_with = "short::bits")]
    pub weight: f32,
    pub probability: f64,
    /// P(same business) and, when both name someone, P(same person | same business).
    pub business: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person: Option<f64>,
    pub fields: Vec<Contribution>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contribution {
    pub field: Field,
    pub level: &'static str,
    /// The field's evidence, term-frequency adjustment included.
    #[serde(serialize_with = "short::bits")]
    pub bits: f32,
    /// What agreeing on a value this common took off `bits`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "short::some_bits"
    )]
    pub term_frequency: Option<f32>,
}

/// Two decimals say all there is; every merged row keeps its explanation.
fn round2(bits: f32) -> f32 {
    (bits * 100.0).round() / 100.0
}

/// Bits as the two decimals [`round2`] kept: every merged row keeps its
/// explanation (in `staged_rows`, as jsonb), and an f32 widened to f64
/// prints as 12.829999923706055. Probabilities keep every digit: near 1,
/// rounding would make 0.9999999 and 1 look the same.
mod short {
    use serde::Serializer;

    pub fn bits<S: Serializer>(x: &f32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((f64::from(*x) * 100.0).round() / 100.0)
    }

    pub fn some_bits<S: Serializer>(x: &Option<f32>, s: S) -> Result<S::Ok, S::Error> {
        match x {
            Some(x) => bits(x, s),
            None => s.serialize_none(),
        }
    }
}

impl Weights {
    /// These weights, exact agreement on the frequent values of `tf`
    /// counting for less.
    pub fn with_term_frequencies(mut self, tf: &TermFrequencies) -> Self {
        self.penalties = Arc::new(tf.penalties(&self.u_exact));
        self
    }

    /// (business weight, person weight if both name someone).
    fn parts(&self, g: &Gamma, adj: &[f32; FIELD_COUNT]) -> (f32, Option<f32>) {
        let (mut business, mut person, mut named) = (self.prior, self.person_prior, false);
        for (i, level) in g.iter().enumerate() {
            let Some(l) = level else { continue };
            let bits = self.w[i][*l as usize] + adj[i];
            if Field::ALL[i].is_personal() {
                person += bits;
                named = true;
            } else {
                business += bits;
            }
        }
        (business, named.then_some(person))
    }

    /// The weight of a comparison vector, values unseen (no term
    /// frequencies): what training and its reports use.
    pub fn weight(&self, g: &Gamma) -> f32 {
        combine(self.parts(g, &[0.0; FIELD_COUNT]))
    }

    /// The evidence that `a` and `b` are one contact, in bits; symmetric.
    pub fn score(&self, a: &Prepared, b: &Prepared) -> f32 {
        let g = compare(a, b);
        combine(self.parts(&g, &self.penalties.of(a, b, &g)))
    }

    pub fn explain(&self, a: &Prepared, b: &Prepared) -> Explanation {
        let g = compare(a, b);
        let adj = self.penalties.of(a, b, &g);
        let (business, person) = self.parts(&g, &adj);
        let weight = combine((business, person));
        Explanation {
            weight,
            probability: probability(weight),
            business: probability(business),
            person: person.map(probability),
            fields: g
                .iter()
                .enumerate()
                .filter_map(|(i, l)| {
                    let l = (*l)? as usize;
                    let f = Field::ALL[i];
                    Some(Contribution {
                        field: f,
                        level: f.levels()[l],
                        bits: round2(self.w[i][l] + adj[i]),
                        term_frequency: (adj[i] != 0.0).then(|| round2(adj[i])),
                    })
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_model_is_checked() {
        assert_eq!(Model::default().check(), Ok(()));
        let mut m = Model::default();
        m.fields[1].m.pop();
        assert!(m.check().unwrap_err().contains("phone: 3 levels"));
        let mut m = Model::default();
        m.fields[0].u[0] = 0.0;
        assert!(m.check().unwrap_err().contains("email"));
        let m = Model {
            prior: 1.0,
            ..Model::default()
        };
        assert!(m.check().is_err());
    }

    #[test]
    fn weights_are_log2_m_over_u_and_explanations_add_up() {
        let w = Model::default().weights();
        let a = Prepared::new(&crate::Record {
            company_name: Some("Acme".into()),
            email: Some("a@acme.example".into()),
            country: Some("US".into()),
            ..Default::default()
        });
        let why = w.explain(&a, &a);
        assert!(why.person.is_none(), "no one named");
        let email = &why.fields[0];
        assert_eq!((email.field, email.level), (Field::Email, "exact"));
        assert!((email.bits - (0.73f32 / 0.0001).log2()).abs() < 0.01);
        let sum: f32 = why.fields.iter().map(|c| c.bits).sum::<f32>() + w.prior;
        assert!((sum - why.weight).abs() < 0.05, "{sum} vs {}", why.weight);
    }

    #[test]
    fn explanations_serialize_as_short_decimals() {
        let w = Model::default().weights();
        let a = Prepared::new(&crate::Record {
            company_name: Some("Acme".into()),
            email: Some("a@acme.example".into()),
            ..Default::default()
        });
        let json = serde_json::to_value(w.explain(&a, &a)).unwrap();
        for bits in [&json["fields"][0]["bits"], &json["weight"]] {
            let bits = bits.as_f64().unwrap();
            assert_eq!(bits, (bits * 100.0).round() / 100.0, "{bits}");
        }
        assert!(json.to_string().len() < 250, "{json}");
    }
}
