//! Log entries as written and as stored.

use crate::names::{KindName, Namespace, Performer, RepoName};
use serde_json::{Map, Value};
use time::{Date, OffsetDateTime};

/// An entry to be stored, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLogEntry {
    pub kind: KindName,
    pub namespace: Namespace,
    pub repository: Option<RepoName>,
    pub performer: Option<Performer>,
    /// The performer's e-mail, used for the avatar hash when given.
    pub performer_email: Option<String>,
    pub ip: Option<String>,
    pub metadata: Map<String, Value>,
    /// When it happened (UTC; stored with microsecond precision).
    pub datetime: OffsetDateTime,
}

/// A stored entry, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    /// Unique, increasing in insertion order; ties on `datetime` are ordered by it.
    pub id: i64,
    pub kind: String,
    pub namespace: String,
    pub repository: Option<String>,
    pub performer: Option<String>,
    pub performer_email: Option<String>,
    pub ip: Option<String>,
    pub metadata: Map<String, Value>,
    pub datetime: OffsetDateTime,
}

/// The number of entries of one kind on one UTC calendar day.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DailyCount {
    pub day: Date,
    pub kind: String,
    pub count: i64,
}
