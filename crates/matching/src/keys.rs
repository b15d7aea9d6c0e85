//! Comparison keys: names without the differences that do not tell two
//! businesses apart (case, accents, punctuation, legal form).

/// Legal forms, compared after [`simple_key`] with dots removed ("S.A." is
/// "sa"). Only trailing ones are dropped: "AB Foods" keeps its "ab".
const LEGAL_FORMS: &[&str] = &[
    "inc",
    "incorporated",
    "llc",
    "llp",
    "lp",
    "ltd",
    "limited",
    "corp",
    "corporation",
    "co",
    "company",
    "plc",
    "gmbh",
    "mbh",
    "ag",
    "kg",
    "ohg",
    "ug",
    "sa",
    "sas",
    "sarl",
    "srl",
    "spa",
    "sl",
    "bv",
    "nv",
    "oy",
    "oyj",
    "ab",
    "as",
    "asa",
    "aps",
    "pty",
    "pvt",
    "pte",
    "kk",
    "sro",
    "se",
    "and",
];

/// Hosts many unrelated businesses share: a common one is no evidence.
const SHARED_HOSTS: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "hotmail.com",
    "outlook.com",
    "live.com",
    "aol.com",
    "icloud.com",
    "me.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "proton.me",
    "protonmail.com",
    "yandex.ru",
    "mail.ru",
    "qq.com",
    "163.com",
    "facebook.com",
    "instagram.com",
    "linkedin.com",
    "google.com",
    "wixsite.com",
    "blogspot.com",
    "wordpress.com",
    "squarespace.com",
    "shopify.com",
    "github.io",
    "yelp.com",
];

pub(crate) fn is_shared_host(domain: &str) -> bool {
    SHARED_HOSTS.contains(&domain)
}

/// Lower-case ASCII words separated by single spaces: accents folded,
/// apostrophes and dots dropped ("O'Brien" = "OBrien", "S.A." = "SA"), any
/// other punctuation a separator, "&" read as "and".
pub fn simple_key(s: &str) -> String {
    let folded = deunicode::deunicode(s);
    let mut out = String::with_capacity(folded.len());
    let mut gap = false;
    for c in folded.chars() {
        match c {
            '\'' | '.' | '`' => {}
            '&' => {
                out.push_str(" and");
                gap = true;
            }
            c if c.is_ascii_alphanumeric() => {
                if gap && !out.is_empty() {
                    out.push(' ');
                }
                gap = false;
                out.push(c.to_ascii_lowercase());
            }
            _ => gap = true,
        }
    }
    out.trim_start().to_string()
}

/// A company name for comparison: [`simple_key`] without a leading "the" and
/// without trailing legal forms ("ACME, Inc." = "Acme Incorporated" = "acme").
pub fn company_key(name: &str) -> String {
    let key = simple_key(name);
    let mut words: Vec<&str> = key.split(' ').filter(|w| !w.is_empty()).collect();
    if words.len() > 1 && words[0] == "the" {
        words.remove(0);
    }
    while words.len() > 1 && LEGAL_FORMS.contains(words.last().expect("not empty")) {
        words.pop();
    }
    words.join(" ")
}

/// First and last name as one key, words sorted so "Smith, John" entered
/// in swapped columns still agrees with "John Smith".
pub fn person_key(first: Option<&str>, last: Option<&str>) -> String {
    let joined = format!("{} {}", first.unwrap_or(""), last.unwrap_or(""));
    let key = simple_key(&joined);
    let mut words: Vec<&str> = key.split(' ').filter(|w| !w.is_empty()).collect();
    words.sort_unstable();
    words.join(" ")
}

/// Street types as most sources abbreviate them.
const STREET_TYPES: &[(&str, &str)] = &[
    ("street", "st"),
    ("road", "rd"),
    ("avenue", "ave"),
    ("av", "ave"),
    ("drive", "dr"),
    ("place", "pl"),
    ("lane", "ln"),
    ("court", "ct"),
    ("crescent", "cres"),
    ("boulevard", "blvd"),
    ("square", "sq"),
    ("terrace", "tce"),
    ("circuit", "cct"),
    ("highway", "hwy"),
    ("strasse", "str"),
];

/// An address for comparison: [`simple_key`] with street types abbreviated.
pub(crate) fn address_key(address: &str) -> String {
    simple_key(address)
        .split(' ')
        .map(|w| {
            STREET_TYPES
                .iter()
                .find(|(long, _)| *long == w)
                .map_or(w, |(_, short)| short)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The Double Metaphone code of a name's first word: names that sound
/// alike ("Smith", "Smyth", "Schmidt") share it, as most one-letter typos do.
pub(crate) fn sound(name: &str) -> String {
    use std::sync::OnceLock;
    static ENCODER: OnceLock<rphonetic::DoubleMetaphone> = OnceLock::new();
    let word = name.split(' ').next().unwrap_or("");
    if word.is_empty() {
        return String::new();
    }
    ENCODER
        .get_or_init(rphonetic::DoubleMetaphone::default)
        .double_metaphone(word)
        .primary()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legal_forms_case_and_punctuation_do_not_matter() {
        for name in [
            "ACME Inc.",
            "Acme, Inc",
            "ACME INCORPORATED",
            "The Acme Company",
            "acme",
        ] {
            assert_eq!(company_key(name), "acme", "{name}");
        }
        assert_eq!(
            company_key("Müller & Söhne GmbH & Co. KG"),
            "muller and sohne"
        );
        assert_eq!(company_key("Société Générale S.A."), "societe generale");
        assert_eq!(company_key("AB Foods Ltd"), "ab foods");
        // A name that is only a legal form keeps it rather than vanish.
        assert_eq!(company_key("Limited"), "limited");
    }

    #[test]
    fn typos_that_keep_the_sound_keep_the_code() {
        assert_eq!(sound("smith"), sound("smyth"));
        assert_eq!(sound("catherine"), sound("kathryn"));
        assert_eq!(sound(""), "");
        assert_eq!(
            address_key("12 Station Street"),
            address_key("12 station st.")
        );
    }

    #[test]
    fn person_keys_ignore_order_and_accents() {
        assert_eq!(person_key(Some("José"), Some("García")), "garcia jose");
        assert_eq!(person_key(Some("Garcia"), Some("Jose")), "garcia jose");
        assert_eq!(person_key(None, Some("O'Brien")), "obrien");
        assert_eq!(person_key(None, None), "");
    }
}
