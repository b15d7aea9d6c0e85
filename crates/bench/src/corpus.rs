//! Labelled contacts for `bench dedupe`: distinct businesses (entities), and
//! records of them with the variations real imports carry, at known rates.
//!
//! Each record keeps the entity it belongs to, so merges can be scored
//! against the truth. Hard negatives are built in: branches (the same name
//! in another city, with their own domain) and colleagues (another person at
//! the same business, sharing its phone, domain and address).

use bizcontacts_demo::LEGAL;
use bizcontacts_demo::{phone, slug, Rng, COUNTRIES, FIRST, LAST, SECOND, STREETS, TRADES, WORDS};

pub const HEADER: [&str; 10] = [
    "Company",
    "First Name",
    "Last Name",
    "Email",
    "Phone",
    "Website",
    "Address",
    "City",
    "Postcode",
    "Country",
];

/// A business contact as it truly is.
#[derive(Clone)]
pub struct Entity {
    company: String,
    legal: usize,
    first: &'static str,
    last: &'static str,
    email: String,
    /// (international, national) spellings of one number.
    phone: (String, String),
    domain: String,
    street: (u64, &'static str),
    city: &'static str,
    postcode: String,
    country: &'static str,
}

impl Entity {
    /// The `i`th business (distinct by construction: `i` is in its domain).
    pub fn new(rng: &mut Rng, i: usize) -> Self {
        let company = format!(
            "{} {} {}",
            rng.pick(WORDS),
            rng.pick(SECOND),
            rng.pick(TRADES)
        );
        let (country, cities) = COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize];
        let city = cities[rng.below(cities.len() as u64) as usize];
        let domain = format!("{}{}.example", slug(&company), i);
        let (first, last) = (rng.pick(FIRST), rng.pick(LAST));
        Entity {
            legal: rng.below(LEGAL.len() as u64) as usize,
            email: format!("{}.{}@{domain}", slug(first), slug(last)),
            phone: phone(rng, country),
            domain,
            street: (rng.below(300) + 1, rng.pick(STREETS)),
            city,
            postcode: format!("{:05}", rng.below(100_000)),
            country,
            company,
            first,
            last,
        }
    }

    /// The same name in another city: another business.
    pub fn branch(&self, rng: &mut Rng, i: usize) -> Self {
        let mut other = Entity::new(rng, i);
        other.company = self.company.clone();
        other.legal = self.legal;
        other
    }

    /// Another person at the same business.
    pub fn colleague(&self, rng: &mut Rng) -> Self {
        let mut other = self.clone();
        loop {
            (other.first, other.last) = (rng.pick(FIRST), rng.pick(LAST));
            if (other.first, other.last) != (self.first, self.last) {
                break;
            }
        }
        other.email = format!("{}.{}@{}", slug(other.first), slug(other.last), self.domain);
        other
    }

    /// The record as first imported.
    pub fn record(&self) -> Vec<String> {
        let legal = LEGAL[self.legal].0;
        vec![
            format!("{} {legal}", self.company).trim().to_string(),
            self.first.into(),
            self.last.into(),
            self.email.clone(),
            self.phone.0.clone(),
            format!("https://www.{}", self.domain),
            format!("{} {} Street", self.street.0, self.street.1),
            self.city.into(),
            self.postcode.clone(),
            self.country.into(),
        ]
    }

    /// 40% of sources write the legal form another way ("Inc" / ", Inc.").
    fn other_legal_form(&self, rng: &mut Rng, r: &mut [String]) {
        let legal = LEGAL[self.legal].1;
        if rng.below(100) < 40 {
            let form = legal[rng.below(legal.len() as u64) as usize];
            r[0] = format!("{} {form}", self.company).trim().replace(" ,", ",");
        }
    }

    /// The record as another source wrote it; the rates are what
    /// `bench dedupe-quality` reports as its injected noise.
    pub fn variant(&self, rng: &mut Rng) -> Vec<String> {
        let mut r = self.record();
        let p = |rng: &mut Rng, pct: u64| rng.below(100) < pct;
        self.other_legal_form(rng, &mut r);
        if p(rng, 15) {
            r[0] = r[0].to_uppercase();
        }
        if p(rng, 10) {
            r[0] = typo(rng, &r[0]);
        }
        if p(rng, 10) {
            r.swap(1, 2);
        }
        if p(rng, 25) {
            r[3] = r[3].to_uppercase();
        }
        if p(rng, 50) {
            r[4] = self.phone.1.clone();
        }
        if p(rng, 50) {
            r[5] = self.domain.clone();
        }
        if p(rng, 20) {
            r[6] = r[6].replace(" Street", " St");
        }
        if p(rng, 10) {
            r[7] = r[7].to_lowercase();
        }
        // Missing values: at most one of the three ways to reach the contact.
        match rng.below(100) {
            0..15 => r[3].clear(),
            15..30 => r[4].clear(),
            30..45 => r[5].clear(),
            _ => {}
        }
        if p(rng, 15) {
            r[8].clear();
        }
        if p(rng, 10) {
            r[6].clear();
        }
        r
    }

