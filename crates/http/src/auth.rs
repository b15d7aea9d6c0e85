//! Authentication and authorisation as extractors.
//!
//! A handler states what it needs in its signature and cannot forget the check:
//! - [`Principal`]: any valid bearer token (session or API key), else 401.
//! - [`TenantScope<P>`]: the `{tenant_id}` of the path, where the principal
//!   holds permission `P`. Not a member (nor a system role that reaches every
//!   tenant), or an API key of another tenant: 404, so the tenant's existence is
//!   not revealed. A member without `P`: 403.
//! - [`SystemScope<P>`]: a platform-wide permission from a system role, else 403.
//!
//! There is deliberately no `Option<Principal>` use: an invalid token must be a
//! 401, never silently treated as anonymous.
//!
//! An API key's permissions are its scopes intersected with what its owner may
//! do *now*, re-read on every request, so demoting a user immediately narrows
//! their keys.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use bizcontacts_domain::access::{system_permissions, tenant_permissions, PermissionSet};
use bizcontacts_domain::{
    ApiKeyId, PackageLimits, Permission, SessionId, SystemRole, TenantId, UserId,
};
use bizcontacts_security::{hashes_equal, token_hash, API_KEY_PREFIX, SESSION_TOKEN_PREFIX};
use bizcontacts_store::audit::{Actor, NewEvent};
use bizcontacts_store::tenants::{Tenant, TenantStatus};
use bizcontacts_store::{api_keys, sessions, tenants, users};
use chrono::Utc;
use std::marker::PhantomData;

/// How the caller proved who they are.
#[derive(Debug, Clone)]
pub enum Credential {
    Session(SessionId),
    ApiKey {
        id: ApiKeyId,
        /// `None` for a system-role key.
        tenant: Option<TenantId>,
        scopes: PermissionSet,
    },
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: UserId,
    pub credential: Credential,
    pub system_roles: Vec<SystemRole>,
}

impl Principal {
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: Some(self.user_id),
            api_key_id: match self.credential {
                Credential::ApiKey { id, .. } => Some(id),
                Credential::Session(_) => None,
            },
        }
    }

    /// An audit event acted by this principal.
    pub fn event<'a>(
        &self,
        tenant_id: Option<TenantId>,
        action: &'a str,
        target: (&'a str, String),
        details: serde_json::Value,
        request_id: Option<&'a str>,
    ) -> NewEvent<'a> {
        NewEvent {
            tenant_id,
            actor: self.actor(),
            action,
            target_type: Some(target.0),
            target_id: Some(target.1),
            details,
            request_id,
        }
    }

    fn scopes(&self) -> Option<PermissionSet> {
        match &self.credential {
            Credential::ApiKey { scopes, .. } => Some(*scopes),
            Credential::Session(_) => None,
        }
    }

    /// Platform-wide permissions: system roles, narrowed by key scopes. A
    /// tenant-bound key never carries platform permissions.
    pub fn system_permissions(&self) -> PermissionSet {
        let held = system_permissions(&self.system_roles);
        match &self.credential {
            Credential::Session(_) => held,
            Credential::ApiKey {
                tenant: None,
                scopes,
                ..
            } => held.intersect(*scopes),
            Credential::ApiKey {
                tenant: Some(_), ..
            } => PermissionSet::empty(),
        }
    }
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
        ApiError::Unauthorized(
            "missing Authorization header; send 'Authorization: Bearer <token>'".into(),
        )
    })?;
    let value = value.to_str().map_err(|_| {
        ApiError::Unauthorized("malformed Authorization header: not visible ASCII".into())
    })?;
    let (scheme, token) = value.split_once(' ').ok_or_else(|| {
        ApiError::Unauthorized("malformed Authorization header: expected 'Bearer <token>'".into())
    })?;
    if !scheme.eq_ignore_ascii_case("bearer")
        || token.trim().is_empty()
        || token.trim().contains(' ')
    {
        return Err(ApiError::Unauthorized(
            "malformed Authorization header: expected 'Bearer <token>'".into(),
        ));
    }
    Ok(token.trim())
}

