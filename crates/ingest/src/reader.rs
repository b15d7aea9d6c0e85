//! A streaming CSV reader: decodes to UTF-8, detects the layout from the
//! first 64 KiB, then yields one record at a time. Memory stays at the
//! sample plus one record, whatever the file's size.

use crate::layout::{detect_delimiter, Layout};
use crate::BatchError;
use bizcontacts_store::imports::Encoding;
use encoding_rs_io::{DecodeReaderBytes, DecodeReaderBytesBuilder};
use std::io::{Chain, Cursor, Read};

const SAMPLE_BYTES: usize = 64 * 1024;

type Decoded<R> = Chain<Cursor<Vec<u8>>, DecodeReaderBytes<R, Vec<u8>>>;

pub struct CsvRows<R: Read> {
    reader: csv::Reader<Decoded<R>>,
    layout: Layout,
    record: csv::StringRecord,
    /// Data rows read so far; the next row's number is this plus one.
    rows: i32,
}

fn io_error(e: impl std::fmt::Display) -> BatchError {
    BatchError(format!("the file could not be read: {e}"))
}

impl<R: Read> CsvRows<R> {
    /// Read the header; fails when there is none that names a field.
    pub fn open(source: R, encoding: Encoding) -> Result<Self, BatchError> {
        let enc = match encoding {
            Encoding::Utf8 => encoding_rs::UTF_8,
            Encoding::Windows1252 => encoding_rs::WINDOWS_1252,
        };
        // A BOM, when present, wins over the detected encoding and is dropped.
        let mut decoded = DecodeReaderBytesBuilder::new()
            .encoding(Some(enc))
            .bom_override(true)
            .strip_bom(true)
            .build(source);
        let mut sample = Vec::with_capacity(SAMPLE_BYTES);
        (&mut decoded)
            .take(SAMPLE_BYTES as u64)
            .read_to_end(&mut sample)
            .map_err(io_error)?;
        let delimiter = {
            // The sample may end inside a character; the lossy view only loses that one.
            let text = String::from_utf8_lossy(&sample);
            detect_delimiter(&text)
        };
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            .from_reader(Cursor::new(sample).chain(decoded));
        let mut record = csv::StringRecord::new();
        let header_found = reader.read_record(&mut record).map_err(io_error)?;
        if !header_found {
            return Err(BatchError("the file has no rows".into()));
        }
        let layout = Layout::from_header(delimiter, record.iter())?;
        Ok(Self {
            reader,
            layout,
            record,
            rows: 0,
        })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The next data row and its number (from 1), or `None` at the end.
    pub fn next_row(&mut self) -> Result<Option<(i32, &csv::StringRecord)>, BatchError> {
        if !self
            .reader
            .read_record(&mut self.record)
            .map_err(io_error)?
        {
            return Ok(None);
        }
        self.rows += 1;
        Ok(Some((self.rows, &self.record)))
    }

    /// Bytes of decoded text read so far (for progress messages).
    pub fn position(&self) -> u64 {
        self.reader.position().byte()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(bytes: &[u8], enc: Encoding) -> (Layout, Vec<Vec<String>>) {
        let mut r = CsvRows::open(bytes, enc).unwrap();
        let mut out = Vec::new();
        while let Some((n, rec)) = r.next_row().unwrap() {
            assert_eq!(n as usize, out.len() + 1);
            out.push(rec.iter().map(str::to_string).collect());
        }
        (r.layout().clone(), out)
    }

    #[test]
    fn mixed_line_endings_quotes_and_bom() {
        let file =
            b"\xEF\xBB\xBFCompany;Notes\r\nAcme;\"two\nlines\"\rBeta;\"say \"\"hi\"\"\"\nGamma;x";
        let (layout, rows) = rows(file, Encoding::Utf8);
        assert_eq!(layout.header, ["Company", "Notes"]);
        assert_eq!(layout.delimiter, b';');
        assert_eq!(
            rows,
            [
                ["Acme", "two\nlines"],
                ["Beta", "say \"hi\""],
                ["Gamma", "x"]
            ]
        );
    }

    #[test]
    fn windows_1252_is_decoded() {
        let (_, rows) = rows(
            b"company\tcity\nCaf\xE9 M\xFCller\tK\xF6ln\n",
            Encoding::Windows1252,
        );
        assert_eq!(rows, [["Café Müller", "Köln"]]);
    }

    #[test]
    fn layout_detection_survives_a_sample_cut_mid_character() {
        let mut file = b"company,city\n".to_vec();
        while file.len() < SAMPLE_BYTES + 10 {
            file.extend_from_slice("Société Générale,Zürich\n".as_bytes());
        }
        let (_, rows) = rows(&file, Encoding::Utf8);
        assert!(rows.iter().all(|r| r == &["Société Générale", "Zürich"]));
    }
}
