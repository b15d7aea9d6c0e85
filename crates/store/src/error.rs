//! The store's one error type. Callers map it to their own layer (the intake to
//! problem+json); `Conflict` and `NotFound` carry text fit for a client, the
//! others are internal and must be logged, not shown.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    /// The request names something that cannot be used this way (a row of
    /// another batch, an invalid row to approve); `field` is the request's.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// A package limit would be exceeded; `limit` is its name in the packages table.
    #[error("package limit {limit} ({max}) reached")]
    LimitReached { limit: &'static str, max: i64 },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored value is invalid: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// True when Postgres cancelled a statement for its `statement_timeout`.
    pub fn is_timeout(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.code().as_deref() == Some("57014"))
    }

    /// True when Postgres rejected a write for a unique constraint.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

/// Parse a stored enum value, turning a bad value into [`StoreError::Corrupt`].
pub(crate) fn parse_stored<T: std::str::FromStr>(
    column: &str,
    value: &str,
) -> Result<T, StoreError> {
    value
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("{column} = {value:?}")))
}
