//! The JSON bodies of the API, in Quay's shapes (key order as Quay writes them).

use crate::avatar::{avatar_color, avatar_hash};
use crate::dates::format_rfc2822;
use crate::entry::{DailyCount, LogEntry, NewLogEntry};
use crate::names::{KindName, Namespace, Performer, RepoName};
use crate::{dates::midnight, is_catalog_kind};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// The avatar block of a performer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Avatar {
    pub name: String,
    /// SHA-256 hex of the lower-cased e-mail, or of the name when there is none.
    pub hash: String,
    /// A colour of Quay's palette, chosen by the hash.
    #[cfg_attr(feature = "openapi", schema(example = "#aec7e8"))]
    pub color: String,
    /// `user` or `robot`.
    pub kind: String,
}

/// Who performed an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PerformerView {
    /// Always `user`, robots included (as Quay).
    pub kind: String,
    pub name: String,
    pub is_robot: bool,
    pub avatar: Avatar,
}

impl PerformerView {
    /// The block for a performer name and optional e-mail.
    pub fn new(name: &str, email: Option<&str>) -> Self {
        let is_robot = name.contains('+');
        let hash = avatar_hash(name, email);
        let color = avatar_color(&hash).to_owned();
        Self {
            kind: "user".into(),
            name: name.into(),
            is_robot,
            avatar: Avatar { name: name.into(), hash, color, kind: if is_robot { "robot" } else { "user" }.into() },
        }
    }
}

/// One log entry as the list endpoints show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LogView {
    #[cfg_attr(feature = "openapi", schema(example = "push_repo"))]
    pub kind: String,
    /// The stored metadata object (`{}` when there is none).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: Value,
    /// The client address, or null.
    pub ip: Option<String>,
    /// RFC 2822 in UTC: `Tue, 05 Mar 2024 13:07:09 -0000`.
    #[cfg_attr(feature = "openapi", schema(example = "Tue, 05 Mar 2024 13:07:09 -0000"))]
    pub datetime: String,
    /// Omitted for anonymous and system actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performer: Option<PerformerView>,
}

impl From<&LogEntry> for LogView {
    fn from(e: &LogEntry) -> Self {
        Self {
            kind: e.kind.clone(),
            metadata: Value::Object(e.metadata.clone()),
            ip: e.ip.clone(),
            datetime: format_rfc2822(e.datetime),
            performer: e.performer.as_deref().map(|p| PerformerView::new(p, e.performer_email.as_deref())),
        }
    }
}

/// A page of the list endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LogsPage {
    /// The window's inclusive start.
    #[cfg_attr(feature = "openapi", schema(example = "Fri, 01 Mar 2024 00:00:00 -0000"))]
    pub start_time: String,
    /// The window's exclusive end (the requested end day plus one).
    #[cfg_attr(feature = "openapi", schema(example = "Wed, 06 Mar 2024 00:00:00 -0000"))]
    pub end_time: String,
    /// Newest first.
    pub logs: Vec<LogView>,
    /// Present only when more entries exist; pass it back as `next_page`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page: Option<String>,
}

/// One (kind, day) count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AggregatedLogView {
    pub kind: String,
    pub count: i64,
    /// 00:00:00 UTC of the day.
    #[cfg_attr(feature = "openapi", schema(example = "Tue, 05 Mar 2024 00:00:00 -0000"))]
    pub datetime: String,
}

impl From<&DailyCount> for AggregatedLogView {
    fn from(c: &DailyCount) -> Self {
        Self { kind: c.kind.clone(), count: c.count, datetime: format_rfc2822(midnight(c.day)) }
    }
}

/// The body of the aggregate endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AggregatedLogs {
    /// Sorted by day, then kind.
    pub aggregated: Vec<AggregatedLogView>,
}

/// The answer to an export request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ExportCreated {
    pub export_id: String,
}

/// The status of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ExportStatusView {
    pub export_id: String,
    /// `queued`, `running`, `success`, `failed` or `expired` (the file was deleted after its TTL).
    #[cfg_attr(feature = "openapi", schema(example = "success"))]
    pub status: String,
    /// `json`, `ndjson` or `csv`.
    pub format: String,
    /// First instant exported (RFC 2822).
    pub start_time: String,
    /// Exclusive end of the export (RFC 2822).
    pub end_time: String,
    pub namespace: String,
    pub repository: Option<String>,
    /// Entries written, once done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<i64>,
    /// Where to download the file, while it lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exported_data_url: Option<String>,
    /// When the link expires (RFC 2822).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The body of an export request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ExportRequestBody {
    /// An http(s) URL that receives Quay's callback payload when the export ends.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(example = "https://hooks.example.com/usagelogs"))]
    pub callback_url: Option<String>,
    /// An address that receives an e-mail when the export ends.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(example = "alice@example.com"))]
    pub callback_email: Option<String>,
    /// `json` (Quay's layout, the default), `ndjson` or `csv`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(example = "json"))]
    pub format: Option<String>,
}

