//! Admin commands. Each prints only what it created (an id or a key) on
//! stdout, so scripts can capture it, and records an audit event acted by the
//! platform itself.

use crate::cli::{ApiKeyCommand, TenantCommand, UserCommand};
use crate::runtime;
use anyhow::{anyhow, bail, Context};
use bizcontacts_config::Settings;
use bizcontacts_domain::access::{system_permissions, tenant_permissions};
use bizcontacts_domain::{PackageName, Permission, Role, SystemRole, TenantId};
use bizcontacts_http::error::{ApiError, FieldError};
use bizcontacts_http::identity::{check_scopes, create_user, issue_api_key, KeyKind};
use bizcontacts_store::audit::{self, Actor, NewEvent};
use bizcontacts_store::{tenants, users, Store};
use serde_json::json;

/// Turn an intake error into a one-line command error.
fn cli_error(e: ApiError) -> anyhow::Error {
    match e {
        ApiError::Validation(errors) => anyhow!(fields(&errors)),
        ApiError::Internal(e) => e,
        other => anyhow!(other.to_string()),
    }
}

fn fields(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

fn event<'a>(
    tenant: Option<TenantId>,
    action: &'a str,
    target: (&'a str, String),
    details: serde_json::Value,
) -> NewEvent<'a> {
    NewEvent {
        tenant_id: tenant,
        actor: Actor::system(),
        action,
        target_type: Some(target.0),
        target_id: Some(target.1),
        details: json!({ "via": "cli", "details": details }),
        request_id: None,
    }
}

fn parse_tenant(raw: &str) -> anyhow::Result<TenantId> {
    raw.parse()
        .map_err(|_| anyhow!("--tenant: {raw:?} is not a tenant id (UUID)"))
}

async fn open(settings: &Settings) -> anyhow::Result<Store> {
    let store = runtime::store(settings).await?;
    if !store.migrations_current().await? {
        bail!("database migrations are pending; run `bizcontacts migrate` first");
    }
    Ok(store)
}

pub async fn tenant(settings: &Settings, cmd: TenantCommand) -> anyhow::Result<()> {
    let TenantCommand::Create { name, package } = cmd;
    let package: PackageName = package.parse().map_err(|e| anyhow!("--package: {e}"))?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        bail!("--name: must be 1 to 200 characters");
    }
    let store = open(settings).await?;
    let mut tx = store.pool.begin().await?;
    let t = tenants::create(&mut *tx, name, package).await?;
    audit::record(
        &mut *tx,
        event(
            Some(t.id),
            "tenant.created",
            ("tenant", t.id.to_string()),
            json!({ "package": package }),
        ),
    )
    .await?;
    tx.commit().await?;
    println!("{}", t.id);
    Ok(())
}

pub async fn user(settings: &Settings, cmd: UserCommand) -> anyhow::Result<()> {
    let store = open(settings).await?;
    match cmd {
        UserCommand::Create(args) => {
            let membership = match (&args.tenant, &args.role) {
                (Some(t), Some(r)) => Some((
                    parse_tenant(t)?,
                    r.parse::<Role>().map_err(|e| anyhow!("--role: {e}"))?,
                )),
                _ => None,
            };
            let hasher = runtime::passwords(settings)?;
            let mut tx = store.pool.begin().await?;
            let user = create_user(&mut tx, &hasher, &args.email, &args.password)
                .await
                .map_err(cli_error)?;
            if let Some((tenant, role)) = membership {
                users::add_member(&mut tx, tenant, user.id, role)
                    .await
                    .map_err(|e| match e {
                        bizcontacts_store::StoreError::NotFound => {
                            anyhow!("--tenant: no such tenant")
                        }
                        other => anyhow!(other.to_string()),
                    })?;
                audit::record(
                    &mut *tx,
                    event(
                        Some(tenant),
                        "member.added",
                        ("user", user.id.to_string()),
                        json!({ "role": role }),
                    ),
                )
                .await?;
            }
            tx.commit().await?;
            println!("{}", user.id);
        }
        UserCommand::GrantSystemRole { email, role } => {
            let role: SystemRole = role.parse().map_err(|e| anyhow!("--role: {e}"))?;
            let user = users::find_by_email(&store.pool, &email)
                .await?
                .ok_or_else(|| anyhow!("--email: no user with this email"))?;
            let mut tx = store.pool.begin().await?;
            if users::grant_system_role(&mut *tx, user.id, role).await? {
                audit::record(
                    &mut *tx,
                    event(
                        None,
                        "system_role.granted",
                        ("user", user.id.to_string()),
                        json!({ "role": role }),
                    ),
                )
                .await?;
            }
            tx.commit().await?;
            println!("{}", user.id);
        }
    }
    Ok(())
}

pub async fn api_key(settings: &Settings, cmd: ApiKeyCommand) -> anyhow::Result<()> {
    let ApiKeyCommand::Create {
        tenant,
        email,
        scopes,
        name,
    } = cmd;
    let store = open(settings).await?;
    let user = users::find_by_email(&store.pool, &email)
        .await?
        .ok_or_else(|| anyhow!("--email: no user with this email"))?;
    let system_roles = users::system_roles(&store.pool, user.id).await?;
    let tenant = tenant.as_deref().map(parse_tenant).transpose()?;
    let (held, kind) = match tenant {
        Some(t) => {
            let access = tenants::access(&store.pool, t, user.id)
                .await?
                .ok_or_else(|| anyhow!("--tenant: no such tenant"))?;
            if !access.limits.api_access {
                bail!(
                    "--tenant: the tenant's package ({}) does not include API access",
                    access.tenant.package
                );
            }
            (
                tenant_permissions(access.role, &system_roles),
                KeyKind::Tenant,
            )
        }
        None => (system_permissions(&system_roles), KeyKind::System),
    };
    if held.is_empty() {
        bail!(match kind {
            KeyKind::Tenant => "--email: the user has no role in this tenant",
            KeyKind::System =>
                "--email: the user has no system role; pass --tenant for a tenant key",
        });
    }
    let wanted: Vec<String> = if scopes.is_empty() {
        held.iter()
            .filter(|p: &Permission| p.is_system() == (kind == KeyKind::System))
            .map(|p| p.as_str().to_string())
            .collect()
    } else {
        scopes
    };
    let scopes = check_scopes(&wanted, kind, |p| held.contains(p))
        .map_err(|e| anyhow!("--scopes: {}", fields(&e)))?;
    let mut tx = store.pool.begin().await?;
    let issued = issue_api_key(&mut tx, tenant, user.id, name.trim(), &scopes, None)
        .await
        .map_err(cli_error)
        .context("cannot create the key")?;
    audit::record(
        &mut *tx,
        event(tenant, "api_key.created", ("api_key", issued.key.id.to_string()), json!({ "name": issued.key.name, "prefix": issued.key.prefix, "scopes": scopes, "owner": user.id })),
    )
    .await?;
    tx.commit().await?;
    println!("{}", issued.secret);
    Ok(())
}
