//! Reading what tenants upload, without ever holding a whole file.
//!
//! - [`sniff`]: the intake watches the bytes stream past and decides the
//!   encoding (UTF-8 with or without BOM, else Windows-1252) or refuses binary
//!   files before anything is stored.
//! - [`layout`]: the job detects the delimiter and maps the header row to
//!   contact fields through synonyms; unknown columns stay as extra data.
//! - [`reader`]: a streaming CSV reader over any `Read`, yielding records.
//! - [`stage`]: one record to one [`StagedRow`](bizcontacts_store::staged_rows::StagedRow):
//!   normalized values, every error, and a fingerprint for in-batch duplicates.

pub mod layout;
pub mod reader;
pub mod sniff;
pub mod stage;

/// The record type rows are read into, for callers that keep rows around.
pub use csv::StringRecord;
pub use layout::Layout;
pub use reader::CsvRows;
pub use sniff::Sniffer;
pub use stage::Stager;

/// Most columns a header row (or the rows of one API import) may have: no
/// contact needs more, and the cap keeps work per row bounded.
pub const MAX_COLUMNS: usize = 200;

/// A file that cannot be staged at all; the message is for the uploader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BatchError(pub String);
