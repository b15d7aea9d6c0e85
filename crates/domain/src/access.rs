//! Roles, system roles and permissions: the matrix of `shared/spec/product.md`.
//!
//! API key scopes use the same names as permissions. A principal's effective
//! permissions in a tenant are computed here ([`tenant_permissions`]) and only
//! here, so the HTTP extractors and the admin commands agree by construction.

use crate::ParseError;
use serde::{Deserialize, Serialize};

macro_rules! wire_enum {
    ($(#[doc = $doc:literal])* $name:ident { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $wire)] $variant),+
        }

        // Written by hand, not derived: the derive does not see the serde
        // renames through this macro and documented the Rust variant names
        // (`OrgAdmin`) instead of the wire names (`org_admin`).
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let docs: &[&str] = &[$($doc),*];
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($wire),+]))
                    .description(Some(docs.iter().map(|d| d.trim()).collect::<Vec<_>>().join(" ")).filter(|d| !d.is_empty()))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    let names: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    ParseError::new(format!("unknown value {s:?}; expected one of {}", names.join(", ")))
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum!(
    /// A user's role inside one tenant (one role per tenant).
    Role {
        OrgAdmin => "org_admin",
        BillingManager => "billing_manager",
        Importer => "importer",
        Reviewer => "reviewer",
        Member => "member",
    }
);

wire_enum!(
    /// A platform-wide role, independent of any tenant.
    SystemRole {
        PlatformAdmin => "platform_admin",
        Support => "support",
        DataSteward => "data_steward",
    }
);

wire_enum!(
    /// Something a request may be allowed to do. Tenant permissions come from
    /// roles; `admin:*` permissions come only from system roles.
    Permission {
        ContactsSearch => "contacts:search",
        ContactsSave => "contacts:save",
        ImportsWrite => "imports:write",
        ImportsReview => "imports:review",
        CrmConnect => "crm:connect",
        CrmSync => "crm:sync",
        BillingManage => "billing:manage",
        JobsRead => "jobs:read",
        UsersManage => "users:manage",
        KeysManage => "keys:manage",
        UsageRead => "usage:read",
        AdminMonitor => "admin:monitor",
        AdminOperate => "admin:operate",
        AdminQuarantine => "admin:quarantine",
    }
);

use Permission as P;

impl Permission {
    /// Permissions that exist inside a tenant (and can be held through a role).
    pub const TENANT: &'static [Permission] = &[
        P::ContactsSearch,
        P::ContactsSave,
        P::ImportsWrite,
        P::ImportsReview,
        P::CrmConnect,
        P::CrmSync,
        P::BillingManage,
        P::JobsRead,
        P::UsersManage,
        P::KeysManage,
        P::UsageRead,
    ];

    /// Platform-wide permissions, held only through a system role.
    pub const SYSTEM: &'static [Permission] =
        &[P::AdminMonitor, P::AdminOperate, P::AdminQuarantine];

    pub fn is_system(self) -> bool {
        Self::SYSTEM.contains(&self)
    }
}

impl Role {
    /// The tenant permissions of this role: the product's matrix, row by row.
    pub fn permissions(self) -> &'static [Permission] {
        match self {
            Role::OrgAdmin => Permission::TENANT,
            Role::BillingManager => &[P::BillingManage, P::UsageRead],
            Role::Importer => &[
                P::ContactsSearch,
                P::ImportsWrite,
                P::JobsRead,
                P::UsageRead,
            ],
            Role::Reviewer => &[
                P::ContactsSearch,
                P::ImportsReview,
                P::JobsRead,
                P::UsageRead,
            ],
            Role::Member => &[
                P::ContactsSearch,
                P::ContactsSave,
                P::CrmSync,
                P::JobsRead,
                P::UsageRead,
            ],
        }
    }

    pub fn allows(self, permission: Permission) -> bool {
        self.permissions().contains(&permission)
    }
}

