//! Contact search and facets: the product's front door.
//!
//! Each request counts one search against the package's searches per day
//! before it runs (one statement, so parallel requests cannot pass the limit
//! together); pages are searches too. Results are capped at the package's
//! contacts per search. The cursor is the last contact id of the page bound
//! to the tenant and the query (a hash of both), so it cannot be replayed
//! into another tenant's or another query's results. A search statement
//! runs at most 3 s (`store::search_pool::SEARCH_TIMEOUT_MS`), then the request
//! is a 503 asking to narrow it: no request holds a connection longer.

use crate::auth::{perm, TenantScope};
use crate::enqueue::Usage;
use crate::error::{ApiError, FieldError, Problem};
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bizcontacts_domain::search::SearchFilter;
use bizcontacts_domain::{PackageLimits, TenantId};
use bizcontacts_store::corpus::Contact;
use bizcontacts_store::search::{self, FacetBy};
use bizcontacts_store::{corrections, usage};
use chrono::Utc;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search_contacts))
        .routes(routes!(contact_facets))
}

/// Results per page when `limit` is not given (or the package's cap, if lower).
const DEFAULT_LIMIT: i64 = 50;

/// The filters, documented (the handler reads the raw query: filters repeat).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct SearchParams {
    /// Countries (ISO 3166 alpha-2 or -3, or a common name); repeat for OR.
    country: Option<Vec<String>>,
    /// ISO 18245 categories (the MCC range names, e.g. "Retail outlets").
    category: Option<Vec<String>>,
    /// smb, mid_market, enterprise, public_sector.
    segment: Option<Vec<String>>,
    /// merchant, supplier, partner, prospect.
    #[param(rename = "type")]
    type_: Option<Vec<String>>,
    /// MCC codes or ranges (`5811-5814`).
    mcc: Option<Vec<String>>,
    /// Free text over company and person names, typo-tolerant (trigrams).
    #[param(max_length = 100)]
    q: Option<String>,
    /// Results per page; capped at the package's contacts per search.
    #[param(minimum = 1)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page of the same search.
    cursor: Option<String>,
}

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct FacetParams {
    /// The dimension to count: country, category, segment or type.
    by: String,
}

/// A contact as a search shows it to one tenant.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FoundContact {
    contact_id: Uuid,
    #[schema(value_type = Object)]
    #[serde(flatten)]
    values: serde_json::Map<String, serde_json::Value>,
    /// Fields whose value comes from a correction (reviewed, or this tenant's own).
    corrected_fields: Vec<String>,
    /// On this tenant's saved list.
    saved: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SearchPage {
    items: Vec<FoundContact>,
    next_cursor: Option<String>,
    /// The page size used: the `limit` asked for, capped by the package.
    limit_applied: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FacetValue {
    value: String,
    count: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FacetsView {
    by: String,
    values: Vec<FacetValue>,
    /// True when the counts come from a 1% sample (the exact count was too slow).
    estimated: bool,
}

/// The query string as (name, value) pairs; unknown names are an error.
fn pairs(raw: &Option<String>, allowed: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let pairs: Vec<(String, String)> =
        form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let unknown: Vec<FieldError> = pairs
        .iter()
        .filter(|(k, _)| !allowed.contains(&k.as_str()))
        .map(|(k, _)| {
            FieldError::new(
                k.clone(),
                format!("is not a parameter here; use {}", allowed.join(", ")),
            )
        })
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::Validation(unknown));
    }
    Ok(pairs)
}

fn one<'a>(pairs: &'a [(String, String)], name: &'static str) -> Result<Option<&'a str>, ApiError> {
    let mut values = pairs
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str());
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::field(name, "may be given once"));
    }
    Ok(first)
}

fn filter(pairs: &[(String, String)]) -> Result<SearchFilter, ApiError> {
    SearchFilter::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))).map_err(|errors| {
        ApiError::Validation(
            errors
                .into_iter()
                .map(|e| FieldError::new(e.field, e.reason))
                .collect(),
        )
    })
}

/// Count one search; a 429 once the day's searches are used up. One
/// statement on a search connection, where it commits without waiting for
/// the WAL flush (why: `store::search_pool`).
async fn charge_search(
    state: &AppState,
    limits: &PackageLimits,
    tenant: TenantId,
) -> Result<Usage, ApiError> {
    let max = limits.searches_per_day;
    let remaining = usage::consume(
        state.search.pool(),
        usage::Counter::Searches,
        tenant,
        Utc::now().date_naive(),
        max,
    )
    .await?;
    let remaining = remaining.ok_or_else(|| ApiError::DailyLimit {
        limit: "searches_per_day",
        max,
        detail: format!("the package allows {max} searches per day; the limit resets at 00:00 UTC"),
    })?;
    Ok(Usage::new(max, remaining))
}

/// The query's fingerprint in a cursor: the tenant and the canonical filter.
fn query_tag(tenant: TenantId, f: &SearchFilter) -> [u8; 12] {
    let digest = Sha256::new()
        .chain_update(tenant.0.as_bytes())
        .chain_update(f.canonical().as_bytes())
        .finalize();
    digest[..12].try_into().expect("12 of 32 bytes")
}

/// The cursor a page ending at `after` hands out for `f`: for clients that
/// start deep in a result list they know (the search benchmark's deep page).
pub fn cursor(tenant: TenantId, f: &SearchFilter, after: Uuid) -> String {
    encode_cursor(after, query_tag(tenant, f))
}

