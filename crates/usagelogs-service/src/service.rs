//! The use cases: list, aggregate, ingest.

use crate::error::ServiceError;
use crate::page_token::{PageTokenKey, binding};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};
use usagelogs_core::wire::{AggregatedLogView, AggregatedLogs, IngestEntry, LogView, LogsPage};
use usagelogs_core::{
    Claims, Decision, Endpoint, KindName, Level, Namespace, NewLogEntry, Operation, RepoPath, SERVICE_KEY_KINDS,
    TimeWindow, authorize, format_rfc2822, is_catalog_kind, parse_date_param,
};
use usagelogs_store::{KeyedInsert, KindFilter, LogQuery, LogScope, LogStore};

/// Settings of the use cases.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Key of the page tokens.
    pub page_token_key: PageTokenKey,
    /// How long a page token stays valid.
    pub page_token_ttl: Duration,
    /// Longest aggregate window, in days.
    pub max_aggregate_days: u32,
    /// Accept kinds outside the catalog.
    pub allow_custom_kinds: bool,
    /// Most entries in one ingestion batch.
    pub max_batch_entries: usize,
    /// Default page size of the lists.
    pub default_page_size: usize,
    /// Largest page size a client may ask for.
    pub max_page_size: usize,
}

impl ServiceConfig {
    /// Defaults with the given page-token key.
    pub fn new(page_token_key: PageTokenKey) -> Self {
        Self {
            page_token_key,
            page_token_ttl: Duration::days(7),
            max_aggregate_days: 31,
            allow_custom_kinds: false,
            max_batch_entries: 10_000,
            default_page_size: 20,
            max_page_size: 100,
        }
    }
}

/// Which logs a request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The caller's own namespace.
    User,
    /// An organization (or user) namespace.
    Org(Namespace),
    /// A repository.
    Repo(RepoPath),
}

impl Target {
    /// The core's name for this target.
    pub(crate) fn endpoint(&self) -> Endpoint<'_> {
        match self {
            Target::User => Endpoint::User,
            Target::Org(ns) => Endpoint::Org(ns),
            Target::Repo(r) => Endpoint::Repo(r),
        }
    }
}

/// May `caller` do `level` on `target`? 403 when not (missing scope or grant alike).
pub(crate) fn authorize_target(caller: &Claims, target: &Target, level: Level) -> Result<(), ServiceError> {
    match authorize(caller, Operation::Read(target.endpoint(), level)) {
        Decision::Allow => Ok(()),
        Decision::MissingScope(_) | Decision::NoGrant => Err(ServiceError::Forbidden),
    }
}

/// The query parameters of the list and aggregate endpoints, raw.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub starttime: Option<String>,
    pub endtime: Option<String>,
    pub performer: Option<String>,
    pub next_page: Option<String>,
    /// Kind names, each possibly comma-separated.
    pub kinds: Vec<String>,
    pub limit: Option<String>,
}

/// The use cases over a store.
#[derive(Clone)]
pub struct LogService {
    store: Arc<dyn LogStore>,
    config: ServiceConfig,
}

impl std::fmt::Debug for LogService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogService").field("config", &self.config).finish_non_exhaustive()
    }
}

/// A resolved query plus what its page tokens are bound to.
struct Resolved {
    query: LogQuery,
    bind: [u8; 16],
}

impl LogService {
    /// The use cases over `store`.
    pub fn new(store: Arc<dyn LogStore>, config: ServiceConfig) -> Self {
        Self { store, config }
    }

    /// The store behind the service.
    pub fn store(&self) -> &Arc<dyn LogStore> {
        &self.store
    }