/// Quay's error body, used for every error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ApiErrorBody {
    /// A human-readable message.
    pub detail: String,
    /// The same message (Quay's web page reads this one).
    pub error_message: String,
    /// The machine code (same as `title`).
    pub error_type: String,
    /// The machine code.
    pub title: String,
    /// `<scheme>://<host>/api/v1/error/<code>`.
    #[serde(rename = "type")]
    pub type_url: String,
    /// The HTTP status.
    pub status: u16,
}

impl ApiErrorBody {
    /// A body for `status`, machine code `code`, message `detail`, on server `base_url`
    /// (`scheme://host`).
    pub fn new(status: u16, code: &str, detail: impl Into<String>, base_url: &str) -> Self {
        let detail = detail.into();
        Self {
            error_message: detail.clone(),
            detail,
            error_type: code.into(),
            title: code.into(),
            type_url: format!("{}/api/v1/error/{code}", base_url.trim_end_matches('/')),
            status,
        }
    }
}

/// One entry of an ingestion batch, as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct IngestEntry {
    /// A kind of the catalog (or any kind, when the server allows custom kinds).
    #[cfg_attr(feature = "openapi", schema(example = "push_repo"))]
    pub kind: String,
    #[cfg_attr(feature = "openapi", schema(example = "acme"))]
    pub namespace: String,
    /// The repository name inside the namespace.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(example = "web"))]
    pub repository: Option<String>,
    /// A user (`alice`) or robot (`acme+deployer`); absent for anonymous actions.
    #[serde(default)]
    pub performer: Option<String>,
    #[serde(default)]
    pub performer_email: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(example = "203.0.113.7"))]
    pub ip: Option<String>,
    /// A JSON object.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Value>,
    /// RFC 3339; defaults to now.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(example = "2024-03-05T13:07:09Z"))]
    pub datetime: Option<String>,
}

/// Why an ingested entry was refused: the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

fn field_err(field: &'static str, message: impl ToString) -> FieldError {
    FieldError { field, message: message.to_string() }
}

/// Longest IP address text accepted.
const MAX_IP_LEN: usize = 255;

impl IngestEntry {
    /// Validates the entry; `now` fills a missing `datetime`.
    pub fn validate(self, now: OffsetDateTime, allow_custom_kinds: bool) -> Result<NewLogEntry, FieldError> {
        let kind = KindName::new(self.kind).map_err(|e| field_err("kind", e))?;
        if !allow_custom_kinds && !is_catalog_kind(kind.as_str()) {
            return Err(field_err("kind", format!("unknown log kind '{kind}'")));
        }
        let namespace = Namespace::new(self.namespace).map_err(|e| field_err("namespace", e))?;
        let repository = match self.repository {
            Some(r) if !r.is_empty() => Some(RepoName::new(r).map_err(|e| field_err("repository", e))?),
            _ => None,
        };
        let performer = match self.performer {
            Some(p) if !p.is_empty() => Some(Performer::new(p).map_err(|e| field_err("performer", e))?),
            _ => None,
        };
        let performer_email = self.performer_email.filter(|e| !e.trim().is_empty());
        if performer_email.as_ref().is_some_and(|e| e.len() > 255 || !e.contains('@')) {
            return Err(field_err("performer_email", "not an e-mail address"));
        }
        let ip = self.ip.filter(|ip| !ip.is_empty());
        if ip.as_ref().is_some_and(|ip| ip.len() > MAX_IP_LEN) {
            return Err(field_err("ip", format!("longer than {MAX_IP_LEN} characters")));
        }
        let metadata = match self.metadata {
            None | Some(Value::Null) => serde_json::Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => return Err(field_err("metadata", "must be a JSON object")),
        };
        let datetime = match self.datetime {
            None => now,
            Some(s) => OffsetDateTime::parse(&s, &Rfc3339)
                .map_err(|_| field_err("datetime", format!("'{s}' is not an RFC 3339 date-time")))?,
        };
        let datetime = datetime.to_offset(time::UtcOffset::UTC);
        if !(1970..=9998).contains(&datetime.year()) {
            return Err(field_err("datetime", "year must lie between 1970 and 9998"));
        }
        Ok(NewLogEntry { kind, namespace, repository, performer, performer_email, ip, metadata, datetime })
    }
}

/// The answer to an ingestion batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct IngestAccepted {
    /// How many entries were stored.
    pub accepted: usize,
}

/// The catalog of kinds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct KindList {
    pub kinds: Vec<KindInfo>,
}

