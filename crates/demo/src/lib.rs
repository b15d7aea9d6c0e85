//! Realistic generated business contacts, shared by `bizcontacts seed` (the
//! demo corpus) and the benchmarks: name lists, places, phone numbers valid
//! for their country, and a small seeded generator so a run can be repeated.

use bizcontacts_domain::contact::mcc_codes;

/// xorshift64*: a tiny seeded generator, so every run reads the same file.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next_u64() % items.len() as u64) as usize]
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

pub const WORDS: &[&str] = &[
    "Acme",
    "Northwind",
    "Blue",
    "River",
    "Summit",
    "Pioneer",
    "Golden",
    "Harbor",
    "Maple",
    "Atlas",
    "Cedar",
    "Falcon",
    "Granite",
    "Horizon",
    "Ivory",
    "Juniper",
    "Keystone",
    "Lumen",
    "Meridian",
    "Nova",
    "Orchid",
    "Pacific",
    "Quarry",
    "Redwood",
    "Silver",
    "Tidal",
    "Union",
    "Vertex",
    "Willow",
    "Zenith",
];
pub const SECOND: &[&str] = &[
    "Peak", "Valley", "Bridge", "Stone", "Field", "Lake", "Oak", "Pine", "Star", "Sun", "Moon",
    "Hill", "Brook", "Gate", "Point", "Ridge", "Bay", "Crest", "Wood", "Port", "Mill", "Rock",
    "Shore", "Light", "Ford", "Glen", "Haven", "Crown", "Spring", "Grove",
];
pub const TRADES: &[&str] = &[
    "Bakery",
    "Logistics",
    "Dental",
    "Consulting",
    "Hardware",
    "Books",
    "Motors",
    "Florist",
    "Pharmacy",
    "Travel",
    "Electric",
    "Plumbing",
    "Cafe",
    "Veterinary",
    "Printing",
    "Studio",
    "Builders",
    "Opticians",
    "Catering",
    "Fitness",
];
/// (canonical, variants it is also written as)
pub const LEGAL: &[(&str, &[&str])] = &[
    ("Inc", &["Inc.", "Incorporated", ", Inc", "INC"]),
    ("LLC", &["L.L.C.", "llc", ""]),
    ("Ltd", &["Limited", "Ltd.", "LTD"]),
    ("GmbH", &["GMBH", "Gmbh", ""]),
    ("S.A.", &["SA", "S.A", ""]),
    ("", &["Co.", "Company"]),
];
pub const FIRST: &[&str] = &[
    "Anna", "Ben", "Chloé", "David", "Eva", "Frank", "Grace", "Hugo", "Ines", "Jonas", "Karin",
    "Luis", "Maria", "Noah", "Olga", "Paul", "Rosa", "Sam", "Tara", "Omar", "Yuki", "Zoe", "Amir",
    "Lena",
];
pub const LAST: &[&str] = &[
    "Smith", "Müller", "Garcia", "Rossi", "Dubois", "Novak", "Jensen", "Silva", "Khan", "Brown",
    "Nguyen", "Kowalski", "Haddad", "Okafor", "Larsen", "Moreau", "Fischer", "Costa", "Ivanova",
    "Tanaka",
];
pub const STREETS: &[&str] = &[
    "Main", "High", "Station", "Church", "Market", "Mill", "Park", "King",
];

/// (country, cities)
pub const COUNTRIES: &[(&str, &[&str])] = &[
    (
        "US",
        &[
            "San Francisco",
            "New York",
            "Chicago",
            "Boston",
            "Austin",
            "Denver",
            "Seattle",
            "Miami",
        ],
    ),
    (
        "DE",
        &[
            "Berlin",
            "Hamburg",
            "München",
            "Köln",
            "Frankfurt",
            "Leipzig",
        ],
    ),
    (
        "GB",
        &[
            "London",
            "Leeds",
            "Bristol",
            "Manchester",
            "Glasgow",
            "Cardiff",
        ],
    ),
    (
        "FR",
        &["Paris", "Lyon", "Marseille", "Toulouse", "Nantes", "Lille"],
    ),
];

/// A phone number valid in `country`, written both ways.
pub fn phone(rng: &mut Rng, country: &str) -> (String, String) {
    let (a, b) = (rng.below(800) + 200, rng.below(10_000));
    match country {
        "US" => {
            let area =
                ["415", "212", "312", "617", "512", "303", "206", "305"][rng.below(8) as usize];
            (
                format!("+1 {area} {a} {b:04}"),
                format!("({area}) {a}-{b:04}"),
            )
        }
        "DE" => (format!("+49 30 {a}{b:04}"), format!("030 {a} {b:04}")),
        "GB" => (
            format!("+44 20 7{a:03} {b:04}"),
            format!("020 7{a:03} {b:04}"),
        ),
        _ => {
            let (x, y, z) = (b / 100, b % 100, rng.below(100));
            (
                format!("+33 1 4{} {x:02} {y:02} {z:02}", a % 10),
                format!("01 4{} {x:02} {y:02} {z:02}", a % 10),
            )
        }
    }
}

/// Lowercase ASCII letters and digits only ("Chloé" -> "chlo"), as a domain.
pub fn slug(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

/// Countries a generated business is in, and how often (per 100).
pub const COUNTRY_WEIGHTS: &[(&str, u64)] = &[("US", 45), ("GB", 20), ("DE", 20), ("FR", 15)];

/// Columns of [`Business::record`], as a CSV header the import maps.
pub const BUSINESS_HEADER: [&str; 13] = [
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
    "Segment",
    "Type",
    "MCC",
];

/// Segments, commonest first, with weights per 100.
const SEGMENT_WEIGHTS: &[(&str, u64)] = &[
    ("smb", 60),
    ("mid_market", 25),
    ("enterprise", 10),
    ("public_sector", 5),
];
const TYPES: &[&str] = &["merchant", "supplier", "partner", "prospect"];

fn weighted<'a>(rng: &mut Rng, table: &[(&'a str, u64)]) -> &'a str {
    let total: u64 = table.iter().map(|(_, w)| w).sum();
    let mut at = rng.below(total);
    for (v, w) in table {
        if at < *w {
            return v;
        }
        at -= w;
    }
    table[0].0
}

/// One distinct business: the `i`th of a corpus (its domain carries `i`,
/// so no two are the same business).
pub struct Business(pub [String; 13]);

impl Business {
    pub fn new(rng: &mut Rng, i: usize) -> Self {
        let company = format!(
            "{} {} {}",
            rng.pick(WORDS),
            rng.pick(SECOND),
            rng.pick(TRADES)
        );
        let country = weighted(rng, COUNTRY_WEIGHTS);
        let cities = COUNTRIES
            .iter()
            .find(|(c, _)| *c == country)
            .map(|(_, cities)| *cities)
            .expect("weighted countries have cities");
        let city = cities[rng.below(cities.len() as u64) as usize];
        let domain = format!("{}{i}.example", slug(&company));
        let (first, last) = (rng.pick(FIRST), rng.pick(LAST));
        let codes = mcc_codes();
        Business([
            company,
            first.to_string(),
            last.to_string(),
            format!("{}.{}@{domain}", slug(first), slug(last)),
            phone(rng, country).0,
            format!("https://www.{domain}"),
            format!("{} {} Street", rng.below(300) + 1, rng.pick(STREETS)),
            city.to_string(),
            format!("{:05}", rng.below(100_000)),
            country.to_string(),
            weighted(rng, SEGMENT_WEIGHTS).to_string(),
            rng.pick(TYPES).to_string(),
            codes[rng.below(codes.len() as u64) as usize].to_string(),
        ])
    }
}
