//! `bizcontacts-bench dedupe-train`: the matching model estimated and
//! checked in memory, without the database.
//!
//! Records (generated, or FEBRL with `--febrl`) go through the import's own
//! normalization, then blocking as the dedupe job does it. It reports:
//! - blocking: candidate pairs, the share of true pairs that share a key
//!   (no scorer can merge a pair blocking never shows it), and keys over
//!   the block cap;
//! - u from 1,000,000 random pairs, m and the prior by EM over the
//!   candidate pairs (no labels used), printed as `dedupe.model` YAML;
//! - pair-level precision and recall at the configured thresholds, for the
//!   built-in model and for the one just trained (labels used only here).
//!
//! The dedupe job itself is measured by `dedupe-quality` (clusters, through
//! the database); this is the quick loop for changing keys or levels.

use crate::corpus::{labelled, Mode, HEADER};
use crate::febrl;
use bizcontacts_config::Settings;
use bizcontacts_demo::Rng;
use bizcontacts_ingest::{Layout, Stager};
use bizcontacts_matching::model::Model;
use bizcontacts_matching::train::{estimate_m, estimate_u, to_yaml};
use bizcontacts_matching::{compare, Field, Matcher, Prepared, Thresholds, Verdict};
use bizcontacts_store::corpus::Values;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

/// Records with the entity each belongs to.
pub type Labelled = Vec<(usize, Vec<String>)>;

/// Normalized as an import would; rows the import would refuse are kept
/// when `lenient` (FEBRL has no company, which our imports require).
pub fn prepare(records: &Labelled, lenient: bool) -> anyhow::Result<Vec<(usize, Prepared)>> {
    let layout = Layout::from_header(b',', HEADER).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let stager = Stager::new(&layout);
    let mut out = Vec::with_capacity(records.len());
    for (i, (entity, r)) in records.iter().enumerate() {
        let record = csv::StringRecord::from(r.clone());
        let staged = stager.stage(i as i32 + 1, &record);
        anyhow::ensure!(
            lenient || staged.errors.is_empty(),
            "record {r:?} did not validate: {:?}",
            staged.errors
        );
        let values = Values(staged.contact.columns().map(|v| v.map(String::from)));
        out.push((*entity, Prepared::new(&values.record())));
    }
    Ok(out)
}

/// Candidate pairs (i < j) that share a key, leaving out keys shared by
/// more than `cap` records, each with the kinds of key (`e`, `ml`, ...: bits
/// into the returned names) that brought it; and how many keys were left out.
pub fn candidates(records: &[(usize, Prepared)], cap: usize) -> (Pairs, Vec<String>, usize) {
    let mut blocks: HashMap<String, Vec<u32>> = HashMap::new();
    for (i, (_, p)) in records.iter().enumerate() {
        for k in p.blocking_keys() {
            blocks.entry(k).or_default().push(i as u32);
        }
    }
    let mut pairs: HashMap<(u32, u32), u32> = HashMap::new();
    let mut kinds: Vec<String> = vec![];
    let mut capped = 0;
    // Pairs each kind of key brings (before removing those another brought).
    let mut by_kind: std::collections::BTreeMap<String, u64> = Default::default();
    for (key, ids) in &blocks {
        if ids.len() > cap {
            capped += 1;
            continue;
        }
        let kind = key.split(':').next().unwrap_or("").to_string();
        let bit = match kinds.iter().position(|k| *k == kind) {
            Some(i) => i,
            None => {
                kinds.push(kind.clone());
                kinds.len() - 1
            }
        };
        *by_kind.entry(kind).or_default() += (ids.len() * (ids.len() - 1) / 2) as u64;
        for (x, a) in ids.iter().enumerate() {
            for b in &ids[x + 1..] {
                *pairs.entry((*a.min(b), *a.max(b))).or_default() |= 1 << bit;
            }
        }
    }
    println!("pairs per kind of key: {by_kind:?}");
    let mut pairs: Pairs = pairs.into_iter().collect();
    pairs.sort_unstable();
    (pairs, kinds, capped)
}

/// Candidate pairs with the kinds of key that brought each, as bits.
pub type Pairs = Vec<((u32, u32), u32)>;

