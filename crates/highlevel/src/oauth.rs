//! OAuth 2.0 with HighLevel (authorization code, Location tokens).
//!
//! The consent screen is HighLevel's "choose location" page (or its
//! white-label twin); the code comes back to our callback and is exchanged
//! at `POST /oauth/token` (form-encoded, client credentials in the body,
//! `user_type=Location`). Every refresh returns a new refresh token and
//! spends the old one: the caller must store the new pair before anything
//! else (see the jobs' `HighLevelSession`).

use crate::{Client, Error};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, EndpointNotSet, EndpointSet,
    ExtraTokenFields, RedirectUrl, RefreshToken, RequestTokenError, StandardRevocableToken,
    StandardTokenResponse, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The fields HighLevel adds to a token response.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HighLevelFields {
    #[serde(default)]
    pub location_id: Option<String>,
    #[serde(default)]
    pub company_id: Option<String>,
    #[serde(default)]
    pub user_type: Option<String>,
}

impl ExtraTokenFields for HighLevelFields {}

type Response = StandardTokenResponse<HighLevelFields, BasicTokenType>;
type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    Response,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// What a code exchange or a refresh gives.
pub struct Tokens {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub expires_in: Option<Duration>,
    /// Granted scopes (HighLevel lists them space separated).
    pub scopes: Vec<String>,
    pub location_id: Option<String>,
    pub company_id: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("expires_in", &self.expires_in)
            .field("scopes", &self.scopes)
            .field("location_id", &self.location_id)
            .finish_non_exhaustive()
    }
}

/// Our marketplace app: its credentials and where HighLevel sends people back.
#[derive(Clone)]
pub struct App {
    pub client_id: String,
    pub client_secret: SecretString,
    pub redirect_url: String,
}

/// The consent URL: `response_type=code`, our client id, redirect and
/// scopes, and `state`.
pub fn authorize_url(authorize: &str, app: &App, scopes: &[&str], state: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &app.client_id)
        .append_pair("redirect_uri", &app.redirect_url)
        .append_pair("scope", &scopes.join(" "))
        .append_pair("state", state)
        .finish();
    let sep = if authorize.contains('?') { '&' } else { '?' };
    format!("{authorize}{sep}{query}")
}

impl Client {
    /// Exchange a consent's `code` for Location tokens.
    pub async fn exchange_code(&self, app: &App, code: &str) -> Result<Tokens, Error> {
        let call = "POST /oauth/token (authorization_code)";
        let client = self.oauth(app, call)?;
        let status = Arc::new(Mutex::new(0u16));
        let http = self.recording(status.clone());
        let res = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .add_extra_param("user_type", "Location")
            .request_async(&http)
            .await;
        tokens(call, res, &status)
    }

    /// A new token pair for a refresh token (which is then spent).
    pub async fn refresh(&self, app: &App, refresh: &SecretString) -> Result<Tokens, Error> {
        let call = "POST /oauth/token (refresh_token)";
        let client = self.oauth(app, call)?;
        let status = Arc::new(Mutex::new(0u16));
        let http = self.recording(status.clone());
        let res = client
            .exchange_refresh_token(&RefreshToken::new(refresh.expose_secret().to_string()))
            .add_extra_param("user_type", "Location")
            .request_async(&http)
            .await;
        tokens(call, res, &status)
    }

    fn oauth(&self, app: &App, call: &'static str) -> Result<OAuthClient, Error> {
        let bad = |what: &str| Error::Transport {
            call,
            reason: format!("{what} is not a valid URL"),
        };
        Ok(oauth2::Client::new(ClientId::new(app.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                app.client_secret.expose_secret().to_string(),
            ))
            .set_auth_type(AuthType::RequestBody)
            .set_token_uri(
                TokenUrl::new(format!("{}/oauth/token", self.base))
                    .map_err(|_| bad("highlevel.api_base_url"))?,
            )
            .set_redirect_uri(
                RedirectUrl::new(app.redirect_url.clone())
                    .map_err(|_| bad("highlevel.redirect_url"))?,
            ))
    }

    /// The `oauth2` crate's HTTP client, through our reqwest client (its
    /// time bound, no redirects), keeping the response status: HighLevel's
    /// errors are not RFC 6749 JSON, so a refused grant would otherwise be
    /// indistinguishable from an outage.
    fn recording(
        &self,
        status: Arc<Mutex<u16>>,
    ) -> impl Fn(
        oauth2::HttpRequest,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse, reqwest::Error>> + Send>,
    > {
        let http = self.http().clone();
        move |req: oauth2::HttpRequest| {
            let (http, status) = (http.clone(), status.clone());
            Box::pin(async move {
                let (parts, body) = req.into_parts();
                let mut out = http.request(parts.method, parts.uri.to_string());
                for (name, value) in &parts.headers {
                    out = out.header(name, value);
                }
                let res = out.body(body).send().await?;
                *status.lock().expect("status lock") = res.status().as_u16();
                let mut builder = http::Response::builder().status(res.status());
                for (name, value) in res.headers() {
                    builder = builder.header(name, value);
                }
                let bytes = res.bytes().await?;
                Ok(builder
                    .body(bytes.to_vec())
                    .expect("a response rebuilt from a valid one"))
            })
        }
    }
}

fn tokens<RE: std::error::Error + 'static>(
    call: &'static str,
    res: Result<Response, RequestTokenError<RE, BasicErrorResponse>>,
    status: &Mutex<u16>,
) -> Result<Tokens, Error> {
    let status = *status.lock().expect("status lock");
    match res {
        Ok(t) => Ok(Tokens {
            access_token: SecretString::from(t.access_token().secret().clone()),
            refresh_token: t
                .refresh_token()
                .map(|r| SecretString::from(r.secret().clone())),
            expires_in: t.expires_in(),
            scopes: t
                .scopes()
                .map(|s| s.iter().map(|s| s.to_string()).collect())
                .unwrap_or_default(),
            location_id: t.extra_fields().location_id.clone(),
            company_id: t.extra_fields().company_id.clone(),
        }),
        // A refused code or refresh token: 400 invalid_grant, or 401.
        Err(_) if matches!(status, 400 | 401 | 403) => Err(Error::Unauthorized { call, status }),
        Err(RequestTokenError::Request(e)) => Err(Error::Transport {
            call,
            reason: e.to_string(),
        }),
        Err(RequestTokenError::ServerResponse(e)) => Err(Error::Status {
            call,
            status,
            message: e.error().to_string(),
        }),
        Err(_) if status == 429 => Err(Error::RateLimited {
            call,
            retry_after: Duration::from_secs(10),
        }),
        Err(_) => Err(Error::Status {
            call,
            status,
            message: "unexpected token response".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consent_url_carries_what_highlevel_asks_for() {
        let app = App {
            client_id: "cid".into(),
            client_secret: SecretString::from("shh"),
            redirect_url: "https://bc.example/v1/crm/oauth/callback".into(),
        };
        let url = authorize_url(
            "https://marketplace.gohighlevel.com/v2/oauth/chooselocation",
            &app,
            &crate::SCOPES,
            "st&ate",
        );
        assert_eq!(
            url,
            "https://marketplace.gohighlevel.com/v2/oauth/chooselocation?response_type=code\
             &client_id=cid&redirect_uri=https%3A%2F%2Fbc.example%2Fv1%2Fcrm%2Foauth%2Fcallback\
             &scope=contacts.readonly+contacts.write+locations.readonly&state=st%26ate"
        );
        assert!(!url.contains("shh"));
    }
}
