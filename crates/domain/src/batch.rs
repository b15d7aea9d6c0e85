//! Import batches: where they come from, where they stand, how their bytes read.

use crate::access::wire_enum;
use crate::ParseError;
use serde::{Deserialize, Serialize};

wire_enum!(
    /// How a batch reached us.
    Source {
        Csv => "csv",
        Api => "api",
        Manual => "manual",
        CrmPull => "crm_pull",
        Correction => "correction",
    }
);

wire_enum!(
    /// queued -> processing -> staged | failed | cancelled.
    ImportStatus {
        Queued => "queued",
        Processing => "processing",
        Staged => "staged",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

wire_enum!(
    /// The text encoding of an upload, decided while it streams in.
    Encoding {
        Utf8 => "utf-8",
        Windows1252 => "windows-1252",
    }
);