/// For each kind of key, the true pairs the matcher merges that no other
/// kind brings: what leaving that kind out would lose. (A kind that loses
/// none on every data set is only cost: an index entry per contact and a
/// probe per row.)
fn only_by_kind(m: &Matcher, records: &[(usize, Prepared)], pairs: &Pairs, kinds: &[String]) {
    let mut only: std::collections::BTreeMap<&str, u64> =
        kinds.iter().map(|k| (k.as_str(), 0)).collect();
    for &((a, b), mask) in pairs {
        let (ea, pa) = &records[a as usize];
        let (eb, pb) = &records[b as usize];
        if mask.count_ones() == 1 && ea == eb && m.verdict(m.score(pa, pb)) == Verdict::Same {
            *only
                .entry(&kinds[mask.trailing_zeros() as usize])
                .or_default() += 1;
        }
    }
    println!("true pairs merged that only one kind of key brings: {only:?}");
}

fn true_pairs(records: &[(usize, Prepared)]) -> u64 {
    let mut per: HashMap<usize, u64> = HashMap::new();
    for (e, _) in records {
        *per.entry(*e).or_default() += 1;
    }
    per.values().map(|n| n * n.saturating_sub(1) / 2).sum()
}

fn evaluate(name: &str, m: &Matcher, records: &[(usize, Prepared)], pairs: &Pairs) {
    let (mut tp, mut fp, mut review_true, mut review) = (0u64, 0u64, 0u64, 0u64);
    for &((a, b), _) in pairs {
        let (ea, pa) = &records[a as usize];
        let (eb, pb) = &records[b as usize];
        match m.verdict(m.score(pa, pb)) {
            Verdict::Same if ea == eb => tp += 1,
            Verdict::Same => fp += 1,
            Verdict::Possible => {
                review += 1;
                review_true += u64::from(ea == eb);
            }
            Verdict::Different => {}
        }
    }
    let truth = true_pairs(records);
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    let recall = tp as f64 / truth.max(1) as f64;
    println!(
        "{name}: pairs merged {} ({fp} wrong): precision {precision:.4}, recall {recall:.4}; \
         {review} pairs for review ({review_true} true)",
        tp + fp
    );
}

pub fn run(
    settings: &Settings,
    entities: usize,
    mode: Mode,
    febrl_dir: Option<PathBuf>,
    model_out: Option<PathBuf>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let (source, records) = match &febrl_dir {
        Some(dir) => ("FEBRL 4a+4b".to_string(), febrl::load(dir)?),
        None => (
            format!("generated ({mode:?}, {entities} entities)"),
            labelled(entities, 0x5EED_DED0_0E11_0001, mode).records,
        ),
    };
    let records = prepare(&records, febrl_dir.is_some())?;
    let cap = settings.dedupe.max_block_size;
    let (pairs, kinds, capped) = candidates(&records, cap);
    let truth = true_pairs(&records);
    let blocked_true = pairs
        .iter()
        .filter(|((a, b), _)| records[*a as usize].0 == records[*b as usize].0)
        .count();
    println!(
        "dedupe-train on {source}: {} records, {truth} true pairs; blocking: {} candidate pairs, \
         {blocked_true} true ({:.4} of all true pairs), {capped} keys over the cap of {cap}",
        records.len(),
        pairs.len(),
        blocked_true as f64 / truth.max(1) as f64
    );
    let mut rng = Rng(0xA11C_E5ED_0000_0001);
    let n = records.len() as u64;
    let random = (0..1_000_000).map(|_| {
        let (a, b) = (rng.below(n) as usize, rng.below(n) as usize);
        compare(&records[a].1, &records[b].1)
    });
    let u = estimate_u(random);
    let vectors = pairs
        .iter()
        .map(|((a, b), _)| compare(&records[*a as usize].1, &records[*b as usize].1));
    // Splink's habit: sessions blocked on fields that rarely agree by chance.
    let sessions: &[&[Field]] = &[
        &[Field::Phone],
        &[Field::FirstName, Field::LastName],
        &[Field::Postcode],
        &[Field::Address],
    ];
    let trained = estimate_m(vectors, &u, &Model::default(), sessions, 500);
    println!(
        "EM: {} rounds, last change {:.2e}, prior {:.4}\n{}",
        trained.iterations,
        trained.change,
        trained.model.prior,
        to_yaml(&trained.model)
    );
    if let Some(path) = &model_out {
        std::fs::write(path, to_yaml(&trained.model))?;
        println!("model written to {}", path.display());
    }
    let thresholds = Thresholds::from_probabilities(
        settings.dedupe.merge_probability,
        settings.dedupe.possible_probability,
    );
    let built_in = Matcher::new(&Model::default(), thresholds);
    evaluate("built-in model", &built_in, &records, &pairs);
    only_by_kind(&built_in, &records, &pairs, &kinds);
    evaluate(
        "trained model",
        &Matcher::new(&trained.model, thresholds),
        &records,
        &pairs,
    );
    println!("in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
