//! A registry's usage logs, reproducible from a seed: a few namespaces and repositories take most
//! of the traffic (Zipf), pulls dominate, robots and users repeat, and entries arrive mostly in
//! time order, batch after batch, as a registry sends them.
//!
//! Every batch is generated from `(seed, batch index)` alone, so the HTTP ingestion and the
//! `logentry3` load see exactly the same rows without keeping them in memory.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::fmt::Write as _;
use time::OffsetDateTime;

/// Log kinds with their weight per 10,000 entries; `repo` marks kinds that name a repository.
pub const KINDS: [(&str, u32, bool); 24] = [
    ("pull_repo", 7000, true),
    ("push_repo", 900, true),
    ("create_tag", 400, true),
    ("login_success", 300, false),
    ("repo_verb", 200, true),
    ("delete_tag", 150, true),
    ("move_tag", 80, true),
    ("autoprune_tag_delete", 60, true),
    ("login_failure", 50, false),
    ("pull_repo_failed", 50, true),
    ("push_repo_failed", 30, true),
    ("manifest_label_add", 30, true),
    ("change_tag_expiration", 20, true),
    ("change_repo_permission", 20, true),
    ("create_repo", 20, true),
    ("org_add_team_member", 15, false),
    ("create_robot", 10, false),
    ("set_repo_description", 10, true),
    ("permanently_delete_tag", 10, true),
    ("change_repo_visibility", 8, true),
    ("org_create_team", 5, false),
    ("create_app_specific_token", 5, false),
    ("delete_repo", 3, true),
    ("revert_tag", 2, true),
];

/// The rare kind the kind-filtered list asks for (0.08 % of the traffic).
pub const RARE_KIND: &str = "change_repo_visibility";

const ROBOTS: [&str; 4] = ["deployer", "ci", "mirror", "scanner"];
const MEDIATYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// Cumulative weights for picking an index with a Zipf-like skew.
#[derive(Debug, Clone)]
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n.max(1))
            .map(|k| {
                acc += (k as f64).powf(-s);
                acc
            })
            .collect();
        for c in &mut cdf {
            *c /= acc;
        }
        Self { cdf }
    }

    fn pick(&self, rng: &mut StdRng) -> usize {
        let u: f64 = rng.random();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// Who did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Who {
    Anonymous,
    User(u32),
    /// A robot of the entry's namespace.
    Robot(u8),
}

/// One generated entry, in compact form; [`Universe`] renders it.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub kind: u8,
    pub namespace: u32,
    /// Index of the repository inside its namespace.
    pub repo: Option<u16>,
    pub who: Who,
    pub ip: [u8; 4],
    /// Microseconds since the Unix epoch.
    pub micros: i64,
    tag: [u8; 3],
    digest: [u64; 2],
}

/// The names and skews of a data set of `entries` entries, and the time span they cover.
#[derive(Debug, Clone)]
pub struct Universe {
    pub entries: u64,
    pub batch_size: usize,
    pub seed: u64,
    /// First and last instant (microseconds since the epoch).
    pub start_micros: i64,
    pub end_micros: i64,
    namespaces: Vec<String>,
    ns_pick: Zipf,
    /// Repository count and pick per namespace rank (the same for namespaces of equal count).
    repo_counts: Vec<u16>,
    repo_picks: HashMap<u16, Zipf>,
    users: usize,
    user_pick: Zipf,
    robot_pick: Zipf,
    kind_cdf: Vec<u32>,
    /// Global repository id (for `logentry3`) of each namespace's first repository.
    repo_base: Vec<u32>,
}

