//! Realistic demo logs: a registry's month, with its skew.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use time::{Duration, OffsetDateTime};
use usagelogs_core::{KindName, Namespace, NewLogEntry, Performer, names::RepoName};

/// The namespace the demo's curl line points at.
pub const DEMO_ORG: &str = "acme";

const USERS: [&str; 14] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar", "peggy",
    "trent",
];
const ORGS: [&str; 16] = [
    DEMO_ORG,
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "stark",
    "wayne",
    "wonka",
    "cyberdyne",
    "tyrell",
    "soylent",
    "aperture",
    "piedpiper",
    "vandelay",
    "monarch",
    "oceanic",
];
const REPOS: [&str; 12] = [
    "web",
    "api",
    "worker",
    "frontend",
    "backend",
    "db-migrations",
    "ml-models",
    "docs",
    "base-images",
    "nginx",
    "redis-cache",
    "gateway",
];
const ROBOTS: [&str; 3] = ["deployer", "ci", "mirror"];

/// Kinds with their weights: pulls dominate, as in a real registry.
const KIND_WEIGHTS: [(&str, u32); 24] = [
    ("pull_repo", 7000),
    ("push_repo", 900),
    ("create_tag", 400),
    ("repo_verb", 200),
    ("login_success", 300),
    ("delete_tag", 150),
    ("move_tag", 80),
    ("autoprune_tag_delete", 60),
    ("login_failure", 50),
    ("pull_repo_failed", 50),
    ("push_repo_failed", 30),
    ("manifest_label_add", 30),
    ("change_tag_expiration", 20),
    ("change_repo_permission", 20),
    ("create_repo", 20),
    ("org_add_team_member", 15),
    ("create_robot", 10),
    ("set_repo_description", 10),
    ("permanently_delete_tag", 10),
    ("change_repo_visibility", 8),
    ("org_create_team", 5),
    ("create_app_specific_token", 5),
    ("delete_repo", 3),
    ("service_key_create", 2),
];

struct Gen {
    rng: StdRng,
    now: OffsetDateTime,
    days: u32,
}

impl Gen {
    /// A rank-skewed pick: the first items are far more likely (Zipf-like).
    fn skewed(&mut self, n: usize) -> usize {
        let u: f64 = self.rng.random();
        ((n as f64).powf(u) - 1.0).floor().clamp(0.0, (n - 1) as f64) as usize
    }

