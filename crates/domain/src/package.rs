//! Packages (plans) and their limits.

use crate::ParseError;
use serde::{Deserialize, Serialize};

/// One of the plans a tenant can be on. The limits themselves live in the
/// database (platform admins edit them); this is only the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PackageName {
    Free,
    Starter,
    Pro,
    Enterprise,
}

impl PackageName {
    pub const ALL: [PackageName; 4] = [Self::Free, Self::Starter, Self::Pro, Self::Enterprise];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Starter => "starter",
            Self::Pro => "pro",
            Self::Enterprise => "enterprise",
        }
    }
}

impl std::str::FromStr for PackageName {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| ParseError::new("must be one of free, starter, pro, enterprise"))
    }
}

impl std::fmt::Display for PackageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The limits of a package, as stored in the `packages` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PackageLimits {
    pub package: PackageName,
    /// Members a tenant may have.
    pub users: i32,
    pub searches_per_day: i32,
    pub contacts_per_search: i32,
    /// Whether API keys may be used at all.
    pub api_access: bool,
    /// Jobs of the tenant running at once across all workers.
    pub concurrent_jobs: i32,
    pub jobs_per_day: i32,
    pub import_rows_per_day: i32,
}