impl Universe {
    /// A data set of `entries` entries over the `days` days before `now`.
    pub fn new(entries: u64, days: u32, seed: u64, batch_size: usize, now: OffsetDateTime) -> Self {
        let namespace_count = (entries / 500).clamp(20, 2000) as usize;
        let namespaces: Vec<String> = (0..namespace_count).map(|i| format!("org{i:04}")).collect();
        // Busy namespaces have many repositories, small ones a few.
        let repo_counts: Vec<u16> =
            (0..namespace_count).map(|rank| (200.0 / ((rank + 1) as f64).sqrt()).round().max(1.0) as u16).collect();
        let mut repo_picks = HashMap::new();
        for &c in &repo_counts {
            repo_picks.entry(c).or_insert_with(|| Zipf::new(usize::from(c), 1.0));
        }
        let mut repo_base = Vec::with_capacity(namespace_count);
        let mut next = 1u32;
        for &c in &repo_counts {
            repo_base.push(next);
            next += u32::from(c);
        }
        let users = (entries / 100).clamp(50, 20_000) as usize;
        let mut acc = 0;
        let kind_cdf = KINDS
            .iter()
            .map(|(_, w, _)| {
                acc += w;
                acc
            })
            .collect();
        let end_micros = (now.unix_timestamp_nanos() / 1000) as i64;
        Self {
            entries,
            batch_size: batch_size.max(1),
            seed,
            start_micros: end_micros - i64::from(days.max(1)) * 86_400_000_000,
            end_micros,
            ns_pick: Zipf::new(namespace_count, 1.1),
            namespaces,
            repo_counts,
            repo_picks,
            users,
            user_pick: Zipf::new(users, 1.0),
            robot_pick: Zipf::new(ROBOTS.len(), 1.2),
            kind_cdf,
            repo_base,
        }
    }

    /// How many batches the data set has.
    pub fn batches(&self) -> usize {
        self.entries.div_ceil(self.batch_size as u64) as usize
    }

    /// The entries of batch `index`: a slice of the time line, slightly out of order inside.
    pub fn batch(&self, index: usize) -> Vec<Entry> {
        let first = index as u64 * self.batch_size as u64;
        let last = (first + self.batch_size as u64).min(self.entries);
        let mut rng = StdRng::seed_from_u64(self.seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let span = (self.end_micros - self.start_micros) as f64;
        (first..last)
            .map(|i| {
                let base = self.start_micros + (span * (i as f64 + 0.5) / self.entries as f64) as i64;
                // Up to 5 s late or early: logs arrive nearly, not exactly, in order.
                let jitter = rng.random_range(-5_000_000..=5_000_000);
                let micros = (base + jitter).clamp(self.start_micros, self.end_micros - 1);
                self.entry(&mut rng, micros)
            })
            .collect()
    }

    fn entry(&self, rng: &mut StdRng, micros: i64) -> Entry {
        let namespace = self.ns_pick.pick(rng) as u32;
        let x = rng.random_range(0..*self.kind_cdf.last().unwrap_or(&1));
        let kind = self.kind_cdf.partition_point(|&c| c <= x) as u8;
        let with_repo = KINDS[usize::from(kind)].2;
        let count = self.repo_counts[namespace as usize];
        let repo = with_repo.then(|| self.repo_picks[&count].pick(rng) as u16);
        let robot = Who::Robot(self.robot_pick.pick(rng) as u8);
        let user = Who::User(self.user_pick.pick(rng) as u32);
        let who = match KINDS[usize::from(kind)].0 {
            "pull_repo" | "repo_verb" | "pull_repo_failed" => match rng.random_range(0..10) {
                0..=2 => Who::Anonymous,
                3..=6 => robot,
                _ => user,
            },
            "push_repo" | "create_tag" | "delete_tag" | "move_tag" | "push_repo_failed" => {
                if rng.random_bool(0.6) {
                    robot
                } else {
                    user
                }
            }
            "autoprune_tag_delete" => Who::Anonymous,
            "login_success" => {
                if rng.random_bool(0.5) {
                    robot
                } else {
                    user
                }
            }
            _ => user,
        };
        let nets = [[203, 0, 113], [198, 51, 100], [192, 0, 2], [10, 12, 4]];
        let net = nets[rng.random_range(0..nets.len())];
        Entry {
            kind,
            namespace,
            repo,
            who,
            ip: [net[0], net[1], net[2], rng.random_range(1..255)],
            micros,
            tag: [rng.random_range(0..4), rng.random_range(0..20), rng.random_range(0..10)],
            digest: [rng.random(), rng.random()],
        }
    }

    pub fn kind_name(&self, e: &Entry) -> &'static str {
        KINDS[usize::from(e.kind)].0
    }

