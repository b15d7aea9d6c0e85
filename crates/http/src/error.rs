//! `ApiError`: the intake's one error type, rendered as RFC 9457 problem+json.
//!
//! Handlers return `Result<_, ApiError>`. Client errors carry a detail fit to
//! show; `Internal` is logged here (inside the request span, so with its request
//! id) and answered with a generic 500 that leaks nothing. The
//! [`crate::middleware::problem_responses`] layer adds `request_id` and
//! `instance`, and turns errors produced outside handlers (unknown routes, 405,
//! 413 from the body limit) into the same shape.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bizcontacts_store::StoreError;
use serde::Serialize;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON path of the field, e.g. `scopes[1]` or `email`.
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The RFC 9457 body every error response carries.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The id of this request in our logs; quote it to support.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// For validation errors: every offending field and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub errors: Option<serde_json::Value>,
    /// For limit errors: the package limit that was hit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        let slug = match status {
            StatusCode::BAD_REQUEST => "bad-request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not-found",
            StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
            StatusCode::CONFLICT => "conflict",
            StatusCode::GONE => "gone",
            StatusCode::REQUEST_TIMEOUT => "request-timeout",
            StatusCode::PAYLOAD_TOO_LARGE => "payload-too-large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
            StatusCode::UNPROCESSABLE_ENTITY => "validation-error",
            StatusCode::TOO_MANY_REQUESTS => "limit-exceeded",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            s if s.is_server_error() => "internal-error",
            _ => "error",
        };
        Self {
            type_: format!("/problems/{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            instance: None,
            request_id: None,
            errors: None,
            limit: None,
        }
    }

    pub fn into_response_with(self, extra: impl FnOnce(&mut Response)) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut res = (status, body).into_response();
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        extra(&mut res);
        res
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        self.into_response_with(|_| {})
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    /// It existed and is gone for good (an expired export): 410.
    #[error("{0}")]
    Gone(String),
    #[error("request is invalid")]
    Validation(Vec<FieldError>),
    #[error("{detail}")]
    LimitReached { limit: &'static str, detail: String },
    /// A daily package limit: 429 with `Retry-After` until the next UTC midnight.
    #[error("{detail}")]
    DailyLimit {
        limit: &'static str,
        max: i32,
        detail: String,
    },
    /// Too many attempts or requests at once (sign-in back-off, concurrent
    /// uploads): 429 with `Retry-After` of `retry_after` seconds.
    #[error("{detail}")]
    Throttled {
        limit: &'static str,
        detail: String,
        retry_after: u64,
    },
    /// The client stopped sending its request body.
    #[error("{0}")]
    RequestTimeout(String),
    /// A dependency is down or saturated; the client may retry after a while.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn field(field: &str, reason: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, reason)])
    }

    /// A request body that failed while it was read: a 408 when the client
    /// went quiet past the idle timeout, else a 400 saying it broke off.
    pub fn body(err: &(dyn std::error::Error + 'static)) -> Self {
        let mut cause = Some(err);
        while let Some(e) = cause {
            if e.is::<tower_http::timeout::TimeoutError>() {
                return ApiError::RequestTimeout(
                    "the request body stopped arriving; send it again without long pauses".into(),
                );
            }
            cause = e.source();
        }
        ApiError::BadRequest(format!("the request body was interrupted: {err}"))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_timeout() {
            return ApiError::Unavailable(
                "the request took too long and was stopped; narrow it (more filters) or try again"
                    .into(),
            );
        }
        match e {
            StoreError::NotFound => ApiError::NotFound("resource"),
            StoreError::Conflict(msg) => ApiError::Conflict(msg),
            StoreError::Invalid { field, reason } => ApiError::field(field, reason),
            StoreError::LimitReached { limit, max } => ApiError::LimitReached {
                limit,
                detail: format!("the package allows {max} {limit}; this request would exceed it"),
            },
            other => ApiError::Internal(other.into()),
        }
    }
}

/// Map a store error, naming what was not found (`.map_err(not_found("member"))`).
pub fn not_found(what: &'static str) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::NotFound => ApiError::NotFound(what),
        other => other.into(),
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match &self {
            ApiError::Unauthorized(d) => Problem::new(StatusCode::UNAUTHORIZED, d),
            ApiError::Forbidden(d) => Problem::new(StatusCode::FORBIDDEN, d),
            ApiError::NotFound(what) => {
                Problem::new(StatusCode::NOT_FOUND, format!("{what} not found"))
            }
            ApiError::BadRequest(d) => Problem::new(StatusCode::BAD_REQUEST, d),
            ApiError::Conflict(d) => Problem::new(StatusCode::CONFLICT, d),
            ApiError::Gone(d) => Problem::new(StatusCode::GONE, d),
            ApiError::Validation(errors) => Problem {
                errors: serde_json::to_value(errors).ok(),
                ..Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    errors
                        .iter()
                        .map(|e| format!("{}: {}", e.field, e.reason))
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            },
            ApiError::LimitReached { limit, detail } => Problem {
                limit: Some((*limit).to_string()),
                ..Problem::new(StatusCode::CONFLICT, detail)
            },
            ApiError::DailyLimit { limit, detail, .. } => Problem {
                limit: Some((*limit).to_string()),
                ..Problem::new(StatusCode::TOO_MANY_REQUESTS, detail)
            },
            ApiError::Throttled { limit, detail, .. } => Problem {
                limit: Some((*limit).to_string()),
                ..Problem::new(StatusCode::TOO_MANY_REQUESTS, detail)
            },
            ApiError::RequestTimeout(d) => Problem::new(StatusCode::REQUEST_TIMEOUT, d),
            ApiError::Unavailable(d) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, d),
            ApiError::PayloadTooLarge(d) => Problem::new(StatusCode::PAYLOAD_TOO_LARGE, d),
            ApiError::UnsupportedMediaType(d) => {
                Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, d)
            }
            ApiError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "request failed");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "an internal error occurred; quote the request id to support",
                )
            }
        };
        let unauthorized = matches!(self, ApiError::Unauthorized(_));
        let daily = match &self {
            ApiError::DailyLimit { max, .. } => Some(*max),
            _ => None,
        };
        let retry_after = match &self {
            ApiError::Throttled { retry_after, .. } => Some(*retry_after),
            ApiError::Unavailable(_) => Some(5),
            _ => None,
        };
        let closes = matches!(self, ApiError::RequestTimeout(_));
        problem.into_response_with(|res| {
            if let Some(secs) = retry_after {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            if closes {
                // The rest of the body may never come: do not wait for it.
                res.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            if let Some(max) = daily {
                let h = res.headers_mut();
                h.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(seconds_to_utc_midnight()),
                );
                h.insert("x-usage-limit", HeaderValue::from(max));
                h.insert("x-usage-remaining", HeaderValue::from(0));
            }
            if unauthorized {
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
        })
    }
}

/// Seconds until the next UTC midnight, when daily limits start over.
pub fn seconds_to_utc_midnight() -> u64 {
    let now = chrono::Utc::now();
    let midnight = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .expect("valid time");
    (midnight.and_utc() - now).num_seconds().max(1) as u64
}
