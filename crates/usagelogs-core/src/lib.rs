#![doc = include_str!("../README.md")]

pub mod auth;
pub mod avatar;
pub mod catalog;
pub mod dates;
pub mod entry;
pub mod names;
pub mod wire;

pub use auth::{AccessGrant, Claims, Decision, Endpoint, Level, Operation, SuperuserLevel, authorize};
pub use avatar::{avatar_color, avatar_hash};
pub use catalog::{KINDS, SERVICE_KEY_KINDS, is_catalog_kind, is_service_key_kind};
pub use dates::{DateParamError, TimeWindow, format_rfc2822, midnight, parse_date_param};
pub use entry::{DailyCount, LogEntry, NewLogEntry};
pub use names::{KindName, NameError, Namespace, Performer, RepoPath};