pub(crate) async fn authenticate(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let db = &state.store.pool;
    let now = Utc::now();
    let (user_id, credential) = if token.starts_with(SESSION_TOKEN_PREFIX) {
        let session = sessions::find_by_hash(db, &token_hash(token))
            .await?
            .ok_or_else(|| ApiError::Unauthorized("invalid token".into()))?;
        if session.revoked_at.is_some() {
            return Err(ApiError::Unauthorized("session has been signed out".into()));
        }
        if session.expires_at <= now {
            return Err(ApiError::Unauthorized(
                "session has expired; sign in again".into(),
            ));
        }
        if sessions::touch_due(session.last_used_at, now) {
            sessions::touch(db, session.id).await?;
        }
        (session.user_id, Credential::Session(session.id))
    } else if token.starts_with(API_KEY_PREFIX) {
        let prefix = token.get(..API_KEY_PREFIX.len() + 8).unwrap_or(token);
        let presented = token_hash(token);
        let key = api_keys::find_by_prefix(db, prefix)
            .await?
            .into_iter()
            .find(|k| hashes_equal(&k.key_hash, &presented))
            .ok_or_else(|| ApiError::Unauthorized("invalid token".into()))?;
        if key.revoked_at.is_some() {
            return Err(ApiError::Unauthorized("API key has been revoked".into()));
        }
        if key.expires_at.is_some_and(|e| e <= now) {
            return Err(ApiError::Unauthorized("API key has expired".into()));
        }
        if sessions::touch_due(key.last_used_at, now) {
            api_keys::touch(db, key.id).await?;
        }
        let credential = Credential::ApiKey {
            id: key.id,
            tenant: key.tenant_id,
            scopes: PermissionSet::of(&key.scopes),
        };
        (key.user_id, credential)
    } else {
        return Err(ApiError::Unauthorized("invalid token".into()));
    };
    let system_roles = users::system_roles(db, user_id).await?;
    if let Some(id) = credential_tenant(&credential) {
        tracing::Span::current().record("tenant_id", tracing::field::display(id));
    }
    tracing::Span::current().record("user_id", tracing::field::display(user_id));
    Ok(Principal {
        user_id,
        credential,
        system_roles,
    })
}

fn credential_tenant(c: &Credential) -> Option<TenantId> {
    match c {
        Credential::ApiKey { tenant, .. } => *tenant,
        Credential::Session(_) => None,
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Several extractors of one request share one lookup.
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(p.clone());
        }
        let principal = authenticate(state, bearer(parts)?).await?;
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

/// A permission as a type, for [`TenantScope`] and [`SystemScope`].
pub trait Requires: Send + Sync + 'static {
    const PERMISSION: Permission;
    /// Another permission that suffices instead (reading what either role works on).
    const OR: Option<Permission> = None;

    fn allowed(held: &PermissionSet) -> bool {
        held.contains(Self::PERMISSION) || Self::OR.is_some_and(|p| held.contains(p))
    }

    fn describe() -> String {
        match Self::OR {
            Some(or) => format!("{} or {or}", Self::PERMISSION),
            None => Self::PERMISSION.to_string(),
        }
    }
}

/// One marker type per permission: `TenantScope<perm::KeysManage>`.
pub mod perm {
    use super::Requires;
    use bizcontacts_domain::Permission;

    macro_rules! markers {
        ($($name:ident),+ $(,)?) => {
            $(
                #[doc = concat!("Requires `Permission::", stringify!($name), "`.")]
                pub struct $name;
                impl Requires for $name {
                    const PERMISSION: Permission = Permission::$name;
                }
            )+
        };
    }

    markers!(
        ContactsSearch,
        ContactsSave,
        ImportsWrite,
        ImportsReview,
        CrmConnect,
        CrmSync,
        BillingManage,
        JobsRead,
        UsersManage,
        KeysManage,
        UsageRead,
        AdminMonitor,
        AdminOperate,
        AdminQuarantine,
    );

    /// Reading a tenant's imports: the importers who made them and the
    /// reviewers who decide on them.
    pub struct ImportsRead;
    impl Requires for ImportsRead {
        const PERMISSION: Permission = Permission::ImportsWrite;
        const OR: Option<Permission> = Some(Permission::ImportsReview);
    }

