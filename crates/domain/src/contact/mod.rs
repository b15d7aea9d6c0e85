//! A business contact as tenants submit it: the fields, the names their
//! columns go by, and [`normalize`], which turns what was received into typed
//! values plus every error found, per field.
//!
//! Rules (shared/spec/product.md, "Data rules"): a contact needs a company
//! name and at least one of email, phone and website; country, MCC, phone,
//! website, segment and type must parse; nothing is silently fixed.

mod columns;
mod country;
mod mcc;
mod phone;
mod vocab;
mod website;

pub use columns::{Column, COLUMN_COUNT, COLUMN_NAMES};
pub use country::CountryCode;
pub use mcc::{categories, mcc_codes, Mcc};
pub use phone::PhoneE164;
pub use vocab::{parse_word, ContactType, Segment};
pub use website::Website;

use crate::access::wire_enum;
use crate::{Email, ParseError};
use serde::{Deserialize, Serialize};

wire_enum!(
    /// A field of a contact as it is submitted (category is derived from the MCC).
    Field {
        CompanyName => "company_name",
        FirstName => "first_name",
        LastName => "last_name",
        Email => "email",
        Phone => "phone",
        Website => "website",
        Address => "address",
        City => "city",
        Postcode => "postcode",
        Region => "region",
        Country => "country",
        Segment => "segment",
        Type => "type",
        Mcc => "mcc",
    }
);

/// How many [`Field`]s there are.
pub const FIELD_COUNT: usize = 14;

/// Header names people use for each field, compared after [`header_key`].
const SYNONYMS: &[(Field, &[&str])] = &[
    (
        Field::CompanyName,
        &[
            "company",
            "companyname",
            "business",
            "businessname",
            "organization",
            "organisation",
            "org",
            "orgname",
            "organizationname",
            "organisationname",
            "account",
            "accountname",
            "merchant",
            "merchantname",
            "legalname",
            "tradingname",
            "firm",
            "firmname",
        ],
    ),
    (
        Field::FirstName,
        &[
            "firstname",
            "first",
            "givenname",
            "fname",
            "forename",
            "contactfirstname",
        ],
    ),
    (
        Field::LastName,
        &[
            "lastname",
            "last",
            "surname",
            "familyname",
            "lname",
            "contactlastname",
        ],
    ),
    (
        Field::Email,
        &[
            "email",
            "emailaddress",
            "mail",
            "email1",
            "contactemail",
            "workemail",
            "businessemail",
            "emailid",
        ],
    ),
    (
        Field::Phone,
        &[
            "phone",
            "phonenumber",
            "telephone",
            "telephonenumber",
            "tel",
            "mobile",
            "mobilephone",
            "mobilenumber",
            "cell",
            "cellphone",
            "phone1",
            "businessphone",
            "workphone",
            "contactphone",
        ],
    ),
    (
        Field::Website,
        &[
            "website",
            "web",
            "url",
            "site",
            "homepage",
            "websiteurl",
            "webaddress",
            "domain",
            "companywebsite",
            "companydomain",
        ],
    ),
    (
        Field::Address,
        &[
            "address",
            "streetaddress",
            "street",
            "address1",
            "addressline1",
            "addressline",
            "billingaddress",
        ],
    ),
    (Field::City, &["city", "town", "locality"]),
    (
        Field::Postcode,
        &[
            "postcode",
            "postalcode",
            "zip",
            "zipcode",
            "postcodezip",
            "postal",
        ],
    ),
    (
        Field::Region,
        &[
            "region",
            "state",
            "province",
            "county",
            "stateprovince",
            "stateregion",
        ],
    ),
    (
        Field::Country,
        &[
            "country",
            "countrycode",
            "countryname",
            "nation",
            "countryiso",
        ],
    ),
    (
        Field::Segment,
        &[
            "segment",
            "marketsegment",
            "customersegment",
            "businesssegment",
        ],
    ),
    (
        Field::Type,
        &[
            "type",
            "contacttype",
            "businesstype",
            "relationship",
            "relationshiptype",
        ],
    ),
    (
        Field::Mcc,
        &["mcc", "merchantcategorycode", "mcccode", "categorycode"],
    ),
];

/// A header reduced to lower-case letters and digits: "Business Name",
/// "business_name" and "BUSINESS-NAME" all read "businessname".
pub fn header_key(header: &str) -> String {
    deunicode::deunicode(header)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

impl Field {
    /// The field a column header names, if any.
    pub fn from_header(header: &str) -> Option<Field> {
        let key = header_key(header);
        SYNONYMS
            .iter()
            .find(|(_, names)| names.contains(&key.as_str()))
            .map(|(f, _)| *f)
    }

    /// Position in [`Field::ALL`] (variants are declared in that order).
    pub fn index(self) -> usize {
        self as usize
    }

    /// Longest value accepted, in characters.
    fn max_chars(self) -> usize {
        match self {
            Field::Address => 500,
            Field::Website => 2000,
            Field::Postcode | Field::Country | Field::Segment | Field::Type | Field::Mcc => 100,
            _ => 300,
        }
    }
}

/// One problem with one field of one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub value: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(
        field: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }
}