fn encode_cursor(after: Uuid, tag: [u8; 12]) -> String {
    let mut bytes = after.as_bytes().to_vec();
    bytes.extend_from_slice(&tag);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_cursor(raw: &str, tag: [u8; 12]) -> Result<Uuid, ApiError> {
    let bad = || {
        ApiError::field(
            "cursor",
            "is not a cursor of this search; start again without it",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).map_err(|_| bad())?;
    if bytes.len() != 28 || bytes[16..] != tag {
        return Err(bad());
    }
    Uuid::from_slice(&bytes[..16]).map_err(|_| bad())
}

/// A page of contacts as the tenant sees them: its own corrections applied.
async fn found(
    state: &AppState,
    tenant: TenantId,
    rows: Vec<search::Found>,
) -> Result<Vec<FoundContact>, ApiError> {
    let ids: Vec<Uuid> = rows
        .iter()
        .filter(|r| r.own_corrections)
        .map(|r| r.contact.id)
        .collect();
    let mut own = if ids.is_empty() {
        Default::default()
    } else {
        corrections::overlay_many(&state.store.pool, tenant.0, &ids).await?
    };
    Ok(rows
        .into_iter()
        .map(|r| {
            let mine = own.remove(&r.contact.id).unwrap_or_default();
            let saved = r.saved;
            let contact = with_corrections(r.contact, mine);
            FoundContact {
                contact_id: contact.id,
                values: contact.values.to_map(),
                corrected_fields: contact.corrected_fields,
                saved,
            }
        })
        .collect())
}

/// Fold a tenant's corrections into a contact (as `GET /contacts/{id}` does).
pub(crate) fn with_corrections(
    contact: Contact,
    own: Vec<bizcontacts_store::corpus::Values>,
) -> Contact {
    corrections::apply(contact, &own)
}

/// Search the corpus. Filters repeat (OR within a filter, AND across
/// filters); results come in a stable order, a page at a time. Counts one
/// search against the package's searches per day.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/contacts/search", tag = "contacts", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), SearchParams),
    responses((status = 200, body = SearchPage, headers(("X-Usage-Limit" = i32), ("X-Usage-Remaining" = i32))),
        (status = 429, body = Problem, description = "the day's searches are used up; see Retry-After"),
        (status = 503, body = Problem, description = "the search ran past its time bound; narrow it")))]
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant_id()))]
async fn search_contacts(
    State(state): State<AppState>,
    scope: TenantScope<perm::ContactsSearch>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = pairs(
        &raw,
        &[
            "country", "category", "segment", "type", "mcc", "q", "limit", "cursor",
        ],
    )?;
    let f = filter(&pairs)?;
    let tenant = scope.tenant_id();
    let tag = query_tag(tenant, &f);
    let after = one(&pairs, "cursor")?
        .map(|c| decode_cursor(c, tag))
        .transpose()?;
    let cap = i64::from(scope.limits.contacts_per_search).max(1);
    let limit = match one(&pairs, "limit")? {
        None => DEFAULT_LIMIT.min(cap),
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) if n >= 1 => n.min(cap),
            _ => {
                return Err(ApiError::field(
                    "limit",
                    "must be a whole number of at least 1",
                ))
            }
        },
    };
    let usage = charge_search(&state, &scope.limits, tenant).await?;
    let mut rows = search::search(&state.search, tenant, &f, after, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = more
        .then(|| rows.last().map(|r| encode_cursor(r.contact.id, tag)))
        .flatten();
    let items = found(&state, tenant, rows).await?;
    Ok(usage.on(Json(SearchPage {
        items,
        next_cursor,
        limit_applied: limit,
    })
    .into_response()))
}

/// Top values of one dimension (`by`) among the contacts a search would
/// find, with counts: exact, or estimated from a sample when counting
/// exactly takes too long (`estimated`). Counts one search.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}/contacts/facets", tag = "contacts", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), FacetParams, SearchParams),
    responses((status = 200, body = FacetsView, headers(("X-Usage-Limit" = i32), ("X-Usage-Remaining" = i32))),
        (status = 429, body = Problem, description = "the day's searches are used up; see Retry-After"),
        (status = 503, body = Problem, description = "the count ran past its time bound; narrow it")))]
#[tracing::instrument(skip_all, fields(tenant_id = %scope.tenant_id()))]
async fn contact_facets(
    State(state): State<AppState>,
    scope: TenantScope<perm::ContactsSearch>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = pairs(
        &raw,
        &["country", "category", "segment", "type", "mcc", "q", "by"],
    )?;
    let f = filter(&pairs)?;
    let by = match one(&pairs, "by")? {
        Some("country") => FacetBy::Country,
        Some("category") => FacetBy::Category,
        Some("segment") => FacetBy::Segment,
        Some("type") => FacetBy::Type,
        _ => {
            return Err(ApiError::field(
                "by",
                "must be one of country, category, segment, type",
            ))
        }
    };
    let usage = charge_search(&state, &scope.limits, scope.tenant_id()).await?;
    let facets = search::facets(&state.search, &f, by).await?;
    Ok(usage.on(Json(FacetsView {
        by: one(&pairs, "by")?.unwrap_or_default().to_string(),
        values: facets
            .values
            .into_iter()
            .map(|(value, count)| FacetValue { value, count })
            .collect(),
        estimated: facets.estimated,
    })
    .into_response()))
}
