//! Packages and their limits.

use crate::error::parse_stored;
use crate::Result;
use bizcontacts_domain::{PackageLimits, PackageName};
use sqlx::PgExecutor;

/// A package's row; its name is read from a column called `package`, so
/// the row can be read beside a tenant's (whose `name` is the tenant's).
#[derive(sqlx::FromRow)]
pub(crate) struct PackageRow {
    #[sqlx(rename = "package")]
    name: String,
    users: i32,
    searches_per_day: i32,
    contacts_per_search: i32,
    api_access: bool,
    concurrent_jobs: i32,
    jobs_per_day: i32,
    import_rows_per_day: i32,
}

impl PackageRow {
    pub(crate) fn into_limits(self) -> Result<PackageLimits> {
        Ok(PackageLimits {
            package: parse_stored("packages.name", &self.name)?,
            users: self.users,
            searches_per_day: self.searches_per_day,
            contacts_per_search: self.contacts_per_search,
            api_access: self.api_access,
            concurrent_jobs: self.concurrent_jobs,
            jobs_per_day: self.jobs_per_day,
            import_rows_per_day: self.import_rows_per_day,
        })
    }
}

pub async fn get(db: impl PgExecutor<'_>, name: PackageName) -> Result<PackageLimits> {
    sqlx::query_as::<_, PackageRow>("SELECT name AS package, * FROM packages WHERE name = $1")
        .bind(name.as_str())
        .fetch_one(db)
        .await?
        .into_limits()
}
