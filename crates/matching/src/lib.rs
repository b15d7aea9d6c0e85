//! Record linkage for the governed corpus, kept free of I/O so it can be
//! tested and measured on its own.
//!
//! Matching has three steps, as in every production entity-resolution system:
//! 1. **Blocking** ([`Prepared::blocking_keys`]): a record only meets the
//!    records that share one of its keys, so the work grows with the
//!    candidates, not with the corpus. Exact keys (email, website domain,
//!    company with city) and keys that survive typos (Double Metaphone
//!    codes of names with postcode or house number and street; house number
//!    with postcode; the E.164 phone with its last four digits sorted,
//!    which an exact phone shares too).
//! 2. **Comparison** ([`compare`]): per field, the level two values reach
//!    (exact, Jaro-Winkler bands, one edit, different, missing).
//! 3. **Scoring** ([`model`]): Fellegi-Sunter weights log2(m/u) per level,
//!    read as P(same business) x P(same person), then
//!    [`Thresholds::verdict`]: same, possible (a reviewer decides) or
//!    different. m and u are estimated from data ([`train`]); exact
//!    agreement on a common name counts for less ([`frequency`]).

pub mod compare;
pub mod frequency;
mod keys;
pub mod model;
mod score;
pub mod train;

pub use compare::{compare, Field, Gamma};
pub use frequency::{Counter, TermFrequencies};
pub use keys::{company_key, person_key, simple_key};
pub use model::{probability, Explanation, Model};
pub use score::{Matcher, Thresholds, Verdict};

/// The values of a contact or a staged row that matching looks at, already
/// normalized by the domain layer (E.164 phone, registrable domain, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub company_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub domain: Option<String>,
    pub address: Option<String>,
    pub city: Option<String>,
    pub postcode: Option<String>,
    pub country: Option<String>,
}

/// A record with its comparison keys computed once.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// Company name without case, accents, punctuation or legal suffix.
    pub company: String,
    /// First and last name tokens, sorted (so swapped names still agree).
    pub person: String,
    pub first: String,
    pub last: String,
    pub email: String,
    pub phone: String,
    /// Website domain; empty for hosts many companies share (gmail.com, ...).
    pub domain: String,
    /// House number and street, street types abbreviated ("Street" = "St").
    pub address: String,
    /// The address's leading number, and the rest.
    pub house: String,
    pub street: String,
    pub city: String,
    pub postcode: String,
    pub country: String,
}

impl Prepared {
    pub fn new(r: &Record) -> Self {
        let s = |v: &Option<String>| v.as_deref().map(simple_key).unwrap_or_default();
        let domain = r
            .domain
            .as_deref()
            .map(str::to_ascii_lowercase)
            .filter(|d| !keys::is_shared_host(d))
            .unwrap_or_default();
        let address = r
            .address
            .as_deref()
            .map(keys::address_key)
            .unwrap_or_default();
        let (house, street) = match address.split_once(' ') {
            Some((h, rest)) if h.starts_with(|c: char| c.is_ascii_digit()) => {
                (h.to_string(), rest.to_string())
            }
            _ => (String::new(), address.clone()),
        };
        Self {
            first: s(&r.first_name),
            last: s(&r.last_name),
            house,
            street,
            company: r
                .company_name
                .as_deref()
                .map(company_key)
                .unwrap_or_default(),
            person: person_key(r.first_name.as_deref(), r.last_name.as_deref()),
            email: r
                .email
                .as_deref()
                .map(|e| e.trim().to_lowercase())
                .unwrap_or_default(),
            phone: r.phone.clone().unwrap_or_default(),
            domain,
            address,
            city: s(&r.city),
            postcode: r
                .postcode
                .as_deref()
                .map(|p| {
                    p.chars()
                        .filter(|c| c.is_alphanumeric())
                        .collect::<String>()
                        .to_uppercase()
                })
                .unwrap_or_default(),
            country: r.country.clone().unwrap_or_default(),
        }
    }

    /// The keys under which this record is filed and looked up. Two records
    /// can only be compared when they share one.
    pub fn blocking_keys(&self) -> Vec<String> {
        let mut keys = Vec::with_capacity(6);
        if !self.email.is_empty() {
            keys.push(format!("e:{}", self.email));
        }
        if !self.domain.is_empty() {
            keys.push(format!("d:{}", self.domain));
        }
        if !self.company.is_empty() && !self.city.is_empty() {
            keys.push(format!("c:{}|{}", self.company, self.city));
        }
        self.typo_keys(&mut keys);
        keys
    }

