//! Cursor pagination: `?limit=&cursor=` -> `{items, next_cursor}`.
//!
//! Every listed table has time-ordered UUIDv7 ids, so the cursor is simply the
//! last id of the page; it is stable under inserts and needs no offset scans.

use crate::error::ApiError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::field(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            )),
        }
    }

    pub fn cursor(&self) -> Result<Option<Uuid>, ApiError> {
        self.cursor
            .as_deref()
            .map(|c| {
                Uuid::parse_str(c)
                    .map_err(|_| ApiError::field("cursor", "is not a cursor returned by this API"))
            })
            .transpose()
    }

    /// For lists without a stable id order (pairs ranked by score): the
    /// cursor is how many items came before.
    pub fn offset(&self) -> Result<i64, ApiError> {
        match self.cursor.as_deref() {
            None => Ok(0),
            Some(c) => {
                c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    ApiError::field("cursor", "is not a cursor returned by this API")
                })
            }
        }
    }
}

impl<T> Page<T> {
    /// A page from `limit + 1` items fetched at `offset` (see [`PageParams::offset`]).
    pub fn from_offset(mut items: Vec<T>, offset: i64, limit: i64) -> Self {
        let next_cursor = (items.len() as i64 > limit).then(|| (offset + limit).to_string());
        items.truncate(limit as usize);
        Page { items, next_cursor }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Build a page from `limit + 1` fetched rows: the extra row only says there is more.
    pub fn from_rows<R>(
        mut rows: Vec<R>,
        limit: i64,
        id: impl Fn(&R) -> Uuid,
        map: impl Fn(R) -> T,
    ) -> Self {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| id(r).to_string())
        } else {
            None
        };
        Page {
            items: rows.into_iter().map(map).collect(),
            next_cursor,
        }
    }
}
