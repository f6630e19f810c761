//! Validated names: namespaces, repository paths, performers and log kinds.
//!
//! Each newtype checks its value once, at construction; code holding one may rely on it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest name accepted for any part (Quay's column width).
pub const MAX_NAME_LEN: usize = 255;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} is longer than {MAX_NAME_LEN} characters")]
    TooLong { what: &'static str },
    #[error("{what} '{value}' contains characters other than letters, digits, '.', '_' and '-'")]
    BadCharacters { what: &'static str, value: String },
    #[error("repository '{0}' must have the form namespace/name")]
    BadRepoPath(String),
    #[error("performer '{0}' has more than one '+'")]
    BadRobot(String),
}

fn check_segment(what: &'static str, value: &str) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty { what });
    }
    if value.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { what });
    }
    let first_ok = value.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !first_ok || !rest_ok {
        return Err(NameError::BadCharacters { what, value: value.to_owned() });
    }
    Ok(())
}

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// The name as an owned string.
            pub fn into_string(self) -> String {
                self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(value: String) -> Result<Self, NameError> {
                Self::new(value)
            }
        }
        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
    };
}

/// A namespace: a user or an organization (`acme`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Namespace(String);

impl Namespace {
    /// Validates a namespace name: 1–255 ASCII letters, digits, `.`, `_`, `-`, starting with a
    /// letter or digit.
    pub fn new(value: impl Into<String>) -> Result<Self, NameError> {
        let value = value.into();
        check_segment("namespace", &value)?;
        Ok(Self(value))
    }
}
string_newtype!(Namespace);

/// A repository name inside a namespace (`web`, or nested `team/web`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoName(String);

impl RepoName {
    /// Validates a repository name: one or more `/`-separated segments of the namespace
    /// alphabet, 255 characters at most.
    pub fn new(value: impl Into<String>) -> Result<Self, NameError> {
        let value = value.into();
        if value.is_empty() {
            return Err(NameError::Empty { what: "repository" });
        }
        if value.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong { what: "repository" });
        }
        for seg in value.split('/') {
            check_segment("repository", seg).map_err(|e| match e {
                NameError::Empty { .. } => NameError::BadRepoPath(value.clone()),
                NameError::BadCharacters { what, .. } => NameError::BadCharacters { what, value: value.clone() },
                other => other,
            })?;
        }
        Ok(Self(value))
    }
}
string_newtype!(RepoName);

/// A repository path `namespace/name`; the namespace is the part before the first `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoPath {
    namespace: Namespace,
    name: RepoName,
}

impl RepoPath {
    /// Builds a path from its two validated parts.
    pub fn new(namespace: Namespace, name: RepoName) -> Self {
        Self { namespace, name }
    }

    /// Parses `namespace/name` (everything after the first `/` is the name).
    pub fn parse(path: &str) -> Result<Self, NameError> {
        let (ns, name) = path.split_once('/').ok_or_else(|| NameError::BadRepoPath(path.to_owned()))?;
        Ok(Self { namespace: Namespace::new(ns)?, name: RepoName::new(name)? })
    }

    /// The namespace part.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// The repository name part.
    pub fn name(&self) -> &RepoName {
        &self.name
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Who performed an action: a user (`alice`) or a robot (`acme+deployer`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Performer(String);

impl Performer {
    /// Validates a performer name: a namespace name, or `namespace+robot`.
    pub fn new(value: impl Into<String>) -> Result<Self, NameError> {
        let value = value.into();
        if value.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong { what: "performer" });
        }
        match value.split_once('+') {
            None => check_segment("performer", &value)?,
            Some((ns, robot)) => {
                if robot.contains('+') {
                    return Err(NameError::BadRobot(value));
                }
                check_segment("performer", ns)?;
                check_segment("performer", robot)?;
            }
        }
        Ok(Self(value))
    }

    /// Whether this is a robot account (`namespace+name`).
    pub fn is_robot(&self) -> bool {
        self.0.contains('+')
    }
}
string_newtype!(Performer);

/// A log kind name (`push_repo`). Syntax only: whether the kind is in the catalog is a separate
/// check ([`crate::is_catalog_kind`]), since servers may allow custom kinds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KindName(String);

impl KindName {
    /// Validates a kind name: 1–255 lower-case ASCII letters, digits and `_`.
    pub fn new(value: impl Into<String>) -> Result<Self, NameError> {
        let value = value.into();
        if value.is_empty() {
            return Err(NameError::Empty { what: "kind" });
        }
        if value.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong { what: "kind" });
        }
        if !value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return Err(NameError::BadCharacters { what: "kind", value });
        }
        Ok(Self(value))
    }
}
string_newtype!(KindName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces() {
        assert!(Namespace::new("acme").is_ok());
        assert!(Namespace::new("a.b-c_d9").is_ok());
        assert_eq!(Namespace::new(""), Err(NameError::Empty { what: "namespace" }));
        assert!(Namespace::new("-acme").is_err());
        assert!(Namespace::new("ac me").is_err());
        assert!(Namespace::new("acme/web").is_err());
        assert!(Namespace::new("a".repeat(256)).is_err());
        assert!(Namespace::new("a".repeat(255)).is_ok());
    }

    #[test]
    fn repo_paths() {
        let p = RepoPath::parse("acme/web").unwrap();
        assert_eq!(p.namespace().as_str(), "acme");
        assert_eq!(p.name().as_str(), "web");
        let nested = RepoPath::parse("acme/team/web").unwrap();
        assert_eq!(nested.name().as_str(), "team/web");
        assert_eq!(nested.to_string(), "acme/team/web");
        assert!(RepoPath::parse("acme").is_err());
        assert!(RepoPath::parse("acme/").is_err());
        assert!(RepoPath::parse("/web").is_err());
        assert!(RepoPath::parse("acme//web").is_err());
    }

    #[test]
    fn performers() {
        assert!(!Performer::new("alice").unwrap().is_robot());
        assert!(Performer::new("acme+deployer").unwrap().is_robot());
        assert!(Performer::new("acme+a+b").is_err());
        assert!(Performer::new("+bot").is_err());
        assert!(Performer::new("acme+").is_err());
    }

    #[test]
    fn kinds() {
        assert!(KindName::new("push_repo").is_ok());
        assert!(KindName::new("Push").is_err());
        assert!(KindName::new("").is_err());
    }

    #[test]
    fn serde_validates() {
        let ok: Namespace = serde_json::from_str("\"acme\"").unwrap();
        assert_eq!(ok.as_str(), "acme");
        assert!(serde_json::from_str::<Namespace>("\"bad name\"").is_err());
    }
}
