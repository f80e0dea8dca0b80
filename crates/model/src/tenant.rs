//! Tenant identities, as Loki accepts them in `X-Scope-OrgID`.

use crate::ModelError;
use std::fmt;

/// A tenant: the namespace every stream, query and file belongs to.
///
/// Loki's rules: at most 150 bytes of `[a-zA-Z0-9!-_.*'()]`, and neither `.`
/// nor `..`. Because a tenant names a directory on disk, these rules are
/// also what keeps a tenant from escaping the data directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

/// The tenant used when authentication is off and a request names none
/// (Loki calls it `fake`).
pub const DEFAULT_TENANT: &str = "fake";

impl TenantId {
    pub const MAX_LEN: usize = 150;

    pub fn new(raw: &str) -> Result<Self, ModelError> {
        let bad = |reason: &str| ModelError::InvalidTenant {
            tenant: raw.chars().take(64).collect(),
            reason: reason.to_string(),
        };
        if raw.is_empty() {
            return Err(bad("must not be empty"));
        }
        if raw.len() > Self::MAX_LEN {
            return Err(bad("longer than 150 bytes"));
        }
        if raw == "." || raw == ".." {
            return Err(bad("must not be '.' or '..'"));
        }
        let ok = raw.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'!' | b'-' | b'_' | b'.' | b'*' | b'\'' | b'(' | b')')
        });
        if !ok {
            return Err(bad("allowed characters are a-z A-Z 0-9 ! - _ . * ' ( )"));
        }
        Ok(TenantId(raw.to_string()))
    }

    pub fn default_tenant() -> Self {
        TenantId(DEFAULT_TENANT.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loki_tenants_and_rejects_path_tricks() {
        assert!(TenantId::new("team-a_1.prod").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(151)] {
            assert!(TenantId::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