/// A contact as received: one optional raw value per field, borrowed from
/// the record it was read from (a copy per field showed in import profiles).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Draft<'a> {
    values: [Option<&'a str>; FIELD_COUNT],
}

impl<'a> Draft<'a> {
    pub fn set(&mut self, field: Field, value: &'a str) {
        self.values[field.index()] = Some(value);
    }

    pub fn get(&self, field: Field) -> Option<&'a str> {
        self.values[field.index()]
    }

    /// The value, trimmed, when there is one that is not blank.
    fn present(&self, field: Field) -> Option<&'a str> {
        self.get(field).map(str::trim).filter(|v| !v.is_empty())
    }
}

/// A contact's values in typed, normalized form; fields that were missing or
/// invalid are `None` (their errors say which).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Contact {
    pub company_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<Email>,
    pub phone: Option<PhoneE164>,
    pub website: Option<Website>,
    pub address: Option<String>,
    pub city: Option<String>,
    pub postcode: Option<String>,
    pub region: Option<String>,
    pub country: Option<CountryCode>,
    pub segment: Option<Segment>,
    #[serde(rename = "type")]
    pub contact_type: Option<ContactType>,
    pub mcc: Option<Mcc>,
}

impl Contact {
    /// The ISO range category of the MCC.
    pub fn category(&self) -> Option<&'static str> {
        self.mcc.as_ref().map(Mcc::category)
    }
}

/// Plain text: whitespace runs become one space; control characters and
/// overlong values are errors.
fn text(field: Field, raw: &str) -> Result<String, ParseError> {
    let mut out = String::with_capacity(raw.len());
    collapse(field, raw, Some(&mut out))?;
    Ok(out)
}

/// One pass over a value (every field of every imported row comes here):
/// whitespace runs become one space, ends trimmed; control characters and
/// overlong values are errors. `out`, when given, receives the result.
fn collapse(field: Field, raw: &str, mut out: Option<&mut String>) -> Result<(), ParseError> {
    let max = field.max_chars();
    if is_plain(raw) {
        // The usual value: nothing to change, one byte per character.
        if raw.len() > max {
            return Err(ParseError::new(format!("is longer than {max} characters")));
        }
        if let Some(o) = out {
            o.push_str(raw);
        }
        return Ok(());
    }
    let (mut chars, mut gap) = (0usize, false);
    for c in raw.chars() {
        if c.is_whitespace() {
            gap = chars > 0;
            continue;
        }
        if c.is_control() {
            return Err(ParseError::new("contains control characters"));
        }
        if gap {
            chars += 1;
            gap = false;
            if let Some(o) = out.as_deref_mut() {
                o.push(' ');
            }
        }
        chars += 1;
        if let Some(o) = out.as_deref_mut() {
            o.push(c);
        }
    }
    if chars > max {
        return Err(ParseError::new(format!("is longer than {max} characters")));
    }
    Ok(())
}

/// Printable ASCII without leading, trailing or doubled spaces: text that
/// [`collapse`] leaves as it is.
fn is_plain(raw: &str) -> bool {
    let b = raw.as_bytes();
    b.first() != Some(&b' ')
        && b.last() != Some(&b' ')
        && b.iter().all(|c| (b' '..=b'~').contains(c))
        && !b.windows(2).any(|w| w == b"  ")
}

/// Reads fields of one draft, collecting their errors.
struct Reader<'a, 'd> {
    draft: &'a Draft<'d>,
    errors: Vec<FieldError>,
}