    pub fn namespace_name(&self, namespace: u32) -> &str {
        &self.namespaces[namespace as usize]
    }

    /// The repository's name inside its namespace.
    pub fn repo_name(repo: u16) -> String {
        format!("repo{repo:03}")
    }

    /// The performer's name, if any.
    pub fn performer_name(&self, namespace: u32, who: Who) -> Option<String> {
        match who {
            Who::Anonymous => None,
            Who::User(u) => Some(format!("user{u:05}")),
            Who::Robot(r) => Some(format!("{}+{}", self.namespace_name(namespace), ROBOTS[usize::from(r)])),
        }
    }

    /// Small integer ids as Quay's `logentry3` holds them.
    pub fn quay_ids(&self, e: &Entry) -> QuayIds {
        QuayIds {
            kind: i32::from(e.kind) + 1,
            account: Self::quay_account_id(e.namespace),
            performer: self.quay_performer_id(e.namespace, e.who),
            repository: e.repo.map(|r| self.quay_repository_id(e.namespace, r)),
        }
    }

    /// Quay's `account_id` of a namespace.
    pub fn quay_account_id(namespace: u32) -> i32 {
        namespace as i32 + 1
    }

    /// Quay's `repository_id` of a repository.
    pub fn quay_repository_id(&self, namespace: u32, repo: u16) -> i32 {
        (self.repo_base[namespace as usize] + u32::from(repo)) as i32
    }

    /// Quay's `performer_id`: people first, then each namespace's robots (robots are users in Quay).
    pub fn quay_performer_id(&self, namespace: u32, who: Who) -> Option<i32> {
        match who {
            Who::Anonymous => None,
            Who::User(u) => Some(1 + u as i32),
            Who::Robot(r) => Some(1 + self.users as i32 + (namespace as i32) * ROBOTS.len() as i32 + i32::from(r)),
        }
    }

    /// Quay's kind id of a kind name.
    pub fn quay_kind_id(name: &str) -> Option<i32> {
        KINDS.iter().position(|(k, _, _)| *k == name).map(|i| i as i32 + 1)
    }

