//! bepasty's permission words, with its bugs fixed: `admin` implies every other permission.

use serde::Deserialize;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    Admin,
    Create,
    Delete,
    /// Make and revoke per-case upload links (sfx's own word; bepasty has no links).
    Links,
    List,
    Modify,
    Read,
}

impl Permission {
    pub const ALL: [Permission; 7] = [
        Permission::Admin,
        Permission::Create,
        Permission::Delete,
        Permission::Links,
        Permission::List,
        Permission::Modify,
        Permission::Read,
    ];

    pub fn word(self) -> &'static str {
        match self {
            Permission::Admin => "admin",
            Permission::Create => "create",
            Permission::Delete => "delete",
            Permission::Links => "links",
            Permission::List => "list",
            Permission::Modify => "modify",
            Permission::Read => "read",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of permissions. `has` answers with `admin` implying everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Permissions(u8);

impl Permissions {
    pub const NONE: Permissions = Permissions(0);

    pub fn has(self, p: Permission) -> bool {
        self.0 & (p.bit() | Permission::Admin.bit()) != 0
    }

    /// True only when the set itself contains `p` (no implication); for display.
    pub fn contains_exactly(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The words of the set, sorted by name, as bepasty shows them.
    pub fn words(self) -> Vec<&'static str> {
        Permission::ALL
            .iter()
            .filter(|p| self.contains_exactly(**p))
            .map(|p| p.word())
            .collect()
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        Permissions(iter.into_iter().fold(0, |acc, p| acc | p.bit()))
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.words().join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_implies_everything() {
        let admin: Permissions = [Permission::Admin].into_iter().collect();
        for p in Permission::ALL {
            assert!(admin.has(p));
        }
    }

    #[test]
    fn create_only_has_nothing_else() {
        let create: Permissions = [Permission::Create].into_iter().collect();
        assert!(create.has(Permission::Create));
        for p in [
            Permission::Read,
            Permission::List,
            Permission::Delete,
            Permission::Links,
            Permission::Modify,
            Permission::Admin,
        ] {
            assert!(!create.has(p), "{p:?}");
        }
        assert_eq!(create.to_string(), "create");
    }
}