impl Reader<'_, '_> {
    /// A typed value: control characters and overlong values are refused
    /// first, then `parse` decides.
    fn read<T>(
        &mut self,
        field: Field,
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Option<T> {
        self.parsed(field, |raw| {
            collapse(field, raw, None).and_then(|_| parse(raw))
        })
    }

    /// Plain text (one pass checks and cleans it).
    fn text(&mut self, field: Field) -> Option<String> {
        self.parsed(field, |raw| text(field, raw))
    }

    fn parsed<T>(
        &mut self,
        field: Field,
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Option<T> {
        let raw = self.draft.present(field)?;
        match parse(raw) {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors
                    .push(FieldError::new(field.as_str(), raw, e.reason));
                None
            }
        }
    }
}

/// Turn a draft into a contact, collecting every error instead of stopping
/// at the first, so a reviewer sees all that is wrong with a row at once.
pub fn normalize(draft: &Draft<'_>) -> (Contact, Vec<FieldError>) {
    let mut r = Reader {
        draft,
        errors: Vec::new(),
    };
    // The country comes first: national phone numbers are read in its region.
    let country = r.read(Field::Country, CountryCode::parse);
    let contact = Contact {
        company_name: r.text(Field::CompanyName),
        first_name: r.text(Field::FirstName),
        last_name: r.text(Field::LastName),
        email: r.read(Field::Email, Email::parse),
        phone: r.read(Field::Phone, |v| PhoneE164::parse(v, country)),
        website: r.read(Field::Website, Website::parse),
        address: r.text(Field::Address),
        city: r.text(Field::City),
        postcode: r.text(Field::Postcode).map(|p| p.to_uppercase()),
        region: r.text(Field::Region),
        country,
        segment: r.read(Field::Segment, parse_word),
        contact_type: r.read(Field::Type, parse_word),
        mcc: r.read(Field::Mcc, Mcc::parse),
    };
    let mut errors = r.errors;
    if draft.present(Field::CompanyName).is_none() {
        errors.push(FieldError::new(
            Field::CompanyName.as_str(),
            "",
            "is required",
        ));
    }
    if [Field::Email, Field::Phone, Field::Website]
        .iter()
        .all(|f| draft.present(*f).is_none())
    {
        errors.push(FieldError::new(
            Field::Email.as_str(),
            "",
            "a contact needs at least one of email, phone or website",
        ));
    }
    (contact, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_indexes_follow_all() {
        for (i, f) in Field::ALL.iter().enumerate() {
            assert_eq!(f.index(), i, "{f}");
        }
        assert_eq!(Field::ALL.len(), FIELD_COUNT);
    }

    #[test]
    fn plain_text_is_kept_and_the_rest_collapsed() {
        assert_eq!(text(Field::City, "San Francisco").unwrap(), "San Francisco");
        assert_eq!(
            text(Field::City, "San  \tFrancisco ").unwrap(),
            "San Francisco"
        );
        assert_eq!(text(Field::City, "Köln  Süd").unwrap(), "Köln Süd");
        assert!(text(Field::Mcc, &"1".repeat(101)).is_err());
        assert!(text(Field::City, "a\u{7}b").is_err());
    }

    fn draft<'a>(pairs: &[(Field, &'a str)]) -> Draft<'a> {
        let mut d = Draft::default();
        for (f, v) in pairs {
            d.set(*f, v);
        }
        d
    }

    #[test]
    fn headers_map_through_synonyms_ignoring_case_and_punctuation() {
        for (h, f) in [
            ("Company", Field::CompanyName),
            ("company_name", Field::CompanyName),
            ("Business Name", Field::CompanyName),
            ("Merchant Category Code", Field::Mcc),
            ("MCC", Field::Mcc),
            ("E-Mail", Field::Email),
            ("Zip Code", Field::Postcode),
            ("State/Province", Field::Region),
        ] {
            assert_eq!(Field::from_header(h), Some(f), "{h}");
        }
        assert_eq!(Field::from_header("Favourite colour"), None);
        assert_eq!(Field::ALL.len(), FIELD_COUNT);
    }

    #[test]
    fn a_good_row_normalizes_every_field() {
        let (c, errors) = normalize(&draft(&[
            (Field::CompanyName, "  Acme   Inc. "),
            (Field::Email, "Sales@ACME.com"),
            (Field::Phone, "(415) 555-2671"),
            (Field::Website, "www.acme.com"),
            (Field::Country, "United States"),
            (Field::Postcode, "94103"),
            (Field::Segment, "SMB"),
            (Field::Type, "Merchant"),
            (Field::Mcc, "0742"),
        ]));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(c.company_name.as_deref(), Some("Acme Inc."));
        assert_eq!(c.email.unwrap().as_str(), "Sales@acme.com");
        assert_eq!(c.phone.unwrap().as_str(), "+14155552671");
        assert_eq!(c.website.unwrap().domain, "acme.com");
        assert_eq!(c.country.unwrap().as_str(), "US");
        assert_eq!(c.segment, Some(Segment::Smb));
        assert_eq!(c.mcc.as_ref().unwrap().as_str(), "0742");
    }

    #[test]
    fn every_error_is_named_with_field_value_and_reason() {
        let (c, errors) = normalize(&draft(&[
            (Field::Email, "not-an-email"),
            (Field::Mcc, "742"),
            (Field::Country, "Atlantis"),
            (Field::Segment, "huge"),
        ]));
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["country", "email", "segment", "mcc", "company_name"]
        );
        assert_eq!(errors[3].value, "742");
        assert!(errors[3].reason.contains("0742"));
        assert!(c.email.is_none() && c.mcc.is_none());
        let (_, errors) = normalize(&draft(&[(Field::CompanyName, "Acme")]));
        assert_eq!(errors.len(), 1);
        assert!(errors[0]
            .reason
            .contains("at least one of email, phone or website"));
    }

    #[test]
    fn control_characters_and_overlong_values_are_errors() {
        let long = "x".repeat(301);
        let (_, errors) = normalize(&draft(&[
            (Field::CompanyName, long.as_str()),
            (Field::City, "Ber\u{0}lin"),
            (Field::Email, "a@b.com"),
        ]));
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].reason.contains("longer than 300"));
        assert_eq!(errors[1].reason, "contains control characters");
    }
}