    /// The settings.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    fn parse_kinds(&self, raw: &[String]) -> Result<Option<Vec<String>>, ServiceError> {
        let mut kinds: Vec<String> = Vec::new();
        for name in raw.iter().flat_map(|r| r.split(',')).map(str::trim).filter(|s| !s.is_empty()) {
            let known = KindName::new(name).is_ok() && (is_catalog_kind(name) || self.config.allow_custom_kinds);
            if !known {
                let shown: String = name.chars().take(64).collect();
                return Err(ServiceError::BadRequest(format!("Unknown log kind '{shown}' in parameter kind")));
            }
            kinds.push(name.to_owned());
        }
        kinds.sort();
        kinds.dedup();
        Ok((!kinds.is_empty()).then_some(kinds))
    }

    /// Parameters, then existence; callers check permission first (the contract's order).
    fn resolve(
        &self,
        caller: &Claims,
        target: &Target,
        level: Level,
        params: &ListParams,
        now: OffsetDateTime,
    ) -> Result<Resolved, ServiceError> {
        let mut window = TimeWindow::from_params(params.starttime.as_deref(), params.endtime.as_deref(), now)?;
        if level == Level::Aggregate {
            window = window.check_max_days(self.config.max_aggregate_days)?;
        }
        let include = self.parse_kinds(&params.kinds)?;
        // Repository endpoints ignore `performer`, as Quay does.
        let performer = match target {
            Target::Repo(_) => None,
            _ => params.performer.clone().filter(|p| !p.is_empty()),
        };
        let exclude = match target {
            Target::User => SERVICE_KEY_KINDS.iter().map(|k| (*k).to_owned()).collect(),
            _ => Vec::new(),
        };
        let scope = match target {
            Target::User => LogScope::Namespace(caller.sub.clone()),
            Target::Org(ns) => {
                if !self.store.namespace_exists(ns.as_str())? {
                    return Err(ServiceError::NotFound);
                }
                LogScope::Namespace(ns.to_string())
            }
            Target::Repo(r) => {
                if !self.store.repository_exists(r.namespace().as_str(), r.name().as_str())? {
                    return Err(ServiceError::NotFound);
                }
                LogScope::Repository { namespace: r.namespace().to_string(), name: r.name().to_string() }
            }
        };
        // Bound to everything that selects entries; the explicit dates too, but not the drifting
        // default window.
        let start_day = parse_date_param("starttime", params.starttime.as_deref())?.map(|d| d.to_string());
        let end_day = parse_date_param("endtime", params.endtime.as_deref())?.map(|d| d.to_string());
        let (kind_tag, ns, repo) = match &scope {
            LogScope::Namespace(ns) => (if *target == Target::User { "user" } else { "org" }, ns.as_str(), ""),
            LogScope::Repository { namespace, name } => ("repo", namespace.as_str(), name.as_str()),
        };
        let include_joined = include.as_deref().map(|k| k.join(",")).unwrap_or_default();
        let bind = binding(&[
            kind_tag,
            ns,
            repo,
            performer.as_deref().unwrap_or(""),
            &include_joined,
            start_day.as_deref().unwrap_or("-"),
            end_day.as_deref().unwrap_or("-"),
        ]);
        let query = LogQuery { scope, window, performer, kinds: KindFilter { include, exclude } };
        Ok(Resolved { query, bind })
    }

    /// A page of logs (list endpoints).
    pub fn list(
        &self,
        caller: &Claims,
        target: &Target,
        params: &ListParams,
        now: OffsetDateTime,
    ) -> Result<LogsPage, ServiceError> {
        authorize_target(caller, target, Level::List)?;
        let limit = match params.limit.as_deref() {
            None | Some("") => self.config.default_page_size,
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (1..=self.config.max_page_size).contains(&n) => n,
                _ => {
                    return Err(ServiceError::BadRequest(format!(
                        "Invalid limit: expected an integer from 1 to {}",
                        self.config.max_page_size
                    )));
                }
            },
        };
        let resolved = self.resolve(caller, target, Level::List, params, now)?;
        let after = match params.next_page.as_deref() {
            None | Some("") => None,
            Some(token) => Some(
                self.config
                    .page_token_key
                    .verify(token, resolved.bind, now)
                    .map_err(|_| ServiceError::BadRequest("Invalid page token".into()))?,
            ),
        };
        let page = self.store.list(&resolved.query, after, limit)?;
        let next_page =
            page.next.map(|c| self.config.page_token_key.issue(c, resolved.bind, now + self.config.page_token_ttl));
        Ok(LogsPage {
            start_time: format_rfc2822(resolved.query.window.start()),
            end_time: format_rfc2822(resolved.query.window.end()),
            logs: page.entries.iter().map(LogView::from).collect(),
            next_page,
        })
    }

    /// Daily counts per kind (aggregate endpoints).
    pub fn aggregate(
        &self,
        caller: &Claims,
        target: &Target,
        params: &ListParams,
        now: OffsetDateTime,
    ) -> Result<AggregatedLogs, ServiceError> {
        authorize_target(caller, target, Level::Aggregate)?;
        let resolved = self.resolve(caller, target, Level::Aggregate, params, now)?;
        let counts = self.store.aggregate(&resolved.query)?;
        Ok(AggregatedLogs { aggregated: counts.iter().map(AggregatedLogView::from).collect() })
    }

    /// Checks that `caller` may ingest.
    pub fn authorize_ingest(&self, caller: &Claims) -> Result<(), ServiceError> {
        match authorize(caller, Operation::Ingest) {
            Decision::Allow => Ok(()),
            _ => Err(ServiceError::Forbidden),
        }
    }

    /// Validates a batch: the first bad entry is named by index and field.
    pub fn validate_batch(
        &self,
        entries: Vec<IngestEntry>,
        now: OffsetDateTime,
    ) -> Result<Vec<NewLogEntry>, ServiceError> {
        if entries.len() > self.config.max_batch_entries {
            return Err(ServiceError::TooLarge(format!(
                "A batch holds at most {} entries; this one has {}",
                self.config.max_batch_entries,
                entries.len()
            )));
        }
        entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                e.validate(now, self.config.allow_custom_kinds)
                    .map_err(|err| ServiceError::BadRequest(format!("Invalid entry at index {i}: {err}")))
            })
            .collect()
    }

    /// Stores a batch, all or nothing. With an idempotency key, a batch already stored for the
    /// same caller and key within a day is not stored again and answers the same count — across
    /// restarts and replicas, since the key is recorded with the entries.
    pub fn ingest(
        &self,
        caller: &Claims,
        entries: Vec<IngestEntry>,
        idempotency_key: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<usize, ServiceError> {
        self.authorize_ingest(caller)?;
        let batch = self.validate_batch(entries, now)?;
        match idempotency_key {
            None => Ok(self.store.insert_batch(&batch)?),
            Some(key) => match self.store.insert_batch_keyed(&batch, &caller.sub, key, now)? {
                KeyedInsert::Stored(n) | KeyedInsert::Replayed(n) => Ok(n),
            },
        }
    }
}
