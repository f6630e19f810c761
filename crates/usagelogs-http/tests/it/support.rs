//! The `TestApp` builder, typed request helpers, token minting and entry builders.

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::web::Bytes;
use actix_web::{App, test, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use usagelogs_core::wire::IngestEntry;
use usagelogs_core::{AccessGrant, Claims, SuperuserLevel};
use usagelogs_http::{AppState, HttpLimits, JwtKey, JwtVerifier, TokenSigner, configure};
use usagelogs_service::export::{CallbackPolicy, LocalExportStorage, Notifier, NotifyConfig};
use usagelogs_service::{ExportConfig, ExportService, LogService, PageTokenKey, ServiceConfig};
use usagelogs_store::testing::{self, TestDatabase};
use usagelogs_store::{Backend, LogStore};

/// The HS256 secret the test server verifies tokens with.
pub const SECRET: &[u8] = b"usagelogs-http-integration-test-secret";
/// The page-token key of the test server.
pub const PAGE_KEY: &[u8] = b"usagelogs-http-integration-page-token-key";
/// Every scope the API knows.
pub const ALL_SCOPES: &str = "user:admin org:admin repo:admin logs:write";

// ---------------------------------------------------------------------------------------------
// Tokens

/// Token minting: claims are built here, signed with [`SECRET`] unless the name says otherwise.
pub mod tokens {
    use super::*;

    /// Claims for `sub` with every scope, valid for an hour.
    pub fn claims(sub: &str) -> Claims {
        Claims {
            sub: sub.to_owned(),
            exp: OffsetDateTime::now_utc().unix_timestamp() + 3600,
            nbf: None,
            iat: Some(OffsetDateTime::now_utc().unix_timestamp()),
            iss: None,
            aud: None,
            scope: ALL_SCOPES.to_owned(),
            access: Vec::new(),
            superuser: None,
        }
    }

    /// An `admin` grant of `kind` (`organization` or `repository`) over `name`.
    pub fn grant(kind: &str, name: &str) -> AccessGrant {
        AccessGrant { kind: kind.to_owned(), name: name.to_owned(), actions: vec!["admin".to_owned()] }
    }

    /// `claims` signed with the server's secret (HS256).
    pub fn sign(claims: &Claims) -> String {
        TokenSigner::hs256(SECRET).sign(claims).unwrap()
    }

    /// `sub`, every scope, no grant: administers only its own namespace.
    pub fn user(sub: &str) -> String {
        sign(&claims(sub))
    }

    /// `sub` with an organization admin grant over `org`.
    pub fn org_admin(sub: &str, org: &str) -> String {
        sign(&Claims { access: vec![grant("organization", org)], ..claims(sub) })
    }

    /// `sub` with a repository admin grant over `repo` (`namespace/name`).
    pub fn repo_admin(sub: &str, repo: &str) -> String {
        sign(&Claims { access: vec![grant("repository", repo)], ..claims(sub) })
    }

    /// A superuser of `level`, every scope.
    pub fn superuser(sub: &str, level: SuperuserLevel) -> String {
        sign(&Claims { superuser: Some(level), ..claims(sub) })
    }

    /// `sub` with exactly the scopes `scope` (space-separated), no grant.
    pub fn with_scope(sub: &str, scope: &str) -> String {
        sign(&Claims { scope: scope.to_owned(), ..claims(sub) })
    }

    /// Expired two minutes ago (beyond any leeway).
    pub fn expired(sub: &str) -> String {
        sign(&Claims { exp: OffsetDateTime::now_utc().unix_timestamp() - 120, ..claims(sub) })
    }

    /// HS256, signed with another secret.
    pub fn bad_signature(sub: &str) -> String {
        TokenSigner::hs256(b"not-the-server-secret").sign(&claims(sub)).unwrap()
    }

    /// Hand-crafted `alg: none` token with an empty signature.
    pub fn alg_none(sub: &str) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(sub)).unwrap());
        format!("{header}.{payload}.")
    }

    /// HS384 signed with the server's own secret: a valid MAC, the wrong algorithm.
    pub fn other_algorithm(sub: &str) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS384), &claims(sub), &EncodingKey::from_secret(SECRET)).unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// Entries

/// Builds an [`IngestEntry`]: `entry("push_repo", "acme").repo("web").by("alice").at("…")`.
#[derive(Debug, Clone)]
pub struct EntryBuilder(IngestEntry);