    /// Seeing the CRM connection: who syncs with it and who manages it.
    pub struct CrmRead;
    impl Requires for CrmRead {
        const PERMISSION: Permission = Permission::CrmSync;
        const OR: Option<Permission> = Some(Permission::CrmConnect);
    }
}

/// A request inside one tenant, by a principal holding `P` there.
pub struct TenantScope<P> {
    pub tenant: Tenant,
    /// The limits of the tenant's package as of this request.
    pub limits: PackageLimits,
    pub principal: Principal,
    /// Everything the principal may do in this tenant (for checks such as "a
    /// new key's scopes must not exceed the creator's").
    pub permissions: PermissionSet,
    _required: PhantomData<P>,
}

impl<P> TenantScope<P> {
    pub fn tenant_id(&self) -> TenantId {
        self.tenant.id
    }

    /// A second permission a handler needs once it knows what is asked (the
    /// permission of a job kind, say).
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.permissions.contains(permission) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this action requires the permission {permission}"
            )))
        }
    }
}

fn path_tenant(params: &RawPathParams) -> Result<TenantId, ApiError> {
    let raw = params
        .iter()
        .find(|(k, _)| *k == "tenant_id")
        .map(|(_, v)| v)
        .ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "TenantScope used on a route without {{tenant_id}}"
            ))
        })?;
    raw.parse()
        .map_err(|_| ApiError::field("tenant_id", "must be a UUID"))
}

impl<P: Requires> FromRequestParts<AppState> for TenantScope<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let tenant_id = path_tenant(&params)?;
        tracing::Span::current().record("tenant_id", tracing::field::display(tenant_id));

        if let Credential::ApiKey {
            tenant: Some(t), ..
        } = principal.credential
        {
            if t != tenant_id {
                return Err(ApiError::NotFound("tenant"));
            }
        }
        let access = tenants::access(&state.store.pool, tenant_id, principal.user_id)
            .await?
            .ok_or(ApiError::NotFound("tenant"))?;
        let held = tenant_permissions(access.role, &principal.system_roles);
        if held.is_empty() {
            return Err(ApiError::NotFound("tenant"));
        }
        let permissions = match principal.scopes() {
            Some(scopes) => {
                // System-role keys belong to the platform's operators, not to the tenant's plan.
                let tenant_key = credential_tenant(&principal.credential).is_some();
                if tenant_key && !access.limits.api_access {
                    return Err(ApiError::Forbidden(format!(
                        "the tenant's package ({}) does not include API access; upgrade to use API keys",
                        access.tenant.package
                    )));
                }
                held.intersect(scopes)
            }
            None => held,
        };
        let platform_admin = principal.system_roles.contains(&SystemRole::PlatformAdmin);
        if access.tenant.status == TenantStatus::Suspended && !platform_admin {
            // Every session and key of the tenant: 403 naming the suspension
            // (not 401: the credential is fine; not 404: the tenant exists).
            let since = access
                .tenant
                .suspended_at
                .map(|t| format!(" since {}", t.format("%Y-%m-%d %H:%M UTC")))
                .unwrap_or_default();
            let reason = access
                .tenant
                .suspended_reason
                .as_deref()
                .unwrap_or("no reason given");
            return Err(ApiError::Forbidden(format!(
                "the tenant is suspended{since}: {reason}; contact support to lift it"
            )));
        }
        if !P::allowed(&permissions) {
            return Err(ApiError::Forbidden(format!(
                "this action requires the permission {}",
                P::describe()
            )));
        }
        Ok(TenantScope {
            tenant: access.tenant,
            limits: access.limits,
            principal,
            permissions,
            _required: PhantomData,
        })
    }
}

/// A platform-wide request by a principal whose system roles grant `P`.
pub struct SystemScope<P> {
    pub principal: Principal,
    _required: PhantomData<P>,
}

impl<P: Requires> FromRequestParts<AppState> for SystemScope<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        if !principal.system_permissions().contains(P::PERMISSION) {
            return Err(ApiError::Forbidden(format!(
                "this action requires the system permission {}",
                P::PERMISSION
            )));
        }
        Ok(SystemScope {
            principal,
            _required: PhantomData,
        })
    }
}
