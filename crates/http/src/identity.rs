//! Identity operations shared by the routes and the admin commands, so both
//! create users and keys the same way (hashing, audit).

use crate::error::{ApiError, FieldError};
use bizcontacts_domain::{Email, Permission, TenantId, UserId};
use bizcontacts_security::{check_password_policy, new_api_key, token_hash, PasswordHasherConfig};
use bizcontacts_store::api_keys::{self, ApiKey, NewKey};
use bizcontacts_store::users::{self, User};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// Hash a new password off the async runtime (argon2 is deliberately slow).
pub async fn hash_password(
    hasher: &PasswordHasherConfig,
    password: &str,
) -> Result<String, ApiError> {
    check_password_policy(password).map_err(|r| ApiError::field("password", r))?;
    let hasher = hasher.clone();
    let password = password.to_string();
    tokio::task::spawn_blocking(move || hasher.hash(&password))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(|e| ApiError::Internal(e.into()))
}

/// Create a user with a password.
pub async fn create_user(
    conn: &mut PgConnection,
    hasher: &PasswordHasherConfig,
    email: &str,
    password: &str,
) -> Result<User, ApiError> {
    let email = Email::parse(email).map_err(|e| ApiError::field("email", e.reason))?;
    let hash = hash_password(hasher, password).await?;
    Ok(users::create(conn, &email, Some(&hash)).await?)
}

/// A key as just created: the only moment its secret exists in clear.
pub struct IssuedKey {
    pub key: ApiKey,
    pub secret: String,
}

/// Create an API key; the caller has already checked the scopes are allowed.
pub async fn issue_api_key(
    conn: &mut PgConnection,
    tenant: Option<TenantId>,
    user: UserId,
    name: &str,
    scopes: &[Permission],
    expires_at: Option<DateTime<Utc>>,
) -> Result<IssuedKey, ApiError> {
    let fresh = new_api_key();
    let key = api_keys::create(
        conn,
        NewKey {
            tenant_id: tenant,
            user_id: user,
            name,
            prefix: &fresh.prefix,
            key_hash: &token_hash(&fresh.key),
            scopes,
            expires_at,
        },
    )
    .await?;
    Ok(IssuedKey {
        key,
        secret: fresh.key,
    })
}

/// Which kind of key scopes are being checked for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Bound to one tenant: tenant permissions only.
    Tenant,
    /// A system-role key: platform permissions only.
    System,
}

/// Parse requested scopes; each must fit the key kind and be held by the
/// creator (`holds`). Duplicates collapse. Errors name `scopes[i]`.
pub fn check_scopes(
    raw: &[String],
    kind: KeyKind,
    holds: impl Fn(Permission) -> bool,
) -> Result<Vec<Permission>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut scopes = Vec::new();
    if raw.is_empty() {
        errors.push(FieldError::new(
            "scopes",
            "must name at least one permission",
        ));
    }
    for (i, name) in raw.iter().enumerate() {
        let field = format!("scopes[{i}]");
        match name.trim().parse::<Permission>() {
            Err(e) => errors.push(FieldError::new(field, e.reason)),
            Ok(p) if p.is_system() != (kind == KeyKind::System) => {
                let want = if kind == KeyKind::System {
                    "a system"
                } else {
                    "a tenant"
                };
                errors.push(FieldError::new(
                    field,
                    format!("{p} is not {want} permission"),
                ))
            }
            Ok(p) if !holds(p) => errors.push(FieldError::new(
                field,
                format!("{p} exceeds the owner's permissions"),
            )),
            Ok(p) if scopes.contains(&p) => {}
            Ok(p) => scopes.push(p),
        }
    }
    if errors.is_empty() {
        Ok(scopes)
    } else {
        Err(errors)
    }
}
