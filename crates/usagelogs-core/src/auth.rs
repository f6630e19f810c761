//! Token claims and the authorization decision, as a pure function.

use crate::names::{Namespace, RepoPath};
use serde::{Deserialize, Serialize};

/// The claims of a bearer token (a JWT).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The caller's user name; also the caller's own namespace.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
    /// Space-separated OAuth scopes (`user:admin org:admin repo:admin logs:write`).
    #[serde(default)]
    pub scope: String,
    /// Resource grants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access: Vec<AccessGrant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superuser: Option<SuperuserLevel>,
}

impl Claims {
    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split_whitespace().any(|s| s == scope)
    }

    fn has_grant(&self, kind: &str, name: &str) -> bool {
        self.access.iter().any(|g| g.kind == kind && g.name == name && g.actions.iter().any(|a| a == "admin"))
    }

    /// Whether the caller administers namespace `ns`: it is their own, or they hold an
    /// `organization` admin grant for it.
    pub fn administers_namespace(&self, ns: &str) -> bool {
        self.sub == ns || self.has_grant(GRANT_ORGANIZATION, ns)
    }

    /// Whether the caller administers repository `repo`: through its namespace, or a
    /// `repository` admin grant for `namespace/name`.
    pub fn administers_repository(&self, repo: &RepoPath) -> bool {
        self.administers_namespace(repo.namespace().as_str()) || self.has_grant(GRANT_REPOSITORY, &repo.to_string())
    }
}

/// Grant type for a namespace.
pub const GRANT_ORGANIZATION: &str = "organization";
/// Grant type for a repository.
pub const GRANT_REPOSITORY: &str = "repository";

/// A resource grant in the shape of the container registry token specification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessGrant {
    /// `organization` or `repository`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The namespace, or `namespace/name`.
    pub name: String,
    /// Granted actions; `admin` is the one these endpoints need.
    #[serde(default)]
    pub actions: Vec<String>,
}

/// Superuser powers of a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SuperuserLevel {
    /// Passes every namespace and repository check.
    Full,
    /// May list and aggregate anything and export organization logs, but not repository logs.
    Readonly,
}

/// The scope each level needs.
pub const SCOPE_USER_ADMIN: &str = "user:admin";
/// Scope of the organization endpoints.
pub const SCOPE_ORG_ADMIN: &str = "org:admin";
/// Scope of the repository endpoints.
pub const SCOPE_REPO_ADMIN: &str = "repo:admin";
/// Scope of ingestion.
pub const SCOPE_LOGS_WRITE: &str = "logs:write";

/// Which level of the API an operation addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint<'a> {
    /// The caller's own namespace (`/api/v1/user/…`).
    User,
    /// An organization (or user) namespace (`/api/v1/organization/{orgname}/…`).
    Org(&'a Namespace),
    /// A repository (`/api/v1/repository/{namespace}/{repository}/…`).
    Repo(&'a RepoPath),
}

/// What is done there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    List,
    Aggregate,
    /// Starting an export, or reading its status.
    Export,
}

/// An operation to authorize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation<'a> {
    Read(Endpoint<'a>, Level),
    Ingest,
}

/// The outcome of [`authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// The token lacks the scope the operation needs.
    MissingScope(&'static str),
    /// The token has the scope, but no grant over the target.
    NoGrant,
}

impl Decision {
    /// Whether the operation may go ahead.
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
    }
}