/// An entry of `kind` in `namespace`, nothing else set.
pub fn entry(kind: &str, namespace: &str) -> EntryBuilder {
    EntryBuilder(IngestEntry {
        kind: kind.to_owned(),
        namespace: namespace.to_owned(),
        repository: None,
        performer: None,
        performer_email: None,
        ip: None,
        metadata: None,
        datetime: None,
    })
}

impl EntryBuilder {
    pub fn repo(mut self, name: &str) -> Self {
        self.0.repository = Some(name.to_owned());
        self
    }
    pub fn by(mut self, performer: &str) -> Self {
        self.0.performer = Some(performer.to_owned());
        self
    }
    pub fn email(mut self, email: &str) -> Self {
        self.0.performer_email = Some(email.to_owned());
        self
    }
    pub fn ip(mut self, ip: &str) -> Self {
        self.0.ip = Some(ip.to_owned());
        self
    }
    pub fn meta(mut self, metadata: Value) -> Self {
        self.0.metadata = Some(metadata);
        self
    }
    /// RFC 3339.
    pub fn at(mut self, datetime: &str) -> Self {
        self.0.datetime = Some(datetime.to_owned());
        self
    }
    pub fn at_time(self, t: OffsetDateTime) -> Self {
        let s = t.format(&time::format_description::well_known::Rfc3339).unwrap();
        self.at(&s)
    }
}

impl From<EntryBuilder> for IngestEntry {
    fn from(b: EntryBuilder) -> Self {
        b.0
    }
}

// ---------------------------------------------------------------------------------------------
// Wire helpers, computed independently of the production code

/// Quay's 32-colour avatar palette (reference §2.3).
pub const PALETTE: [&str; 32] = [
    "#969696", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896", "#9467bd", "#c5b0d5",
    "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7", "#bcbd22", "#1f77b4", "#17becf", "#9edae5",
    "#393b79", "#5254a3", "#6b6ecf", "#9c9ede", "#9ecae1", "#31a354", "#b5cf6b", "#a1d99b", "#8c6d31", "#ad494a",
    "#e7ba52", "#a55194",
];

/// SHA-256 hex of the lower-cased text.
pub fn sha256_lower(text: &str) -> String {
    hex::encode(Sha256::digest(text.to_lowercase().as_bytes()))
}

/// The palette colour of a hash.
pub fn colour(hash: &str) -> &'static str {
    PALETTE[usize::from_str_radix(&hash[..2], 16).unwrap() % 32]
}

