//! One record to one staged row.

use crate::Layout;
use bizcontacts_domain::contact::{normalize, Draft, Field, FieldError};
use bizcontacts_store::staged_rows::StagedRow;

/// Longest raw value kept as received; longer ones are cut (and are an error).
pub const MAX_RAW_BYTES: usize = 8 * 1024;
/// Longest value quoted back in an error.
const MAX_ERROR_VALUE_CHARS: usize = 200;

pub struct Stager {
    header: Vec<String>,
    mapping: Vec<Option<Field>>,
}

/// `s` cut to at most `max` bytes on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn quoted(value: &str) -> String {
    match value.char_indices().nth(MAX_ERROR_VALUE_CHARS) {
        Some((i, _)) => format!("{}…", &value[..i]),
        None => value.to_string(),
    }
}

impl Stager {
    pub fn new(layout: &Layout) -> Self {
        Self {
            header: layout.header.clone(),
            mapping: layout.mapping.clone(),
        }
    }

    fn column_name(&self, i: usize) -> String {
        match self.mapping.get(i) {
            Some(Some(f)) => f.as_str().to_string(),
            Some(None) => self.header[i].clone(),
            None => format!("column_{}", i + 1),
        }
    }

    /// Normalize and validate; problems with the record itself (NUL bytes,
    /// broken UTF-8, giant values, too many fields) join the field errors.
    pub fn stage<'r>(&self, row_number: i32, record: &'r csv::StringRecord) -> StagedRow<'r> {
        let values = record.iter();
        let mut draft = Draft::default();
        let mut raw = Vec::with_capacity(record.len());
        let mut errors: Vec<FieldError> = Vec::new();
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let fields = record.len();
        for (i, value) in values.enumerate() {
            hasher.update(value.trim().as_bytes());
            hasher.update(b"\x1f");
            let mut problem = None;
            let mut kept = std::borrow::Cow::Borrowed(value);
            if kept.contains('\0') {
                kept = kept.replace('\0', "\u{FFFD}").into();
                problem = Some("contains a NUL character".to_string());
            } else if kept.as_bytes().contains(&0xEF) && kept.contains('\u{FFFD}') {
                // (0xEF leads U+FFFD's encoding: a byte search first spares most values the string search.)
                problem = Some("contains bytes that are not valid UTF-8".to_string());
            }
            if kept.len() > MAX_RAW_BYTES {
                problem = Some(format!(
                    "is {} bytes long; at most {MAX_RAW_BYTES} are accepted and kept",
                    kept.len()
                ));
                kept = cut(&kept, MAX_RAW_BYTES).to_string().into();
            }
            match (problem, self.mapping.get(i).copied().flatten()) {
                (Some(reason), _) => {
                    errors.push(FieldError::new(self.column_name(i), quoted(&kept), reason));
                }
                (None, Some(field)) => draft.set(field, value),
                (None, None) => {}
            }
            raw.push(kept);
        }
        let (contact, field_errors) = normalize(&draft);
        // A value refused above is absent from the draft; "is required" would only repeat that.
        let refused: Vec<String> = errors.iter().map(|e| e.field.clone()).collect();
        errors.extend(
            field_errors
                .into_iter()
                .filter(|e| !refused.contains(&e.field))
                .map(|mut e| {
                    e.value = quoted(&e.value);
                    e
                }),
        );
        if fields > self.header.len()
            && raw[self.header.len()..]
                .iter()
                .any(|v| !v.trim().is_empty())
        {
            errors.push(FieldError::new(
                "row",
                "",
                format!("has {fields} fields; the header has {}", self.header.len()),
            ));
        }
        StagedRow {
            row_number,
            raw,
            contact,
            errors,
            fingerprint: hasher.digest128().to_be_bytes(),
        }
    }
}

/// True for a record of blank fields only (",,,," left by spreadsheets):
/// it keeps its row number but is not staged.
pub fn is_blank<'a>(mut values: impl Iterator<Item = &'a str>) -> bool {
    values.all(|v| v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stager() -> Stager {
        Stager::new(&Layout::from_header(b',', ["company", "email", "notes"]).unwrap())
    }

    #[test]
    fn a_valid_row_keeps_raw_values_and_extra_columns() {
        let record = csv::StringRecord::from(["Acme", "a@acme.com", "call Monday"].to_vec());
        let row = stager().stage(1, &record);
        assert!(row.errors.is_empty(), "{:?}", row.errors);
        assert_eq!(row.raw, ["Acme", "a@acme.com", "call Monday"]);
        assert_eq!(row.contact.company_name.as_deref(), Some("Acme"));
    }

    #[test]
    fn giant_values_nul_and_extra_fields_are_row_errors() {
        let big = "x".repeat(1 << 20);
        let record = csv::StringRecord::from(["Acme\0", big.as_str(), "n", "surplus"].to_vec());
        let row = stager().stage(2, &record);
        let reasons: Vec<(&str, &str)> = row
            .errors
            .iter()
            .map(|e| (e.field.as_str(), e.reason.as_str()))
            .collect();
        assert_eq!(reasons[0], ("company_name", "contains a NUL character"));
        assert_eq!(reasons[1].0, "email");
        assert!(reasons[1].1.contains("1048576 bytes"));
        assert!(reasons.contains(&("row", "has 4 fields; the header has 3")));
        assert_eq!(row.raw[1].len(), MAX_RAW_BYTES);
        assert!(row.errors[1].value.chars().count() <= MAX_ERROR_VALUE_CHARS + 1);
    }

    #[test]
    fn fingerprints_ignore_surrounding_spaces_only() {
        let s = stager();
        let a = s
            .stage(
                1,
                &csv::StringRecord::from(["Acme", "a@acme.com", ""].to_vec()),
            )
            .fingerprint;
        let b = s
            .stage(
                2,
                &csv::StringRecord::from([" Acme ", "a@acme.com", ""].to_vec()),
            )
            .fingerprint;
        let c = s
            .stage(
                3,
                &csv::StringRecord::from(["ACME", "a@acme.com", ""].to_vec()),
            )
            .fingerprint;
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