/// May the holder of `claims` perform `op`?
///
/// - user endpoints: `user:admin`;
/// - organization endpoints: `org:admin` and administering the namespace (own, or granted), or
///   a `full` superuser, or a `readonly` superuser;
/// - repository endpoints: `repo:admin` and administering the repository (own namespace,
///   namespace grant or repository grant), or a `full` superuser, or a `readonly` superuser for
///   list and aggregate but not export;
/// - ingestion: `logs:write`.
pub fn authorize(claims: &Claims, op: Operation<'_>) -> Decision {
    let (scope, granted) = match op {
        Operation::Ingest => (SCOPE_LOGS_WRITE, true),
        Operation::Read(Endpoint::User, _) => (SCOPE_USER_ADMIN, true),
        Operation::Read(Endpoint::Org(ns), _) => {
            (SCOPE_ORG_ADMIN, claims.administers_namespace(ns.as_str()) || claims.superuser.is_some())
        }
        Operation::Read(Endpoint::Repo(repo), level) => (
            SCOPE_REPO_ADMIN,
            claims.administers_repository(repo)
                || match claims.superuser {
                    Some(SuperuserLevel::Full) => true,
                    Some(SuperuserLevel::Readonly) => level != Level::Export,
                    None => false,
                },
        ),
    };
    if !claims.has_scope(scope) {
        Decision::MissingScope(scope)
    } else if !granted {
        Decision::NoGrant
    } else {
        Decision::Allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, scope: &str) -> Claims {
        Claims {
            sub: sub.into(),
            exp: 0,
            nbf: None,
            iat: None,
            iss: None,
            aud: None,
            scope: scope.into(),
            access: vec![],
            superuser: None,
        }
    }

    fn grant(kind: &str, name: &str) -> AccessGrant {
        AccessGrant { kind: kind.into(), name: name.into(), actions: vec!["admin".into()] }
    }

    const ALL: &str = "user:admin org:admin repo:admin";

    #[test]
    fn decisions() {
        let acme = Namespace::new("acme").unwrap();
        let web = RepoPath::parse("acme/web").unwrap();
        let other = RepoPath::parse("acme/api").unwrap();
        let org = |l| Operation::Read(Endpoint::Org(&acme), l);
        let repo = |r, l| Operation::Read(Endpoint::Repo(r), l);

        let nobody = claims("bob", ALL);
        assert_eq!(authorize(&nobody, Operation::Read(Endpoint::User, Level::List)), Decision::Allow);
        assert_eq!(authorize(&nobody, org(Level::List)), Decision::NoGrant);
        assert_eq!(authorize(&nobody, repo(&web, Level::List)), Decision::NoGrant);
        assert_eq!(authorize(&nobody, Operation::Ingest), Decision::MissingScope("logs:write"));

        let own = claims("acme", ALL);
        assert!(authorize(&own, org(Level::Export)).is_allowed());
        assert!(authorize(&own, repo(&web, Level::Export)).is_allowed());

        let mut org_admin = claims("alice", ALL);
        org_admin.access.push(grant("organization", "acme"));
        assert!(authorize(&org_admin, org(Level::Aggregate)).is_allowed());
        assert!(authorize(&org_admin, repo(&web, Level::List)).is_allowed());

        let mut repo_admin = claims("carol", ALL);
        repo_admin.access.push(grant("repository", "acme/web"));
        assert!(authorize(&repo_admin, repo(&web, Level::List)).is_allowed());
        assert_eq!(authorize(&repo_admin, repo(&other, Level::List)), Decision::NoGrant);
        assert_eq!(authorize(&repo_admin, org(Level::List)), Decision::NoGrant);

        let mut read_only_grant = claims("dave", ALL);
        read_only_grant.access.push(AccessGrant { actions: vec!["pull".into()], ..grant("organization", "acme") });
        assert_eq!(authorize(&read_only_grant, org(Level::List)), Decision::NoGrant);

        let mut no_scope = claims("alice", "user:admin");
        no_scope.access.push(grant("organization", "acme"));
        assert_eq!(authorize(&no_scope, org(Level::List)), Decision::MissingScope("org:admin"));

        let mut full = claims("root", ALL);
        full.superuser = Some(SuperuserLevel::Full);
        assert!(authorize(&full, org(Level::Export)).is_allowed());
        assert!(authorize(&full, repo(&web, Level::Export)).is_allowed());

        let mut ro = claims("auditor", ALL);
        ro.superuser = Some(SuperuserLevel::Readonly);
        assert!(authorize(&ro, org(Level::List)).is_allowed());
        assert!(authorize(&ro, org(Level::Export)).is_allowed());
        assert!(authorize(&ro, repo(&web, Level::Aggregate)).is_allowed());
        assert_eq!(authorize(&ro, repo(&web, Level::Export)), Decision::NoGrant);
    }

    #[test]
    fn claims_parse_from_the_contract_example() {
        let c: Claims = serde_json::from_str(
            r#"{"sub": "alice", "exp": 1767225600,
 "scope": "user:admin org:admin repo:admin",
 "access": [{"type": "organization", "name": "acme", "actions": ["admin"]},
            {"type": "repository", "name": "acme/web", "actions": ["admin"]}],
 "superuser": "full"}"#,
        )
        .unwrap();
        assert_eq!(c.superuser, Some(SuperuserLevel::Full));
        assert!(c.has_scope("org:admin"));
        assert!(!c.has_scope("org"));
        assert!(c.administers_namespace("acme"));
        assert!(c.administers_repository(&RepoPath::parse("acme/web").unwrap()));
    }
}