    fn kind(&mut self) -> &'static str {
        let total: u32 = KIND_WEIGHTS.iter().map(|(_, w)| w).sum();
        let mut x = self.rng.random_range(0..total);
        for (k, w) in KIND_WEIGHTS {
            if x < w {
                return k;
            }
            x -= w;
        }
        "pull_repo"
    }

    fn digest(&mut self) -> String {
        format!("sha256:{:032x}{:032x}", self.rng.random::<u128>(), self.rng.random::<u128>())
    }

    fn ip(&mut self) -> String {
        let nets = ["203.0.113", "198.51.100", "192.0.2", "10.12.4"];
        let net = nets[self.skewed(nets.len())];
        format!("{net}.{}", self.rng.random_range(1..255))
    }

    fn entry(&mut self) -> NewLogEntry {
        let namespace =
            if self.rng.random_bool(0.8) { ORGS[self.skewed(ORGS.len())] } else { USERS[self.skewed(USERS.len())] };
        let repo_count = 2 + namespace.len() % 6;
        let repo = REPOS[self.skewed(repo_count)];
        let kind = self.kind();
        let robot = format!("{namespace}+{}", ROBOTS[self.skewed(ROBOTS.len())]);
        let user = USERS[self.skewed(USERS.len())];
        let performer: Option<String> = match kind {
            "pull_repo" | "repo_verb" => match self.rng.random_range(0..10) {
                0..=2 => None,
                3..=6 => Some(robot.clone()),
                _ => Some(user.to_owned()),
            },
            "push_repo" | "create_tag" | "delete_tag" | "move_tag" => {
                Some(if self.rng.random_bool(0.5) { robot.clone() } else { user.to_owned() })
            }
            "autoprune_tag_delete" => None,
            _ => Some(user.to_owned()),
        };
        let tag = format!(
            "v{}.{}.{}",
            self.rng.random_range(0..4),
            self.rng.random_range(0..20),
            self.rng.random_range(0..10)
        );
        let digest = self.digest();
        let who = performer.clone().unwrap_or_default();
        let ip = self.ip();
        let metadata = match kind {
            "pull_repo" => json!({"namespace": namespace, "repo": repo, "tag": tag, "manifest_digest": digest,
            "mediatype": "application/vnd.oci.image.manifest.v1+json", "_ip": ip,
            "username": performer.clone(), "token_type": match &performer {
                None => "anonymous",
                Some(p) if p.contains('+') => "robot",
                Some(_) => "user",
            }}),
            "push_repo" => json!({"namespace": namespace, "repo": repo, "tag": tag, "release": null}),
            "create_tag" | "delete_tag" | "permanently_delete_tag" => {
                json!({"namespace": namespace, "repo": repo, "tag": tag, "username": who, "manifest_digest": digest})
            }
            "move_tag" => json!({"namespace": namespace, "repo": repo, "tag": "latest", "manifest_digest": digest,
                "original_manifest_digest": self.digest(), "username": who}),
            "repo_verb" => {
                json!({"namespace": namespace, "repo": repo, "tag": tag, "verb": "squash", "_ip": ip, "username": who})
            }
            "autoprune_tag_delete" => {
                json!({"namespace": namespace, "repo": repo, "tag": tag, "performer": "autoprune worker"})
            }
            "pull_repo_failed" | "push_repo_failed" => {
                json!({"namespace": namespace, "repo": repo, "tag": tag, "message": "manifest unknown"})
            }
            "login_success" => json!({"kind": "robot", "robot": robot, "type": "v2auth"}),
            "login_failure" => {
                json!({"kind": "user", "username": user, "message": "Invalid Username or Password", "type": "v2auth"})
            }
            "manifest_label_add" => {
                json!({"namespace": namespace, "repo": repo, "key": "quay.expires-after", "manifest_digest": digest})
            }
            "change_tag_expiration" => {
                json!({"tag": tag, "expiration_date": self.now.unix_timestamp() + 86_400 * 14, "old_expiration_date": null})
            }
            "change_repo_permission" => {
                json!({"namespace": namespace, "repo": repo, "username": user, "role": "write"})
            }
            "create_repo" | "delete_repo" => json!({"namespace": namespace, "repo": repo}),
            "set_repo_description" => json!({"namespace": namespace, "repo": repo, "description": "Service images"}),
            "change_repo_visibility" => json!({"namespace": namespace, "repo": repo, "visibility": "private"}),
            "org_add_team_member" => json!({"team": "owners", "member": user}),
            "org_create_team" => json!({"team": "developers"}),
            "create_robot" => json!({"robot": robot}),
            "create_app_specific_token" => json!({"app_specific_token_title": "laptop"}),
            "service_key_create" => json!({"service": "quay", "preshared": false, "user_agent": "quay-setup"}),
            _ => json!({}),
        };
        let with_repo = metadata.get("repo").is_some();
        let back = Duration::seconds(self.rng.random_range(0..i64::from(self.days) * 86_400));
        NewLogEntry {
            kind: KindName::new(kind).unwrap_or_else(|_| unreachable!("demo kinds are valid")),
            namespace: Namespace::new(namespace).unwrap_or_else(|_| unreachable!("demo names are valid")),
            repository: with_repo.then(|| RepoName::new(repo).unwrap_or_else(|_| unreachable!("demo names are valid"))),
            performer: performer.map(|p| Performer::new(p).unwrap_or_else(|_| unreachable!("demo names are valid"))),
            performer_email: None,
            ip: Some(ip),
            metadata: match metadata {
                Value::Object(m) => m,
                _ => Map::new(),
            },
            datetime: self.now - back,
        }
    }
}

/// `count` entries spread over the last `days` days, reproducible from `seed`.
pub fn generate(count: usize, days: u32, seed: u64, now: OffsetDateTime) -> Vec<NewLogEntry> {
    let mut g = Gen { rng: StdRng::seed_from_u64(seed), now, days: days.max(1) };
    (0..count).map(|_| g.entry()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_data_is_skewed_and_reproducible() {
        let now = OffsetDateTime::now_utc();
        let a = generate(5000, 60, 1, now);
        assert_eq!(a, generate(5000, 60, 1, now));
        let pulls = a.iter().filter(|e| e.kind.as_str() == "pull_repo").count();
        assert!(pulls > a.len() / 2, "pulls dominate: {pulls}");
        let acme = a.iter().filter(|e| e.namespace.as_str() == DEMO_ORG).count();
        assert!(acme > a.len() / 20, "the first organization is busy: {acme}");
        assert!(a.iter().all(|e| e.datetime <= now && e.datetime > now - Duration::days(60)));
        assert!(a.iter().any(|e| e.performer.as_ref().is_some_and(|p| p.is_robot())));
        assert!(a.iter().any(|e| e.performer.is_none()));
    }
}
