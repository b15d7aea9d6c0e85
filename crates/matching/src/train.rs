//! Estimating a [`Model`] from unlabelled pairs, as Splink does:
//! - u from random pairs ([`estimate_u`]): nearly all of them are
//!   non-matches, so how often they agree is how often agreement is chance;
//! - m and the prior by expectation-maximisation over blocked pairs
//!   ([`estimate_m`]), u held fixed: each round scores every pair with the
//!   current m, then sets m to the levels' share among pairs weighted by
//!   their match probability.
//!
//! Pairs are counted by distinct comparison vector, so a round costs the
//! number of distinct vectors (a few thousand), not of pairs.

use crate::compare::{Field, Gamma};
use crate::model::{FieldParams, Model};
use std::collections::HashMap;

/// Level frequencies among `pairs`, per field, with one pseudo-count per
/// level so that no level is impossible.
fn level_shares(pairs: &HashMap<Gamma, f64>, weight: impl Fn(&Gamma) -> f64) -> Vec<Vec<f64>> {
    Field::ALL
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut counts = vec![0.01; f.levels().len()];
            for (g, n) in pairs {
                if let Some(l) = g[i] {
                    counts[l as usize] += n * weight(g);
                }
            }
            let total: f64 = counts.iter().sum();
            counts.iter().map(|c| c / total).collect()
        })
        .collect()
}

fn count(pairs: impl IntoIterator<Item = Gamma>) -> HashMap<Gamma, f64> {
    let mut counts = HashMap::new();
    for g in pairs {
        *counts.entry(g).or_insert(0.0) += 1.0;
    }
    counts
}

/// u per field and level, from random pairs.
pub fn estimate_u(random_pairs: impl IntoIterator<Item = Gamma>) -> Vec<Vec<f64>> {
    level_shares(&count(random_pairs), |_| 1.0)
}

/// What an EM run found.
#[derive(Debug, Clone)]
pub struct Trained {
    pub model: Model,
    pub iterations: usize,
    /// Largest change of any m in the last round.
    pub change: f64,
}

/// m and the prior by EM over `blocked_pairs`, starting from `start` with
/// its u replaced by `u`. Stops after `max_rounds` or when no m moves by
/// more than 1e-5.
///
/// As in Splink, EM runs in sessions, one per entry of `sessions`: a
/// session takes the pairs that agree exactly on its fields, and estimates
/// m of every other field from them (the fields it selected on say nothing
/// there). Within such a block most pairs are matches and the two classes
/// are far apart, where EM over all candidate pairs at once can settle on
/// "same city" as its match class. Each field's m is the mean of the
/// sessions that estimated it; the prior is then the expected share of
/// matches among all `blocked_pairs`.
///
/// Sessions estimate the business fields only: colleagues share every one of
/// those, so pairs agreeing on a phone hold colleagues as well as
/// duplicates, and the names' m taken from them would be P(level | same
/// business). The names are estimated last, with the model's own split
/// ([`crate::model`]): EM over the name fields alone, among the pairs the
/// business fields already call the same business (P >= 0.99), gives their m
/// and `person_prior`, P(same person | same business).
pub fn estimate_m(
    blocked_pairs: impl IntoIterator<Item = Gamma>,
    u: &[Vec<f64>],
    start: &Model,
    sessions: &[&[Field]],
    max_rounds: usize,
) -> Trained {
    let pairs = count(blocked_pairs);
    let mut model = start.clone();
    for (f, u) in model.fields.iter_mut().zip(u) {
        f.u = u.clone();
    }
    let mut sums: Vec<Option<Vec<f64>>> = vec![None; model.fields.len()];
    let mut counts = vec![0.0; model.fields.len()];
    let (mut iterations, mut change) = (0, 0f64);
    for fixed in sessions {
        let idx: Vec<usize> = fixed
            .iter()
            .map(|f| Field::ALL.iter().position(|x| x == f).expect("a field"))
            .collect();
        let block = project(
            pairs
                .iter()
                .filter(|(g, _)| idx.iter().all(|i| g[*i] == Some(0))),
            |i| idx.contains(&i) || Field::ALL[i].is_personal(),
        );
        if block.is_empty() {
            continue;
        }
        let run = em(&block, &model, max_rounds);
        iterations += run.iterations;
        change = change.max(run.change);
        for (i, f) in run.model.fields.iter().enumerate() {
            if idx.contains(&i) || Field::ALL[i].is_personal() {
                continue;
            }
            let sum = sums[i].get_or_insert_with(|| vec![0.0; f.m.len()]);
            for (s, m) in sum.iter_mut().zip(&f.m) {
                *s += m;
            }
            counts[i] += 1.0;
        }
    }
    for (i, f) in model.fields.iter_mut().enumerate() {
        if let Some(sum) = &sums[i] {
            f.m = sum.iter().map(|s| s / counts[i]).collect();
        }
    }
    let business = project(pairs.iter(), |i| Field::ALL[i].is_personal());
    let total: f64 = business.values().sum();
    let matches: f64 = business.iter().map(|(g, n)| n * posterior(&model, g)).sum();
    model.prior = (matches / total).clamp(1e-6, 1.0 - 1e-6);

    let named = |g: &Gamma| {
        Field::ALL
            .iter()
            .enumerate()
            .any(|(i, f)| f.is_personal() && g[i].is_some())
    };
    let same_business = project(
        pairs.iter().filter(|(g, _)| {
            let b = business_part(g);
            named(g) && posterior(&model, &b) >= 0.99
        }),
        |i| !Field::ALL[i].is_personal(),
    );
    if !same_business.is_empty() {
        let mut start = model.clone();
        start.prior = model.person_prior;
        let run = em(&same_business, &start, max_rounds);
        iterations += run.iterations;
        change = change.max(run.change);
        for (i, f) in model.fields.iter_mut().enumerate() {
            if Field::ALL[i].is_personal() {
                f.m = run.model.fields[i].m.clone();
            }
        }
        model.person_prior = run.model.prior;
    }
    Trained {
        model,
        iterations,
        change,
    }
}