/// One kind of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct KindInfo {
    pub name: String,
    /// Whether the user endpoints leave this kind out (the six `service_key_*` kinds).
    pub service_key: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::{date, datetime};

    #[test]
    fn log_view_shape() {
        let entry = LogEntry {
            id: 7,
            kind: "push_repo".into(),
            namespace: "acme".into(),
            repository: Some("web".into()),
            performer: Some("acme+deployer".into()),
            performer_email: None,
            ip: Some("203.0.113.7".into()),
            metadata: json!({"tag": "v1"}).as_object().unwrap().clone(),
            datetime: datetime!(2024-03-05 13:07:09.5 UTC),
        };
        let v = serde_json::to_value(LogView::from(&entry)).unwrap();
        let hash = avatar_hash("acme+deployer", None);
        assert_eq!(
            v,
            json!({
                "kind": "push_repo",
                "metadata": {"tag": "v1"},
                "ip": "203.0.113.7",
                "datetime": "Tue, 05 Mar 2024 13:07:09 -0000",
                "performer": {"kind": "user", "name": "acme+deployer", "is_robot": true,
                    "avatar": {"name": "acme+deployer", "hash": hash, "color": avatar_color(&hash), "kind": "robot"}}
            })
        );
        let anon = LogEntry { performer: None, ip: None, metadata: Default::default(), ..entry };
        let text = serde_json::to_string(&LogView::from(&anon)).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"push_repo","metadata":{},"ip":null,"datetime":"Tue, 05 Mar 2024 13:07:09 -0000"}"#
        );
    }

    #[test]
    fn page_omits_absent_next_page() {
        let page = LogsPage { start_time: "a".into(), end_time: "b".into(), logs: vec![], next_page: None };
        assert_eq!(serde_json::to_string(&page).unwrap(), r#"{"start_time":"a","end_time":"b","logs":[]}"#);
    }

    #[test]
    fn aggregated_and_error_shapes() {
        let c = DailyCount { day: date!(2024 - 03 - 05), kind: "pull_repo".into(), count: 3 };
        assert_eq!(
            serde_json::to_value(AggregatedLogView::from(&c)).unwrap(),
            json!({"kind": "pull_repo", "count": 3, "datetime": "Tue, 05 Mar 2024 00:00:00 -0000"})
        );
        let e = ApiErrorBody::new(403, "insufficient_scope", "Unauthorized", "http://localhost:8080/");
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"detail":"Unauthorized","error_message":"Unauthorized","error_type":"insufficient_scope","title":"insufficient_scope","type":"http://localhost:8080/api/v1/error/insufficient_scope","status":403}"#
        );
    }

    #[test]
    fn ingest_validation() {
        let now = datetime!(2024-03-05 00:00 UTC);
        let ok: IngestEntry = serde_json::from_value(json!({
            "kind": "push_repo", "namespace": "acme", "repository": "web", "performer": "alice",
            "performer_email": null, "ip": "203.0.113.7", "metadata": {"tag": "v1"},
            "datetime": "2024-03-05T13:07:09.123456+01:00"
        }))
        .unwrap();
        let e = ok.validate(now, false).unwrap();
        assert_eq!(e.datetime, datetime!(2024-03-05 12:07:09.123456 UTC));
        assert_eq!(e.repository.unwrap().as_str(), "web");

        let minimal: IngestEntry = serde_json::from_value(json!({"kind": "user_create", "namespace": "acme"})).unwrap();
        let e = minimal.validate(now, false).unwrap();
        assert_eq!(e.datetime, now);
        assert!(e.metadata.is_empty());

        let cases = [
            (json!({"kind": "nope", "namespace": "acme"}), "kind"),
            (json!({"kind": "push_repo", "namespace": "bad ns"}), "namespace"),
            (json!({"kind": "push_repo", "namespace": "acme", "repository": "a//b"}), "repository"),
            (json!({"kind": "push_repo", "namespace": "acme", "performer": "a+b+c"}), "performer"),
            (json!({"kind": "push_repo", "namespace": "acme", "metadata": [1]}), "metadata"),
            (json!({"kind": "push_repo", "namespace": "acme", "datetime": "yesterday"}), "datetime"),
            (json!({"kind": "push_repo", "namespace": "acme", "performer_email": "x"}), "performer_email"),
        ];
        for (v, field) in cases {
            let entry: IngestEntry = serde_json::from_value(v).unwrap();
            assert_eq!(entry.validate(now, false).unwrap_err().field, field);
        }
        let custom: IngestEntry = serde_json::from_value(json!({"kind": "my_kind", "namespace": "acme"})).unwrap();
        assert!(custom.validate(now, true).is_ok());
    }
}
