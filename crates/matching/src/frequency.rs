//! Term frequencies: agreeing on a common value is weaker evidence than
//! agreeing on a rare one. Two "John Smith"s, or two "Main Street Dental"s
//! in different towns, meet far more often by chance than the average
//! exact agreement the model's u says (Splink's term-frequency adjustment).
//!
//! For company, first and last name, the share of the corpus each frequent
//! value holds is counted ([`Counter`]): for a person name, the share of
//! contacts; for a company name, the share of places (company with city)
//! bearing it, because one business with fifty staff in the corpus is no
//! common name, a chain or a generic name in fifty towns is.
//!
//! An exact agreement on a value whose share exceeds the field's u(exact)
//! has its weight lowered from log2(m/u) to log2(m/share). Only lowered:
//! values rarer than average keep the model's weight, so a corpus too small
//! to count in (no value reaches `min_count`) scores exactly as without
//! frequencies, and knowing only the frequent values is enough.

use crate::compare::{Field, Gamma, FIELD_COUNT};
use crate::{block_id, Prepared};
use std::collections::{HashMap, HashSet};

/// The fields whose exact agreement is adjusted.
pub const TERM_FIELDS: [Field; 3] = [Field::Company, Field::FirstName, Field::LastName];

/// Frequent values per field with their counts, and what they count out of.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TermFrequencies {
    /// (field, value, count), values as [`Prepared`] holds them.
    pub values: Vec<(Field, String, u64)>,
    /// Per [`TERM_FIELDS`] entry: contacts (names) or places (company)
    /// counted, the denominator of every share.
    pub totals: [u64; 3],
}

/// Counts the values of a stream of records; keeps the frequent ones.
#[derive(Debug, Default)]
pub struct Counter {
    first: HashMap<String, u64>,
    last: HashMap<String, u64>,
    company: HashMap<String, u64>,
    /// (company, city) places seen, hashed: a place counts once however
    /// many of its people the corpus holds.
    places: HashSet<i64>,
    contacts: u64,
}

impl Counter {
    pub fn add(&mut self, p: &Prepared) {
        self.contacts += 1;
        for (map, value) in [(&mut self.first, &p.first), (&mut self.last, &p.last)] {
            if !value.is_empty() {
                *map.entry(value.clone()).or_default() += 1;
            }
        }
        if !p.company.is_empty()
            && self
                .places
                .insert(block_id(&format!("{}|{}", p.company, p.city)))
        {
            *self.company.entry(p.company.clone()).or_default() += 1;
        }
    }

    /// The values counted `min_count` times or more.
    pub fn finish(self, min_count: u64) -> TermFrequencies {
        let totals = [
            self.places.len() as u64,
            self.first.values().sum(),
            self.last.values().sum(),
        ];
        let mut values: Vec<(Field, String, u64)> = [
            (Field::Company, self.company),
            (Field::FirstName, self.first),
            (Field::LastName, self.last),
        ]
        .into_iter()
        .flat_map(|(field, map)| {
            map.into_iter()
                .filter(|(_, n)| *n >= min_count.max(1))
                .map(move |(v, n)| (field, v, n))
        })
        .collect();
        // Deterministic order: what is stored and compared in tests.
        values.sort_unstable_by(|a, b| (a.0 as u8, &a.1).cmp(&(b.0 as u8, &b.1)));
        TermFrequencies { values, totals }
    }
}

impl TermFrequencies {
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Per field, the bits (negative) an exact agreement on each frequent
    /// value loses, given the field's u(exact) in [`Field::ALL`] order.
    pub(crate) fn penalties(&self, u_exact: &[f64; FIELD_COUNT]) -> Penalties {
        let mut maps: [HashMap<String, f32>; 3] = Default::default();
        for (field, value, count) in &self.values {
            let Some(i) = TERM_FIELDS.iter().position(|f| f == field) else {
                continue;
            };
            let total = self.totals[i];
            if total == 0 {
                continue;
            }
            let share = *count as f64 / total as f64;
            let bits = (u_exact[*field as usize] / share).log2();
            if bits < 0.0 {
                maps[i].insert(value.clone(), bits as f32);
            }
        }
        Penalties(maps)
    }
}