fn business_part(g: &Gamma) -> Gamma {
    let mut b = *g;
    for (i, f) in Field::ALL.iter().enumerate() {
        if f.is_personal() {
            b[i] = None;
        }
    }
    b
}

/// Pairs with the fields `drop` selects set to missing, counted again.
fn project<'a>(
    pairs: impl Iterator<Item = (&'a Gamma, &'a f64)>,
    drop: impl Fn(usize) -> bool,
) -> HashMap<Gamma, f64> {
    let mut out = HashMap::new();
    for (g, n) in pairs {
        let mut g = *g;
        for (i, level) in g.iter_mut().enumerate() {
            if drop(i) {
                *level = None;
            }
        }
        *out.entry(g).or_insert(0.0) += n;
    }
    out
}

fn posterior(model: &Model, g: &Gamma) -> f64 {
    let (mut lm, mut lu) = (model.prior.ln(), (1.0 - model.prior).ln());
    for (i, level) in g.iter().enumerate() {
        if let Some(l) = level {
            lm += model.fields[i].m[*l as usize].ln();
            lu += model.fields[i].u[*l as usize].ln();
        }
    }
    1.0 / (1.0 + (lu - lm).exp())
}

/// One EM run over `pairs` from `start` (u fixed).
fn em(pairs: &HashMap<Gamma, f64>, start: &Model, max_rounds: usize) -> Trained {
    let total: f64 = pairs.values().sum();
    let mut model = start.clone();
    let (mut change, mut rounds) = (f64::MAX, 0);
    while rounds < max_rounds && change > 1e-5 {
        rounds += 1;
        let post: HashMap<Gamma, f64> = pairs.keys().map(|g| (*g, posterior(&model, g))).collect();
        let m = level_shares(pairs, |g| post[g]);
        change = model
            .fields
            .iter()
            .zip(&m)
            .flat_map(|(f, m)| f.m.iter().zip(m).map(|(a, b)| (a - b).abs()))
            .fold(0.0, f64::max);
        for (f, m) in model.fields.iter_mut().zip(m) {
            f.m = m;
        }
        let matches: f64 = pairs.iter().map(|(g, n)| n * post[g]).sum();
        model.prior = (matches / total).clamp(1e-6, 1.0 - 1e-6);
    }
    Trained {
        model,
        iterations: rounds,
        change,
    }
}

/// The model as YAML for `dedupe.model`, rounded to what matters.
pub fn to_yaml(model: &Model) -> String {
    let list = |v: &[f64]| {
        v.iter()
            // Six decimals, kept inside (0, 1) as `Model::check` wants.
            .map(|x| format!("{:.6}", x.clamp(1e-6, 1.0 - 1e-6)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut s = format!(
        "model:\n  prior: {:.6}\n  person_prior: {:.4}\n  fields:\n",
        model.prior, model.person_prior
    );
    for (f, FieldParams { m, u }) in Field::ALL.iter().zip(&model.fields) {
        s.push_str(&format!(
            "    # {} ({})\n    - {{ m: [{}], u: [{}] }}\n",
            f.as_str(),
            f.levels().join(", "),
            list(m),
            list(u)
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::FIELD_COUNT;

    /// Pairs drawn from a known model: EM finds its m and prior again.
    #[test]
    fn em_recovers_the_parameters_it_was_given() {
        let truth = Model::default();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut uniform = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let draw = |shares: &[f64], r: f64| {
            let mut acc = 0.0;
            for (l, s) in shares.iter().enumerate() {
                acc += s;
                if r < acc {
                    return Some(l as u8);
                }
            }
            Some(shares.len() as u8 - 1)
        };
        let prior = 0.2;
        let mut blocked = Vec::new();
        for _ in 0..200_000 {
            let is_match = uniform() < prior;
            let mut g: Gamma = [None; FIELD_COUNT];
            for (i, f) in truth.fields.iter().enumerate() {
                let shares = if is_match { &f.m } else { &f.u };
                g[i] = draw(shares, uniform());
            }
            blocked.push(g);
        }
        let u: Vec<Vec<f64>> = truth.fields.iter().map(|f| f.u.clone()).collect();
        let mut start = truth.clone();
        for f in &mut start.fields {
            let n = f.m.len() as f64;
            f.m = (0..f.m.len())
                .map(|l| if l == 0 { 0.5 } else { 0.5 / (n - 1.0) })
                .collect();
        }
        start.prior = 0.01;
        let trained = estimate_m(blocked, &u, &start, &[&[]], 200);
        assert!(
            (trained.model.prior - prior).abs() < 0.01,
            "{}",
            trained.model.prior
        );
        for (got, want) in trained.model.fields.iter().zip(&truth.fields) {
            for (g, w) in got.m.iter().zip(&want.m) {
                assert!((g - w).abs() < 0.02, "m {g} vs {w}");
            }
        }
    }
}