/// The exact performer block text for `name` (hash of `email` when given).
pub fn performer_json(name: &str, email: Option<&str>) -> String {
    let hash = sha256_lower(email.unwrap_or(name));
    let robot = name.contains('+');
    format!(
        r#"{{"kind":"user","name":"{name}","is_robot":{robot},"avatar":{{"name":"{name}","hash":"{hash}","color":"{}","kind":"{}"}}}}"#,
        colour(&hash),
        if robot { "robot" } else { "user" }
    )
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The application under test

/// Builds an in-process server over a fresh database.
/// What a test app owns: its database and its export folder, deleted on drop.
#[derive(Debug)]
pub struct Fixture {
    db: TestDatabase,
    pub export_dir: tempfile::TempDir,
}

impl Fixture {
    /// The test's database.
    pub fn database(&self) -> &TestDatabase {
        &self.db
    }
}

pub struct TestApp {
    verifier: Option<JwtVerifier>,
    callback_allow: Vec<String>,
    backend: Backend,
    entries: Vec<IngestEntry>,
    config: ServiceConfig,
    limits: HttpLimits,
    public_url: Option<String>,
}

impl Default for TestApp {
    fn default() -> Self {
        Self::on(Backend::Sqlite)
    }
}

impl TestApp {
    /// On a fresh SQLite file.
    pub fn new() -> Self {
        Self::default()
    }

    /// On a fresh database of `backend` (PostgreSQL: a throwaway database).
    pub fn on(backend: Backend) -> Self {
        Self {
            verifier: None,
            callback_allow: Vec::new(),
            backend,
            entries: Vec::new(),
            config: ServiceConfig::new(PageTokenKey::new(PAGE_KEY)),
            limits: HttpLimits::default(),
            public_url: None,
        }
    }

    /// Verifies tokens with `verifier` instead of HS256 with [`SECRET`].
    pub fn with_verifier(mut self, verifier: JwtVerifier) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// Hosts or networks export callbacks may reach although not public (`--callback-allow`).
    pub fn with_callback_allow(mut self, allow: &[&str]) -> Self {
        self.callback_allow = allow.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// Entries stored (in this order, one batch) before the server starts.
    pub fn with_entries<E: Into<IngestEntry>>(mut self, entries: impl IntoIterator<Item = E>) -> Self {
        self.entries.extend(entries.into_iter().map(Into::into));
        self
    }

    /// Tweaks the service settings.
    pub fn with_config(mut self, tweak: impl FnOnce(&mut ServiceConfig)) -> Self {
        tweak(&mut self.config);
        self
    }

    /// Tweaks the HTTP limits.
    pub fn with_limits(mut self, tweak: impl FnOnce(&mut HttpLimits)) -> Self {
        tweak(&mut self.limits);
        self
    }

    /// Sets the public URL used in error `type` links.
    pub fn with_public_url(mut self, url: &str) -> Self {
        self.public_url = Some(url.to_owned());
        self
    }

    /// Creates the database, stores the entries and returns the state to serve.
    pub fn build_state(self) -> (Fixture, web::Data<AppState>) {
        let db = testing::test_database(self.backend);
        let export_dir = tempfile::tempdir().unwrap();
        let store = db.store();
        if !self.entries.is_empty() {
            let now = OffsetDateTime::now_utc();
            let batch: Vec<_> = self
                .entries
                .into_iter()
                .enumerate()
                .map(|(i, e)| {
                    e.validate(now, self.config.allow_custom_kinds)
                        .unwrap_or_else(|err| panic!("test entry {i}: {err}"))
                })
                .collect();
            for chunk in batch.chunks(1000) {
                assert_eq!(store.insert_batch(chunk).unwrap(), chunk.len());
            }
        }
        let verifier = self.verifier.unwrap_or_else(|| {
            JwtVerifier::new(Algorithm::HS256, &JwtKey::Secret(SECRET.to_vec()), None, None).unwrap()
        });
        let store = Arc::new(store);
        let service = LogService::new(store.clone(), self.config);
        let policy = CallbackPolicy::new(&self.callback_allow).unwrap();
        let notify = NotifyConfig { callback_backoff: Duration::from_millis(10), ..NotifyConfig::default() };
        let exports = ExportService::new(
            store.clone(),
            store,
            Arc::new(LocalExportStorage::new(export_dir.path()).unwrap()),
            Notifier::new(notify, policy.clone()),
            policy,
            ExportConfig { chunk_size: 100, ..ExportConfig::default() },
        );
        let mut state = AppState::new(service, verifier);
        state.limits = self.limits;
        state.public_url = self.public_url;
        state.exports = Some(Arc::new(exports));
        (Fixture { db, export_dir }, web::Data::new(state))
    }

    /// Starts the in-process server.
    pub async fn start(self) -> Api<impl AppService> {
        let (fixture, state) = self.build_state();
        let mut api = serve(state).await;
        api.fixture = Some(fixture);
        api
    }
}

/// Serves `state` in-process (the database stays the caller's).
pub async fn serve(state: web::Data<AppState>) -> Api<impl AppService> {
    let svc = test::init_service(App::new().configure(configure(state.clone()))).await;
    Api { svc, state, fixture: None }
}

/// The in-process application, whatever its concrete type.
pub trait AppService: Service<Request, Response = ServiceResponse<Self::Body>, Error = actix_web::Error> {
    type Body: MessageBody;
}

impl<S, B> AppService for S
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Body = B;
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    /// The body as JSON (panics with the body text when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).unwrap()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The running in-process server.
pub struct Api<S> {
    svc: S,
    pub state: web::Data<AppState>,
    pub fixture: Option<Fixture>,
}

impl<S: AppService> Api<S> {
    /// Sends a request built by hand.
    pub async fn send(&self, req: test::TestRequest) -> Resp {
        let resp = test::call_service(&self.svc, req.to_request()).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = test::read_body(resp).await;
        Resp { status, headers, body }
    }

    fn authed(req: test::TestRequest, token: Option<&str>) -> test::TestRequest {
        match token {
            Some(t) => req.insert_header((header::AUTHORIZATION, format!("Bearer {t}"))),
            None => req,
        }
    }

    /// `GET path` with an optional bearer token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.send(Self::authed(test::TestRequest::get().uri(path), token)).await
    }

    /// `GET path`, status and JSON body.
    pub async fn get_json(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let r = self.get(path, token).await;
        let v = r.json();
        (r.status, v)
    }

    /// `GET path`, expecting 200 and a JSON body.
    pub async fn get_ok(&self, path: &str, token: &str) -> Value {
        let r = self.get(path, Some(token)).await;
        assert_eq!(r.status, StatusCode::OK, "GET {path}: {}", String::from_utf8_lossy(&r.body));
        r.json()
    }

    /// `POST path` with a raw body, content type and extra headers.
    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<Bytes>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = Self::authed(test::TestRequest::post().uri(path), token);
        if let Some(ct) = content_type {
            req = req.insert_header((header::CONTENT_TYPE, ct.to_owned()));
        }
        for (k, v) in headers {
            req = req.insert_header((k.to_string(), v.to_string()));
        }
        self.send(req.set_payload(body.into())).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.post_raw(path, token, Some("application/json"), serde_json::to_vec(body).unwrap(), &[]).await
    }

    /// Ingests entries through `POST /api/v1/logs`, expecting 201.
    pub async fn ingest(&self, entries: Vec<IngestEntry>) {
        let r = self.post("/api/v1/logs", Some(&tokens::with_scope("ingester", "logs:write")), &json!(entries)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    }

    /// Every page of a list, following `next_page`: asserts that every page but the last is full
    /// (`limit` entries), that the last has no `next_page` and is not empty (unless the whole
    /// result is), and returns the entries in order with the number of pages.
    pub async fn list_all(&self, path: &str, token: &str, limit: Option<usize>) -> (Vec<Value>, usize) {
        let page_size = limit.unwrap_or(20);
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut url = match limit {
            Some(l) => format!("{path}{sep}limit={l}"),
            None => path.to_owned(),
        };
        let mut all = Vec::new();
        let mut pages = 0;
        loop {
            let page = self.get_ok(&url, token).await;
            pages += 1;
            assert!(pages < 10_000, "paging does not end");
            let logs = page["logs"].as_array().unwrap().clone();
            match page.get("next_page") {
                Some(next) => {
                    assert_eq!(logs.len(), page_size, "page {pages} of {path} has next_page but is not full");
                    let next = next.as_str().unwrap();
                    let sep = if path.contains('?') { '&' } else { '?' };
                    url = match limit {
                        Some(l) => format!("{path}{sep}limit={l}&next_page={}", enc(next)),
                        None => format!("{path}{sep}next_page={}", enc(next)),
                    };
                    all.extend(logs);
                }
                None => {
                    assert!(!logs.is_empty() || pages == 1, "an extra empty page {pages} for {path}");
                    all.extend(logs);
                    return (all, pages);
                }
            }
        }
    }
}

/// Asserts that `resp` is an ApiError with `status`, `code` and (when given) a detail containing
/// every one of `detail_parts`; returns the detail.
pub fn assert_api_error(resp: &Resp, status: u16, code: &str, detail_parts: &[&str]) -> String {
    assert_eq!(resp.status.as_u16(), status, "body: {}", String::from_utf8_lossy(&resp.body));
    let v = resp.json();
    let obj = v.as_object().unwrap_or_else(|| panic!("error body is not an object: {v}"));
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["detail", "error_message", "error_type", "status", "title", "type"], "{v}");
    assert_eq!(v["status"], status, "{v}");
    assert_eq!(v["error_type"], code, "{v}");
    assert_eq!(v["title"], code, "{v}");
    assert_eq!(v["detail"], v["error_message"], "{v}");
    let ty = v["type"].as_str().unwrap();
    assert!(ty.starts_with("http://") || ty.starts_with("https://"), "{v}");
    assert!(ty.ends_with(&format!("/api/v1/error/{code}")), "{v}");
    let detail = v["detail"].as_str().unwrap().to_owned();
    for part in detail_parts {
        assert!(detail.contains(part), "detail {detail:?} lacks {part:?}");
    }
    assert!(resp.header("content-type").is_some_and(|ct| ct.starts_with("application/json")), "{resp:?}");
    if status == 401 {
        assert_eq!(resp.header("www-authenticate"), Some("Bearer"));
    }
    detail
}