    /// The metadata object, with Quay's keys for the kind, as JSON text.
    pub fn metadata_json(&self, e: &Entry, out: &mut String) {
        let ns = self.namespace_name(e.namespace);
        let repo = e.repo.map(Self::repo_name).unwrap_or_default();
        let tag = format!("v{}.{}.{}", e.tag[0], e.tag[1], e.tag[2]);
        let digest = format!("sha256:{:016x}{:016x}{:016x}{:016x}", e.digest[0], e.digest[1], e.digest[0], e.digest[1]);
        let who = self.performer_name(e.namespace, e.who);
        let username = who.as_deref().map_or_else(|| "null".to_owned(), |w| format!("\"{w}\""));
        let _ = match self.kind_name(e) {
            "pull_repo" => {
                let token_type = match e.who {
                    Who::Anonymous => "anonymous",
                    Who::Robot(_) => "robot",
                    Who::User(_) => "user",
                };
                write!(
                    out,
                    r#"{{"namespace":"{ns}","repo":"{repo}","tag":"{tag}","manifest_digest":"{digest}","mediatype":"{MEDIATYPE}","username":{username},"token_type":"{token_type}"}}"#
                )
            }
            "push_repo" => write!(out, r#"{{"namespace":"{ns}","repo":"{repo}","tag":"{tag}","release":null}}"#),
            "create_tag" | "delete_tag" | "permanently_delete_tag" | "revert_tag" => write!(
                out,
                r#"{{"namespace":"{ns}","repo":"{repo}","tag":"{tag}","username":{username},"manifest_digest":"{digest}"}}"#
            ),
            "move_tag" => write!(
                out,
                r#"{{"namespace":"{ns}","repo":"{repo}","tag":"latest","manifest_digest":"{digest}","username":{username}}}"#
            ),
            "repo_verb" => write!(out, r#"{{"namespace":"{ns}","repo":"{repo}","tag":"{tag}","verb":"squash"}}"#),
            "autoprune_tag_delete" => {
                write!(out, r#"{{"namespace":"{ns}","repo":"{repo}","tag":"{tag}","performer":"autoprune worker"}}"#)
            }
            "pull_repo_failed" | "push_repo_failed" => {
                write!(out, r#"{{"namespace":"{ns}","repo":"{repo}","tag":"{tag}","message":"manifest unknown"}}"#)
            }
            "login_success" => write!(out, r#"{{"kind":"user","username":{username},"type":"v2auth"}}"#),
            "login_failure" => write!(
                out,
                r#"{{"kind":"user","username":{username},"message":"Invalid Username or Password","type":"v2auth"}}"#
            ),
            "manifest_label_add" => write!(
                out,
                r#"{{"namespace":"{ns}","repo":"{repo}","key":"quay.expires-after","manifest_digest":"{digest}"}}"#
            ),
            "change_tag_expiration" => write!(out, r#"{{"namespace":"{ns}","repo":"{repo}","tag":"{tag}"}}"#),
            "change_repo_permission" => {
                write!(out, r#"{{"namespace":"{ns}","repo":"{repo}","username":{username},"role":"write"}}"#)
            }
            "set_repo_description" => {
                write!(out, r#"{{"namespace":"{ns}","repo":"{repo}","description":"Service images"}}"#)
            }
            "change_repo_visibility" => {
                write!(out, r#"{{"namespace":"{ns}","repo":"{repo}","visibility":"private"}}"#)
            }
            "create_repo" | "delete_repo" => write!(out, r#"{{"namespace":"{ns}","repo":"{repo}"}}"#),
            "org_add_team_member" => write!(out, r#"{{"team":"owners","member":{username}}}"#),
            "org_create_team" => write!(out, r#"{{"team":"developers"}}"#),
            "create_robot" => write!(out, r#"{{"robot":"{ns}+deployer"}}"#),
            "create_app_specific_token" => write!(out, r#"{{"app_specific_token_title":"laptop"}}"#),
            _ => write!(out, "{{}}"),
        };
    }

    /// The entry as one NDJSON line of an ingestion batch (with the trailing newline).
    pub fn ndjson_line(&self, e: &Entry, out: &mut String) {
        let _ = write!(out, r#"{{"kind":"{}","namespace":"{}""#, self.kind_name(e), self.namespace_name(e.namespace));
        if let Some(r) = e.repo {
            let _ = write!(out, r#","repository":"{}""#, Self::repo_name(r));
        }
        if let Some(p) = self.performer_name(e.namespace, e.who) {
            let _ = write!(out, r#","performer":"{p}""#);
        }
        let [a, b, c, d] = e.ip;
        let _ = write!(out, r#","ip":"{a}.{b}.{c}.{d}","metadata":"#);
        self.metadata_json(e, out);
        out.push_str(r#","datetime":""#);
        write_timestamp(out, e.micros, 'T');
        out.push_str("Z\"}\n");
    }
}

/// Quay's integer columns of one entry.
#[derive(Debug, Clone, Copy)]
pub struct QuayIds {
    pub kind: i32,
    pub account: i32,
    pub performer: Option<i32>,
    pub repository: Option<i32>,
}

/// `YYYY-MM-DD<sep>HH:MM:SS.ffffff` in UTC.
pub fn write_timestamp(out: &mut String, micros: i64, sep: char) {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let (y, m, d) = (t.year(), u8::from(t.month()), t.day());
    let (hh, mm, ss, us) = t.to_hms_micro();
    let _ = write!(out, "{y:04}-{m:02}-{d:02}{sep}{hh:02}:{mm:02}:{ss:02}.{us:06}");
}

/// What the generator produced, to pick the questions' subjects.
#[derive(Debug, Default, Clone)]
pub struct Census {
    pub total: u64,
    /// Entries per namespace: all, and inside the measured window.
    pub namespace_total: HashMap<u32, u64>,
    pub namespace_window: HashMap<u32, u64>,
    /// Entries per (namespace, repository) inside the window.
    pub repo_window: HashMap<(u32, u16), u64>,
    /// Entries per (namespace, performer) inside the window.
    pub performer_window: HashMap<(u32, Who), u64>,
    /// Entries per (namespace, kind) inside the window.
    pub kind_window: HashMap<(u32, u8), u64>,
}

impl Census {
    /// Counts `entries`; the window starts at `window_start` (microseconds).
    pub fn add(&mut self, entries: &[Entry], window_start: i64) {
        for e in entries {
            self.total += 1;
            *self.namespace_total.entry(e.namespace).or_default() += 1;
            if e.micros >= window_start {
                *self.namespace_window.entry(e.namespace).or_default() += 1;
                if let Some(r) = e.repo {
                    *self.repo_window.entry((e.namespace, r)).or_default() += 1;
                }
                if e.who != Who::Anonymous {
                    *self.performer_window.entry((e.namespace, e.who)).or_default() += 1;
                }
                *self.kind_window.entry((e.namespace, e.kind)).or_default() += 1;
            }
        }
    }

    /// The namespace with the most entries in the window.
    pub fn largest_namespace(&self) -> u32 {
        max_key(&self.namespace_window).unwrap_or(0)
    }

    /// The repository with the most entries in the window.
    pub fn largest_repository(&self) -> (u32, u16) {
        max_key(&self.repo_window).unwrap_or((0, 0))
    }

    /// The busiest performer of `namespace` in the window.
    pub fn top_performer(&self, namespace: u32) -> Who {
        max_key(&self.performer_window.iter().filter(|((n, _), _)| *n == namespace).map(|(k, v)| (*k, *v)).collect())
            .map_or(Who::Robot(0), |(_, w)| w)
    }
}

/// The key with the largest value; ties go to the smallest key, so the choice is reproducible.
fn max_key<K: Copy + Ord + std::hash::Hash>(m: &HashMap<K, u64>) -> Option<K> {
    m.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).map(|(k, _)| *k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn universe(n: u64) -> Universe {
        Universe::new(n, 60, 7, 1000, OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap())
    }

    #[test]
    fn batches_are_reproducible_and_cover_every_entry() {
        let u = universe(2500);
        assert_eq!(u.batches(), 3);
        let all: Vec<Entry> = (0..u.batches()).flat_map(|b| u.batch(b)).collect();
        assert_eq!(all.len(), 2500);
        let again = u.batch(1);
        assert_eq!(again.len(), 1000);
        assert!(again.iter().zip(&all[1000..2000]).all(|(a, b)| a.micros == b.micros && a.namespace == b.namespace));
        assert!(all.iter().all(|e| e.micros >= u.start_micros && e.micros < u.end_micros));
    }

    #[test]
    fn traffic_is_skewed_and_pulls_dominate() {
        let u = universe(50_000);
        let all: Vec<Entry> = (0..u.batches()).flat_map(|b| u.batch(b)).collect();
        let pulls = all.iter().filter(|e| u.kind_name(e) == "pull_repo").count();
        assert!((0.65..0.75).contains(&(pulls as f64 / all.len() as f64)), "pulls: {pulls}");
        let mut census = Census::default();
        census.add(&all, u.start_micros);
        let top = census.namespace_total[&census.largest_namespace()];
        assert!(top as f64 > 0.1 * all.len() as f64, "the largest namespace is busy: {top}");
        assert!(all.iter().any(|e| matches!(e.who, Who::Robot(_))));
        assert!(all.iter().any(|e| e.who == Who::Anonymous));
    }

    #[test]
    fn lines_are_json_with_quay_metadata_keys() {
        let u = universe(3000);
        for e in u.batch(0).iter().take(300) {
            let mut line = String::new();
            u.ndjson_line(e, &mut line);
            let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
            assert!(v["metadata"].is_object(), "{line}");
            assert!(v["datetime"].as_str().unwrap().ends_with('Z'));
            if u.kind_name(e) == "pull_repo" {
                for key in ["namespace", "repo", "tag", "manifest_digest"] {
                    assert!(v["metadata"].get(key).is_some(), "{key} in {line}");
                }
            }
        }
    }
}
