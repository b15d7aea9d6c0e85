//! Domain values of Business Contacts.
//!
//! Everything here can only exist in a valid form: an [`Email`] is built by
//! [`Email::parse`], a [`Role`] or [`Permission`] by parsing its wire name. Other
//! crates take these types instead of strings, so a handler or a query never has
//! to wonder whether a value was checked.
//!
//! Start with [`access`]: the role/permission matrix of `shared/spec/product.md`
//! lives there and nowhere else.

pub mod access;
pub mod batch;
pub mod contact;
pub mod email;
pub mod ids;
pub mod locks;
pub mod package;
pub mod search;

pub use access::{Permission, Role, SystemRole};
pub use contact::{CountryCode, Field, FieldError, Mcc, PhoneE164, Website};
pub use email::Email;
pub use ids::{ApiKeyId, SessionId, TenantId, UserId};
pub use package::{PackageLimits, PackageName};

/// A value that failed to parse into a domain type; `reason` is fit for a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ParseError {
    pub reason: String,
}

impl ParseError {
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}
