//! Encoding detection while an upload streams in.
//!
//! Valid UTF-8 (with or without BOM) is UTF-8. Bytes that are not UTF-8 but
//! hold no valid multi-byte sequence either are Windows-1252 (a superset of
//! Latin-1 in practice: what spreadsheets on Windows export). A file of mostly
//! valid UTF-8 with a few broken sequences stays UTF-8: its broken bytes are
//! replaced and the rows holding them get an error, rather than every accented
//! letter of the file turning into mojibake.

use crate::BatchError;
use bizcontacts_store::imports::Encoding;

#[derive(Debug, Default)]
pub struct Sniffer {
    /// An incomplete UTF-8 sequence at the end of the previous chunk.
    carry: Vec<u8>,
    multibyte: u64,
    invalid: u64,
    /// Control bytes other than tab, CR and LF.
    controls: u64,
    nul_at: Option<u64>,
    total: u64,
}

impl Sniffer {
    pub fn push(&mut self, chunk: &[u8]) {
        for (i, b) in chunk.iter().enumerate() {
            if *b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r') {
                self.controls += 1;
                if *b == 0 && self.nul_at.is_none() {
                    self.nul_at = Some(self.total + i as u64);
                }
            }
        }
        self.total += chunk.len() as u64;
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(chunk);
        let mut rest = &buf[..];
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    self.count_multibyte(s.as_bytes());
                    break;
                }
                Err(e) => {
                    self.count_multibyte(&rest[..e.valid_up_to()]);
                    match e.error_len() {
                        Some(n) => {
                            self.invalid += 1;
                            rest = &rest[e.valid_up_to() + n..];
                        }
                        None => {
                            self.carry = rest[e.valid_up_to()..].to_vec();
                            break;
                        }
                    }
                }
            }
        }
    }

    fn count_multibyte(&mut self, valid: &[u8]) {
        self.multibyte += valid.iter().filter(|b| **b >= 0xC0).count() as u64;
    }

    /// The encoding to read the file with, or why it cannot be read.
    pub fn finish(mut self) -> Result<Encoding, BatchError> {
        if !self.carry.is_empty() {
            self.invalid += 1;
        }
        if self.total == 0 {
            return Err(BatchError("the file is empty".into()));
        }
        if let Some(at) = self.nul_at {
            return Err(BatchError(format!(
                "the file is not text: it contains a NUL byte at offset {at}; upload a CSV file"
            )));
        }
        // Text has tabs and line breaks, not other control bytes.
        if self.controls * 100 > self.total {
            return Err(BatchError(
                "the file is not text: it is full of control bytes; upload a CSV file".into(),
            ));
        }
        Ok(if self.invalid == 0 || self.multibyte >= self.invalid {
            Encoding::Utf8
        } else {
            Encoding::Windows1252
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sniff(parts: &[&[u8]]) -> Result<Encoding, BatchError> {
        let mut s = Sniffer::default();
        for p in parts {
            s.push(p);
        }
        s.finish()
    }

    #[test]
    fn utf8_survives_sequences_split_across_chunks() {
        let text = "company\nCafé Müller\n".as_bytes();
        let (a, b) = text.split_at(13); // inside "é"
        assert_eq!(sniff(&[a, b]).unwrap(), Encoding::Utf8);
        assert_eq!(sniff(&[b"\xEF\xBB\xBFcompany\n"]).unwrap(), Encoding::Utf8);
    }

    #[test]
    fn latin1_bytes_mean_windows_1252() {
        assert_eq!(
            sniff(&[b"company\nCaf\xE9 M\xFCller\n"]).unwrap(),
            Encoding::Windows1252
        );
    }

    #[test]
    fn damaged_utf8_stays_utf8() {
        let mut bytes = "company\nCafé, Müller, Göteborg\n".as_bytes().to_vec();
        bytes.extend_from_slice(b"Bad \xFF row\n");
        assert_eq!(sniff(&[&bytes]).unwrap(), Encoding::Utf8);
    }

    #[test]
    fn empty_and_binary_files_are_refused() {
        assert_eq!(sniff(&[]).unwrap_err().0, "the file is empty");
        assert!(sniff(&[b"PK\x03\x04\x00\x00"])
            .unwrap_err()
            .0
            .contains("NUL byte at offset 4"));
        let noise: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 31) as u8 + 1).collect();
        assert!(sniff(&[&noise]).unwrap_err().0.contains("control bytes"));
    }
}