    /// The record as a careless source wrote it ([`Mode::Hard`]): the noise
    /// of person-and-address data, where most duplicates share no exact
    /// email or website, and a stated share no exact key at all.
    pub fn hard_variant(&self, rng: &mut Rng) -> Vec<String> {
        let mut r = self.record();
        let p = |rng: &mut Rng, pct: u64| rng.below(100) < pct;
        self.other_legal_form(rng, &mut r);
        if p(rng, 10) {
            r[0] = edits(rng, &r[0], 1);
        }
        // Names, street, suburb: one edit in 25%, two in 8%.
        for (field, pct) in [(1, 100), (2, 100), (6, 100), (7, 60)] {
            let n = match rng.below(100) * 100 / pct {
                0..25 => 1,
                25..33 => 2,
                _ => 0,
            };
            r[field] = edits(rng, &r[field], n);
        }
        if p(rng, 10) {
            r.swap(1, 2);
        }
        if p(rng, 20) {
            r[6] = r[6].replace(" Street", " St");
        }
        if p(rng, 15) {
            r[8] = edits_digits(rng, &r[8]);
        }
        // Keys: a third of the duplicates share none (no email, no website,
        // the phone with two digits transposed); the rest keep the phone
        // (85%; transposed otherwise) and lose email and website half the time.
        let keyless = p(rng, 33);
        if keyless || p(rng, 15) {
            r[4] = transpose_digits(rng, &r[4]);
        }
        if keyless || p(rng, 50) {
            r[3].clear();
        }
        if keyless || p(rng, 50) {
            r[5].clear();
        }
        // Missing values.
        for (field, pct) in [(1, 5), (2, 5), (6, 10), (8, 10)] {
            if p(rng, pct) {
                r[field].clear();
            }
        }
        r
    }
}

/// `n` random single-character edits (insert, delete, replace or swap two
/// neighbours) inside the letters of `s`, as people and OCR make them.
fn edits(rng: &mut Rng, s: &str, n: usize) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    for _ in 0..n {
        let letters: Vec<usize> = (1..chars.len().saturating_sub(1))
            .filter(|&i| chars[i].is_alphabetic() && chars[i + 1].is_alphabetic())
            .collect();
        if letters.is_empty() {
            break;
        }
        let i = letters[rng.below(letters.len() as u64) as usize];
        let letter = (b'a' + rng.below(26) as u8) as char;
        match rng.below(4) {
            0 => chars.swap(i, i + 1),
            1 => chars.insert(i, letter),
            2 => {
                chars.remove(i);
            }
            _ => chars[i] = letter,
        }
    }
    chars.into_iter().collect()
}

/// One digit of a code replaced.
fn edits_digits(rng: &mut Rng, s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    let digits: Vec<usize> = (0..chars.len())
        .filter(|&i| chars[i].is_ascii_digit())
        .collect();
    if let Some(&i) = digits.get(rng.below(digits.len().max(1) as u64) as usize) {
        chars[i] = char::from(b'0' + ((chars[i] as u8 - b'0' + 1 + rng.below(9) as u8) % 10));
    }
    chars.into_iter().collect()
}

/// Two different neighbouring digits of the subscriber number swapped
/// (the last four digits, so the number stays valid for its country).
fn transpose_digits(rng: &mut Rng, s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    let digits: Vec<usize> = (0..chars.len())
        .filter(|&i| chars[i].is_ascii_digit())
        .collect();
    let tail = &digits[digits.len().saturating_sub(4)..];
    let pairs: Vec<(usize, usize)> = tail
        .windows(2)
        .map(|w| (w[0], w[1]))
        .filter(|&(a, b)| chars[a] != chars[b])
        .collect();
    if pairs.is_empty() {
        return edits_digits(rng, s);
    }
    let (a, b) = pairs[rng.below(pairs.len() as u64) as usize];
    chars.swap(a, b);
    chars.into_iter().collect()
}

/// How `bench dedupe-quality` writes duplicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// [`Entity::variant`]: most duplicates keep an exact key.
    Classic,
    /// [`Entity::hard_variant`]: typos in names and address, a third of the
    /// duplicates with no exact key.
    Hard,
}

/// One adjacent transposition, or one letter replaced.
fn typo(rng: &mut Rng, s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    let letters: Vec<usize> = (1..chars.len().saturating_sub(1))
        .filter(|&i| chars[i].is_alphabetic() && chars[i + 1].is_alphabetic())
        .collect();
    if letters.is_empty() {
        return s.to_string();
    }
    let i = letters[rng.below(letters.len() as u64) as usize];
    if rng.below(2) == 0 {
        chars.swap(i, i + 1);
    } else {
        chars[i] = if chars[i] == 'e' { 'a' } else { 'e' };
    }
    chars.into_iter().collect()
}

/// A labelled set: records and the entity of each, shuffled.
pub struct Labelled {
    pub records: Vec<(usize, Vec<String>)>,
    pub entities: usize,
}

/// `n` entities (5% branches and 5% colleagues of another), each imported
/// once; 25% get one more record, 8% two, 2% three, as variants.
pub fn labelled(n: usize, seed: u64, mode: Mode) -> Labelled {
    let mut rng = Rng(seed);
    let mut entities: Vec<Entity> = Vec::with_capacity(n);
    for i in 0..n {
        let e = match (i > 0).then(|| rng.below(100)) {
            Some(0..5) => {
                let of = rng.below(i as u64) as usize;
                entities[of].branch(&mut rng, i)
            }
            Some(5..10) => {
                let of = rng.below(i as u64) as usize;
                entities[of].colleague(&mut rng)
            }
            _ => Entity::new(&mut rng, i),
        };
        entities.push(e);
    }
    let mut records = Vec::with_capacity(n * 3 / 2);
    for (i, e) in entities.iter().enumerate() {
        records.push((i, e.record()));
        let extra = match rng.below(100) {
            0..25 => 1,
            25..33 => 2,
            33..35 => 3,
            _ => 0,
        };
        for _ in 0..extra {
            records.push((
                i,
                match mode {
                    Mode::Classic => e.variant(&mut rng),
                    Mode::Hard => e.hard_variant(&mut rng),
                },
            ));
        }
    }
    // Fisher-Yates: duplicates arrive in any order, before their original too.
    for i in (1..records.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        records.swap(i, j);
    }
    Labelled {
        records,
        entities: n,
    }
}