    /// Keys two records still share when one has a typo or two: each leaves
    /// out or blurs a different field, so one error spoils only some of them.
    fn typo_keys(&self, keys: &mut Vec<String>) {
        let digits: Vec<char> = self.phone.chars().filter(char::is_ascii_digit).collect();
        if digits.len() >= 8 {
            let (head, tail) = digits.split_at(digits.len() - 4);
            let mut tail = tail.to_vec();
            tail.sort_unstable();
            keys.push(format!(
                "q:{}|{}",
                head.iter().collect::<String>(),
                tail.iter().collect::<String>()
            ));
        }
        let (first, last) = (keys::sound(&self.first), keys::sound(&self.last));
        if !last.is_empty() && !self.postcode.is_empty() {
            keys.push(format!("ml:{last}|{}", self.postcode));
        }
        if !first.is_empty() && !last.is_empty() && !self.house.is_empty() {
            // With the country: without a postcode or a city (which typos
            // spoil), a common name at a common street and number is common
            // across countries (on the benchmark's corpus, half the spurious
            // candidates of a row came from this key).
            let street = keys::sound(&self.street);
            keys.push(format!(
                "ms:{first}|{last}|{}|{street}|{}",
                self.house, self.country
            ));
        }
        if !self.house.is_empty() && !self.postcode.is_empty() {
            keys.push(format!("mh:{}|{}", self.house, self.postcode));
        }
    }

    /// Keys of earlier schemes that no record is filed under any more, but
    /// tombstones of contacts erased before the change still carry
    /// (`bizcontacts_store::erasure`): exact phone, person + company,
    /// person + address, company + postcode, the sounds of person and
    /// company, person and address without the country. The other keys made
    /// them redundant for finding candidates (leaving company + postcode and
    /// person + company sounds out lost no true pair on the hard, classic or
    /// FEBRL data, `dedupe-train`), and each key filed is an index entry per
    /// contact, the dominant cost of dedupe at millions of contacts
    /// (docs/benchmarks.md).
    fn legacy_keys(&self) -> Vec<String> {
        let mut keys = Vec::with_capacity(6);
        if !self.phone.is_empty() {
            keys.push(format!("p:{}", self.phone));
        }
        if !self.company.is_empty() && !self.postcode.is_empty() {
            keys.push(format!("z:{}|{}", self.company, self.postcode));
        }
        let (first, last) = (keys::sound(&self.first), keys::sound(&self.last));
        let company: Vec<String> = self.company.split(' ').take(3).map(keys::sound).collect();
        let company = company.join(" ");
        if !first.is_empty() && !last.is_empty() && !company.trim().is_empty() {
            keys.push(format!("mf:{first}|{last}|{company}"));
        }
        if !first.is_empty() && !last.is_empty() && !self.house.is_empty() {
            let street = keys::sound(&self.street);
            keys.push(format!("ms:{first}|{last}|{}|{street}", self.house));
        }
        if !self.person.is_empty() {
            if !self.company.is_empty() {
                keys.push(format!("n:{}|{}", self.person, self.company));
            }
            if !self.address.is_empty() {
                keys.push(format!("a:{}|{}", self.person, self.address));
            }
        }
        keys
    }

    /// [`Self::blocking_keys`] as stored and looked up: 64-bit hashes. A
    /// collision only makes two records meet that share no key; the score
    /// still decides, so it costs a comparison, never a wrong merge.
    pub fn block_ids(&self) -> Vec<BlockId> {
        self.blocking_keys().iter().map(|k| block_id(k)).collect()
    }
}

/// A row to place, with its keys computed once: a dedupe chunk needs them
/// for the look-up, the tombstone check and the placing, and each
/// computation formats and hashes every key and codes names phonetically.
#[derive(Debug, Clone)]
pub struct Keyed {
    pub prepared: Prepared,
    /// [`Prepared::block_ids`].
    pub block_ids: Vec<BlockId>,
    /// What an erased contact's tombstone may be filed under: the current
    /// keys and the legacy ones; empty when no contact was ever erased.
    pub tombstone_ids: Vec<BlockId>,
}

impl Keyed {
    /// `tombstones`: whether any erased contact left a tombstone. Without
    /// one, the legacy keys are not computed: they cost as much as the
    /// current ones (Double Metaphone codes of names, company words and
    /// street, formatted and hashed), a fifth of a dedupe's worker time.
    pub fn new(record: &Record, tombstones: bool) -> Self {
        let prepared = Prepared::new(record);
        let block_ids = prepared.block_ids();
        let mut tombstone_ids = vec![];
        if tombstones {
            tombstone_ids.extend_from_slice(&block_ids);
            tombstone_ids.extend(prepared.legacy_keys().iter().map(|k| block_id(k)));
        }
        Keyed {
            prepared,
            block_ids,
            tombstone_ids,
        }
    }
}

/// These block ids once each, in order: what one look-up asks for.
pub fn distinct_block_ids(ids: impl IntoIterator<Item = BlockId>) -> Vec<BlockId> {
    let mut ids: Vec<BlockId> = ids.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// A blocking key's hash, as stored in `contact_keys.key`.
pub type BlockId = i64;

pub fn block_id(key: &str) -> BlockId {
    xxhash_rust::xxh3::xxh3_64(key.as_bytes()) as i64
}
