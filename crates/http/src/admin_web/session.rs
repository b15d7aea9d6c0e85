//! Sign-in to the dashboard and the extractor every page uses.
//!
//! The cookie holds an ordinary session token (`sessions`, hashed at rest),
//! made by the same throttled, audited sign-in as `POST /v1/auth/login`, but
//! only for users with a system role. The CSRF token is derived from the
//! session token (SHA-256 with a label): a page from another origin can
//! neither read the cookie nor compute it, and it needs no table.

use super::page::{bare, PageError};
use crate::auth::{authenticate, perm, Credential, Principal, Requires};
use crate::error::ApiError;
use crate::extract::{ClientAddr, RequestId};
use crate::routes::session::sign_in;
use crate::state::AppState;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use bizcontacts_domain::SystemRole;
use bizcontacts_security::{hashes_equal, SESSION_TOKEN_PREFIX};
use bizcontacts_store::{sessions, users};
use maud::html;
use sha2::{Digest, Sha256};
use std::marker::PhantomData;

pub const COOKIE: &str = "bc_admin";

/// A signed-in system-role user whose roles grant `P` (default: read).
pub struct Operator<P = perm::AdminMonitor> {
    /// Who acts, for audit events ([`crate::auth::Principal::event`]).
    pub principal: Principal,
    pub email: String,
    /// The token this session's forms must carry.
    pub csrf: String,
    pub session: bizcontacts_domain::SessionId,
    _p: PhantomData<P>,
}

impl<P> Operator<P> {
    pub fn role_label(&self) -> &'static str {
        if self.can_operate() {
            "platform admin"
        } else {
            "support, read only"
        }
    }

    /// Whether this operator may retry and cancel (the pages hide the
    /// buttons otherwise; the actions check again).
    pub fn can_operate(&self) -> bool {
        self.principal
            .system_roles
            .contains(&SystemRole::PlatformAdmin)
    }

    /// Refuse a form without this session's CSRF token.
    pub fn check_csrf(&self, presented: Option<&str>) -> Result<(), PageError> {
        match presented {
            Some(t) if hashes_equal(t.as_bytes(), self.csrf.as_bytes()) => Ok(()),
            _ => Err(ApiError::Forbidden(
                "the form's CSRF token is missing or wrong; reload the page and try again".into(),
            )
            .into()),
        }
    }
}

fn csrf_of(token: &str) -> String {
    let digest = Sha256::digest(format!("bizcontacts-admin-csrf:{token}").as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
}

fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    cookie_value(headers, COOKIE).filter(|v| v.starts_with(SESSION_TOKEN_PREFIX))
}

impl<P: Requires> FromRequestParts<AppState> for Operator<P> {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let token =
            cookie_token(&parts.headers).ok_or_else(|| ApiError::Unauthorized("sign in".into()))?;
        let principal = authenticate(state, token).await?;
        let Credential::Session(session) = principal.credential else {
            return Err(ApiError::Unauthorized("sign in".into()).into());
        };
        if !principal.system_permissions().contains(P::PERMISSION) {
            return Err(ApiError::Forbidden(format!(
                "this page or action needs the system permission {}",
                P::PERMISSION
            ))
            .into());
        }
        let user = users::get(&state.store.pool, principal.user_id).await?;
        Ok(Operator {
            principal,
            email: user.email,
            csrf: csrf_of(token),
            session,
            _p: PhantomData,
        })
    }
}

/// The sign-in form's own CSRF guard (there is no session yet): a random
/// value in a cookie scoped to the form, and the same value in the form
/// (double submit). A page on another origin can neither read the cookie
/// nor make the browser send it (`SameSite=Strict`), so it cannot sign a
/// victim in to the attacker's account.
const LOGIN_COOKIE: &str = "bc_admin_login";

fn login_page(status: StatusCode, message: Option<&str>, secure: bool) -> Response {
    let token: String = (0..16)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    let page = bare(
        "Sign in",
        html! {
            @if let Some(m) = message { p.error { (m) } }
            form.login method="post" action="/admin/login" {
                input type="hidden" name="csrf" value=(token);
                label { "Email" input type="email" name="email" autocomplete="username" required; }
                label { "Password" input type="password" name="password" autocomplete="current-password" required; }
                button type="submit" { "Sign in" }
            }
            p.hint { "For platform administrators and support staff." }
        },
    );
    let cookie = format!(
        "{LOGIN_COOKIE}={token}; Path=/admin/login; HttpOnly; SameSite=Strict; Max-Age=3600{}",
        if secure { "; Secure" } else { "" }
    );
    let mut res = (status, page).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("hex is visible ASCII"),
    );
    res
}

pub async fn form(State(state): State<AppState>) -> Response {
    login_page(StatusCode::OK, None, state.secure_cookies)
}

#[derive(serde::Deserialize)]
pub struct SignIn {
    email: String,
    password: String,
    csrf: Option<String>,
}

/// Sign in: the API's throttled sign-in, then a system role is required.
pub async fn submit(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    ClientAddr(address): ClientAddr,
    headers: HeaderMap,
    axum::Form(f): axum::Form<SignIn>,
) -> Response {
    let secure = state.secure_cookies;
    let expected = cookie_value(&headers, LOGIN_COOKIE);
    let matches = match (expected, f.csrf.as_deref()) {
        (Some(a), Some(b)) => !a.is_empty() && hashes_equal(a.as_bytes(), b.as_bytes()),
        _ => false,
    };
    if !matches {
        let message = "The sign-in form expired or did not come from this site; try again.";
        return login_page(StatusCode::FORBIDDEN, Some(message), secure);
    }
    let signed = sign_in(&state, &f.email, f.password, address, request_id.as_deref()).await;
    let (token, _, user) = match signed {
        Ok(s) => s,
        Err(ApiError::Unauthorized(_)) => {
            return login_page(
                StatusCode::UNAUTHORIZED,
                Some("Wrong email or password."),
                secure,
            );
        }
        Err(e) => return PageError(e).into_response(),
    };
    match users::system_roles(&state.store.pool, user).await {
        Ok(roles) if !roles.is_empty() => {}
        Ok(_) => {
            // A tenant user: the session just made is ended at once.
            let _ = revoke_token(&state, &token).await;
            let message = "This account has no platform role; the dashboard is for platform staff.";
            return login_page(StatusCode::FORBIDDEN, Some(message), secure);
        }
        Err(e) => return PageError(e.into()).into_response(),
    }
    let mut res = Redirect::to("/admin").into_response();
    let cookie = format!(
        "{COOKIE}={token}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={}{}",
        state.session_ttl.num_seconds(),
        if state.secure_cookies { "; Secure" } else { "" }
    );
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("a token is visible ASCII"),
    );
    res
}

async fn revoke_token(state: &AppState, token: &str) -> Result<(), ApiError> {
    if let Some(s) =
        sessions::find_by_hash(&state.store.pool, &bizcontacts_security::token_hash(token)).await?
    {
        sessions::revoke(&state.store.pool, s.id).await?;
    }
    Ok(())
}

#[derive(serde::Deserialize)]
pub struct CsrfOnly {
    csrf: Option<String>,
}

pub async fn logout(
    State(state): State<AppState>,
    op: Operator,
    axum::Form(f): axum::Form<CsrfOnly>,
) -> Result<Response, PageError> {
    op.check_csrf(f.csrf.as_deref())?;
    sessions::revoke(&state.store.pool, op.session).await?;
    let mut res = Redirect::to("/admin/login").into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("bc_admin=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(res)
}