/// Per [`TERM_FIELDS`] entry, value -> bits lost on exact agreement.
#[derive(Debug, Clone, Default)]
pub(crate) struct Penalties([HashMap<String, f32>; 3]);

impl Penalties {
    fn get(&self, i: usize, value: &str) -> f32 {
        self.0[i].get(value).copied().unwrap_or(0.0)
    }

    /// The adjustment of each field's weight for this pair: only fields
    /// that agree exactly are touched.
    pub(crate) fn of(&self, a: &Prepared, b: &Prepared, g: &Gamma) -> [f32; FIELD_COUNT] {
        let mut adj = [0f32; FIELD_COUNT];
        if self.0.iter().all(HashMap::is_empty) {
            return adj;
        }
        if g[Field::Company as usize] == Some(0) {
            adj[Field::Company as usize] = self.get(0, &a.company);
        }
        // Read swapped (see `compare::names`), an agreeing value sits in
        // the other column on one side: each of those values serves one
        // exact slot, the larger of its two penalties first (the cautious
        // reading).
        let mut crossed: Vec<f32> = [(&a.first, &b.last), (&a.last, &b.first)]
            .into_iter()
            .filter(|(x, y)| !x.is_empty() && x == y)
            .map(|(v, _)| self.get(1, v).min(self.get(2, v)))
            .collect();
        crossed.sort_unstable_by(f32::total_cmp);
        let mut crossed = crossed.into_iter();
        for (i, field, mine, theirs) in [
            (1, Field::FirstName, &a.first, &b.first),
            (2, Field::LastName, &a.last, &b.last),
        ] {
            if g[field as usize] == Some(0) {
                adj[field as usize] = if mine == theirs {
                    self.get(i, mine)
                } else {
                    crossed.next().unwrap_or(0.0)
                };
            }
        }
        adj
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Record;

    fn person(first: &str, last: &str, company: &str, city: &str) -> Prepared {
        Prepared::new(&Record {
            first_name: Some(first.into()),
            last_name: Some(last.into()),
            company_name: Some(company.into()),
            city: Some(city.into()),
            ..Default::default()
        })
    }

    #[test]
    fn a_company_counts_once_per_place_and_names_once_per_contact() {
        let mut c = Counter::default();
        for i in 0..30 {
            // One big business in one town, and a chain in thirty.
            c.add(&person("Ann", &format!("Staff{i}"), "Acme Ltd", "Leeds"));
            c.add(&person(
                "John",
                "Smith",
                "Main Street Dental",
                &format!("Town{i}"),
            ));
        }
        let tf = c.finish(20);
        assert_eq!(tf.totals, [31, 60, 60]);
        assert_eq!(
            tf.values,
            vec![
                (Field::Company, "main street dental".into(), 30),
                (Field::FirstName, "ann".into(), 30),
                (Field::FirstName, "john".into(), 30),
                (Field::LastName, "smith".into(), 30),
            ]
        );
    }

    #[test]
    fn only_values_commoner_than_u_lose_bits_and_only_on_exact_agreement() {
        let tf = TermFrequencies {
            values: vec![
                (Field::Company, "rare".into(), 1),
                (Field::LastName, "smith".into(), 100),
            ],
            totals: [1000, 1000, 1000],
        };
        let mut u = [0.5; FIELD_COUNT];
        u[Field::Company as usize] = 0.01;
        u[Field::LastName as usize] = 0.025;
        let p = tf.penalties(&u);
        assert!(p.0[0].is_empty(), "0.001 < u: no change");
        assert!((p.get(2, "smith") - (0.25f32).log2()).abs() < 1e-6);
        let a = person("Jo", "Smith", "X", "");
        let b = person("Al", "Smith", "Y", "");
        let g = crate::compare(&a, &b);
        assert_eq!(p.of(&a, &b, &g)[Field::LastName as usize], -2.0);
        let c = person("Jo", "Smyth", "X", "");
        let g = crate::compare(&a, &c);
        assert_eq!(p.of(&a, &c, &g), [0.0; FIELD_COUNT], "not exact");
        // Swapped columns: "Smith" agrees across them.
        let d = person("Smith", "Jo", "X", "");
        let g = crate::compare(&a, &d);
        let adj = p.of(&a, &d, &g);
        assert_eq!(adj.iter().sum::<f32>(), -2.0, "{adj:?}");
    }
}
