//! The shape of a CSV file: its delimiter and what each header column means.

use crate::{BatchError, MAX_COLUMNS};
use bizcontacts_domain::contact::{Field, FIELD_COUNT};

/// Delimiters tried, in order of preference when the evidence ties.
const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// How many lines of the sample are looked at.
const SAMPLE_LINES: usize = 50;

/// Count each candidate delimiter per line, outside quotes.
fn counts_per_line(sample: &str, delimiter: u8) -> Vec<usize> {
    let mut lines = Vec::new();
    let (mut count, mut quoted) = (0, false);
    let bytes = sample.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        match *b {
            b'"' => quoted = !quoted,
            b if b == delimiter && !quoted => count += 1,
            // CRLF ends one line, not two: its LF is skipped.
            b'\n' if i > 0 && bytes[i - 1] == b'\r' => {}
            b'\n' | b'\r' if !quoted => {
                lines.push(count);
                count = 0;
                if lines.len() == SAMPLE_LINES {
                    return lines;
                }
            }
            _ => {}
        }
    }
    if count > 0 {
        lines.push(count);
    }
    lines
}

/// The delimiter that splits the header into the most columns, and the data
/// lines consistently into the same number: ",", ";", tab or "|".
pub fn detect_delimiter(sample: &str) -> u8 {
    DELIMITERS
        .iter()
        .map(|d| {
            let lines = counts_per_line(sample, *d);
            let header = lines.first().copied().unwrap_or(0);
            let consistent = lines.iter().filter(|c| **c == header).count();
            (*d, header > 0, consistent, header)
        })
        .filter(|(_, used, _, _)| *used)
        // max_by_key keeps the last maximum; reverse so ties go to the earlier delimiter.
        .rev()
        .max_by_key(|(_, _, consistent, header)| (*consistent, *header))
        .map(|(d, ..)| d)
        .unwrap_or(b',')
}

/// What the header row says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub delimiter: u8,
    /// Column names as received (blank ones named `column_N`).
    pub header: Vec<String>,
    /// The field of each column; `None` keeps the column as extra data.
    pub mapping: Vec<Option<Field>>,
}

impl Layout {
    /// Map a header row. Each field is taken by its first column; a second
    /// column naming the same field is kept as extra data. A row naming no
    /// field at all is not a header, and the batch cannot be read.
    pub fn from_header<'a>(
        delimiter: u8,
        cells: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, BatchError> {
        let mut header = Vec::new();
        let mut mapping = Vec::new();
        // Which fields a column already took: one look-up per column, not a
        // scan of the columns before it.
        let mut taken = [false; FIELD_COUNT];
        for (i, cell) in cells.into_iter().enumerate() {
            if i == MAX_COLUMNS {
                return Err(BatchError(format!(
                    "the header row has more than {MAX_COLUMNS} columns; keep the contact fields and at most {MAX_COLUMNS} columns in all"
                )));
            }
            let name = cell.trim().trim_start_matches('\u{feff}');
            let field = Field::from_header(name)
                .filter(|f| !std::mem::replace(&mut taken[f.index()], true));
            header.push(if name.is_empty() {
                format!("column_{}", i + 1)
            } else {
                name.to_string()
            });
            mapping.push(field);
        }
        if mapping.iter().all(Option::is_none) {
            let shown: Vec<String> = header.iter().take(5).map(|h| format!("{h:?}")).collect();
            return Err(BatchError(format!(
                "no recognizable header row: the first row reads {}{}; name the columns, e.g. \
                 company_name, email, phone, website, country, mcc",
                shown.join(", "),
                if header.len() > 5 { ", ..." } else { "" }
            )));
        }
        Ok(Self {
            delimiter,
            header,
            mapping,
        })
    }

    /// The mapping as stored: field names, `None` for extra columns.
    pub fn mapping_names(&self) -> Vec<Option<String>> {
        self.mapping
            .iter()
            .map(|f| f.map(|f| f.as_str().to_string()))
            .collect()
    }

    pub fn delimiter_str(&self) -> String {
        (self.delimiter as char).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_are_detected() {
        assert_eq!(detect_delimiter("a,b,c\n1,2,3\n"), b',');
        assert_eq!(
            detect_delimiter("Company;Email;City\nAcme, Inc;a@b.com;Paris\n"),
            b';'
        );
        assert_eq!(detect_delimiter("a\tb\tc\r\n1\t2\t3\r\n"), b'\t');
        assert_eq!(detect_delimiter("a|b|c\n1|2|3"), b'|');
        // A comma inside quotes does not count.
        assert_eq!(detect_delimiter("name;note\n\"x,y,z\";1\n"), b';');
        assert_eq!(detect_delimiter("single\nvalue\n"), b',');
    }

    #[test]
    fn headers_map_and_unknown_columns_are_kept() {
        let l = Layout::from_header(
            b',',
            ["Business Name", "E-mail", "Favourite colour", "", "Email"],
        )
        .unwrap();
        assert_eq!(
            l.mapping,
            [
                Some(Field::CompanyName),
                Some(Field::Email),
                None,
                None,
                None
            ]
        );
        assert_eq!(l.header[3], "column_4");
    }

    #[test]
    fn a_header_past_the_column_cap_is_refused_early() {
        let many: Vec<String> = (0..100_000).map(|i| format!("c{i}")).collect();
        let mut cells = vec!["company_name"];
        cells.extend(many.iter().map(String::as_str));
        let e = Layout::from_header(b',', cells).unwrap_err();
        assert!(e.0.contains("more than 200 columns"), "{e}");
        let ok: Vec<&str> = std::iter::once("email")
            .chain(many[..199].iter().map(String::as_str))
            .collect();
        assert_eq!(Layout::from_header(b',', ok).unwrap().header.len(), 200);
    }

    #[test]
    fn a_row_of_data_is_not_a_header() {
        let e = Layout::from_header(b',', ["Acme Inc", "sales@acme.com", "Paris"]).unwrap_err();
        assert!(e.0.starts_with("no recognizable header row"), "{e}");
    }
}