impl SystemRole {
    /// What this system role may do inside *any* tenant.
    pub fn tenant_permissions(self) -> &'static [Permission] {
        match self {
            // "everything, in every tenant"
            SystemRole::PlatformAdmin => Permission::TENANT,
            // read-only monitoring
            SystemRole::Support => &[P::JobsRead, P::UsageRead],
            // review any tenant's batches
            SystemRole::DataSteward => &[P::ImportsReview],
        }
    }

    /// Platform-wide permissions of this role.
    pub fn system_permissions(self) -> &'static [Permission] {
        match self {
            SystemRole::PlatformAdmin => &[P::AdminMonitor, P::AdminOperate, P::AdminQuarantine],
            SystemRole::Support => &[P::AdminMonitor],
            SystemRole::DataSteward => &[P::AdminQuarantine],
        }
    }
}

/// A set of permissions small enough to be a bit mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PermissionSet(u32);

impl PermissionSet {
    pub fn empty() -> Self {
        Self(0)
    }

    pub fn of(perms: &[Permission]) -> Self {
        perms.iter().fold(Self(0), |s, p| s.with(*p))
    }

    fn bit(p: Permission) -> u32 {
        1 << Permission::ALL
            .iter()
            .position(|q| *q == p)
            .expect("every permission is in ALL")
    }

    pub fn with(self, p: Permission) -> Self {
        Self(self.0 | Self::bit(p))
    }

    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    pub fn intersect(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    pub fn contains(self, p: Permission) -> bool {
        self.0 & Self::bit(p) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Every permission of `self` is in `other`.
    pub fn is_subset_of(self, other: Self) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .iter()
            .copied()
            .filter(move |p| self.contains(*p))
    }
}

/// Effective permissions of a user inside a tenant: their role there (if any)
/// plus whatever their system roles grant in every tenant.
pub fn tenant_permissions(role: Option<Role>, system_roles: &[SystemRole]) -> PermissionSet {
    let from_role = role
        .map(|r| PermissionSet::of(r.permissions()))
        .unwrap_or_default();
    system_roles.iter().fold(from_role, |acc, s| {
        acc.union(PermissionSet::of(s.tenant_permissions()))
    })
}

/// Platform-wide permissions of a user.
pub fn system_permissions(system_roles: &[SystemRole]) -> PermissionSet {
    system_roles.iter().fold(PermissionSet::empty(), |acc, s| {
        acc.union(PermissionSet::of(s.system_permissions()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_matches_the_product_spec() {
        // Columns of the table in product.md, in order.
        let table: &[(Permission, [bool; 5])] = &[
            (P::ContactsSearch, [true, false, true, true, true]),
            (P::ContactsSave, [true, false, false, false, true]),
            (P::ImportsWrite, [true, false, true, false, false]),
            (P::ImportsReview, [true, false, false, true, false]),
            (P::CrmConnect, [true, false, false, false, false]),
            (P::CrmSync, [true, false, false, false, true]),
            (P::BillingManage, [true, true, false, false, false]),
            (P::JobsRead, [true, false, true, true, true]),
            (P::UsersManage, [true, false, false, false, false]),
            (P::KeysManage, [true, false, false, false, false]),
            (P::UsageRead, [true, true, true, true, true]),
        ];
        let roles = [
            Role::OrgAdmin,
            Role::BillingManager,
            Role::Importer,
            Role::Reviewer,
            Role::Member,
        ];
        for (perm, row) in table {
            for (role, expected) in roles.iter().zip(row) {
                assert_eq!(role.allows(*perm), *expected, "{role} / {perm}");
            }
        }
        assert_eq!(table.len(), Permission::TENANT.len());
    }

    #[test]
    fn wire_names_round_trip() {
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>().unwrap(), *p);
        }
        assert!("contacts:delete".parse::<Permission>().is_err());
    }

    #[test]
    fn system_roles_extend_tenant_permissions() {
        let set = tenant_permissions(None, &[SystemRole::DataSteward]);
        assert!(set.contains(P::ImportsReview));
        assert!(!set.contains(P::ContactsSearch));
        assert!(tenant_permissions(Some(Role::Member), &[]).contains(P::CrmSync));
        assert!(system_permissions(&[SystemRole::Support]).contains(P::AdminMonitor));
        assert!(!system_permissions(&[SystemRole::Support]).contains(P::AdminOperate));
    }
}
