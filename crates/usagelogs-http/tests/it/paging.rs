//! Paging over HTTP (contract §1.4): every entry exactly once, newest first, with heavy
//! timestamp ties; `limit`; page tokens bound to what they were issued for.

use crate::support::{Api, AppService, EntryBuilder, TestApp, assert_api_error, enc, entry, serve, tokens};
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use time::Duration;
use usagelogs_core::SuperuserLevel::Full;
use usagelogs_service::{PageTokenKey, ServiceConfig};
use usagelogs_store::Backend;

const N: usize = 300;
const REPOS: [Option<&str>; 4] = [Some("web"), Some("api"), Some("team/db"), None];
const PERFORMERS: [Option<&str>; 4] = [Some("alice"), Some("bob"), Some("acme+deployer"), None];
const WINDOW: &str = "starttime=03/01/2024&endtime=03/10/2024";

/// The parts of fixture entry `i`.
struct Spec {
    seq: usize,
    /// Ten distinct instants only: thirty entries share each timestamp.
    instant: usize,
    repo: Option<&'static str>,
    performer: Option<&'static str>,
    kind: &'static str,
}

fn spec(i: usize) -> Spec {
    Spec {
        seq: i,
        // Interleaved, so the insertion order (ids) is not the time order.
        instant: (i * 7) % 10,
        repo: REPOS[i % 4],
        performer: PERFORMERS[(i / 3) % 4],
        kind: if i.is_multiple_of(25) {
            "service_key_rotate"
        } else if i.is_multiple_of(2) {
            "push_repo"
        } else {
            "pull_repo"
        },
    }
}

fn fixture() -> Vec<EntryBuilder> {
    let mut entries: Vec<EntryBuilder> = (0..N)
        .map(|i| {
            let s = spec(i);
            // Instants two and a half hours apart, on 2024-03-04 and 2024-03-05.
            let t = time::macros::datetime!(2024-03-04 06:00 UTC) + Duration::minutes(150 * s.instant as i64);
            let mut e = entry(s.kind, "acme").meta(json!({"seq": s.seq})).at_time(t);
            if let Some(r) = s.repo {
                e = e.repo(r);
            }
            if let Some(p) = s.performer {
                e = e.by(p);
            }
            e
        })
        .collect();
    // A second namespace, with the same repository names.
    entries.extend(
        (0..30)
            .map(|i| entry("push_repo", "beta").repo("web").meta(json!({"seq": 1000 + i})).at("2024-03-05T10:00:00Z")),
    );
    entries
}

/// The expected seqs, newest first: by instant descending, then by id (= seq) descending.
fn expected(keep: impl Fn(&Spec) -> bool) -> Vec<u64> {
    let mut specs: Vec<Spec> = (0..N).map(spec).filter(|s| keep(s)).collect();
    specs.sort_by_key(|s| std::cmp::Reverse((s.instant, s.seq)));
    specs.into_iter().map(|s| s.seq as u64).collect()
}

fn seqs(logs: &[Value]) -> Vec<u64> {
    logs.iter().map(|l| l["metadata"]["seq"].as_u64().unwrap()).collect()
}

fn is_service_key(s: &Spec) -> bool {
    s.kind.starts_with("service_key_")
}

/// The filters the tests page through: a path (with the window) and which fixture entries it
/// selects.
type Keep = Box<dyn Fn(&Spec) -> bool>;

fn filters() -> Vec<(String, Keep)> {
    vec![
        (format!("/api/v1/organization/acme/logs?{WINDOW}"), Box::new(|_| true)),
        (format!("/api/v1/user/logs?{WINDOW}"), Box::new(|s| !is_service_key(s))),
        (format!("/api/v1/repository/acme/web/logs?{WINDOW}"), Box::new(|s| s.repo == Some("web"))),
        (
            format!("/api/v1/repository/acme/team/db/logs?{WINDOW}&performer=alice"),
            Box::new(|s| s.repo == Some("team/db")),
        ),
        (
            format!("/api/v1/organization/acme/logs?{WINDOW}&performer=alice&kind=push_repo"),
            Box::new(|s| s.performer == Some("alice") && s.kind == "push_repo"),
        ),
        (format!("/api/v1/user/logs?{WINDOW}&kind=pull_repo,service_key_rotate"), Box::new(|s| s.kind == "pull_repo")),
        (
            format!("/api/v1/organization/acme/logs?{WINDOW}&performer=acme%2Bdeployer"),
            Box::new(|s| s.performer == Some("acme+deployer")),
        ),
    ]
}

async fn app(backend: Backend) -> Api<impl AppService> {
    TestApp::on(backend).with_entries(fixture()).start().await
}

async fn every_entry_exactly_once_newest_first(backend: Backend) {
    let api = app(backend).await;
    let token = tokens::user("acme");
    let org = format!("/api/v1/organization/acme/logs?{WINDOW}");
    let all = expected(|_| true);
    assert_eq!(all.len(), N);
    // Default page size 20: 300 entries are exactly 15 pages, no 16th empty one.
    let (logs, pages) = api.list_all(&org, &token, None).await;
    assert_eq!(seqs(&logs), all);
    assert_eq!(pages, 15);
    for (limit, pages_expected) in [(100, 3), (7, 43), (1, 300), (99, 4)] {
        let (logs, pages) = api.list_all(&org, &token, Some(limit)).await;
        assert_eq!(seqs(&logs), all, "limit {limit}");
        assert_eq!(pages, pages_expected, "limit {limit}");
    }
    for (path, keep) in filters() {
        for limit in [None, Some(13)] {
            let (logs, _) = api.list_all(&path, &token, limit).await;
            let want = expected(&keep);
            assert!(!want.is_empty());
            assert_eq!(seqs(&logs), want, "{path} limit {limit:?}");
        }
    }
    // The other namespace is untouched by all of this.
    let (beta, pages) =
        api.list_all(&format!("/api/v1/repository/beta/web/logs?{WINDOW}"), &tokens::user("beta"), None).await;
    assert_eq!((beta.len(), pages), (30, 2));
}

/// A token issued with one page size keeps working with another: `limit` is not a filter.
async fn page_size_may_change_between_pages(backend: Backend) {
    let api = app(backend).await;
    let token = tokens::user("acme");
    let org = format!("/api/v1/organization/acme/logs?{WINDOW}");
    let first = api.get_ok(&format!("{org}&limit=5"), &token).await;
    let next = first["next_page"].as_str().unwrap();
    let second = api.get_ok(&format!("{org}&limit=10&next_page={}", enc(next)), &token).await;
    let mut got = seqs(first["logs"].as_array().unwrap());
    got.extend(seqs(second["logs"].as_array().unwrap()));
    assert_eq!(got, expected(|_| true)[..15]);
}

on_both_backends!(every_entry_exactly_once_newest_first, page_size_may_change_between_pages);

#[actix_web::test]
async fn limit_is_1_to_100() {
    let api = app(Backend::Sqlite).await;
    let token = tokens::user("acme");
    let org = format!("/api/v1/organization/acme/logs?{WINDOW}");
    for bad in ["0", "101", "abc", "-1", "1.5", "1e2", "%20"] {
        let r = api.get(&format!("{org}&limit={bad}"), Some(&token)).await;
        assert_api_error(&r, 400, "invalid_request", &["limit"]);
    }
    for (limit, n) in [("1", 1), ("100", 100), ("", 20)] {
        let body = api.get_ok(&format!("{org}&limit={limit}"), &token).await;
        assert_eq!(body["logs"].as_array().unwrap().len(), n, "limit={limit}");
        assert!(body.get("next_page").is_some());
    }
}

async fn page_tokens_are_bound_and_tamper_proof(backend: Backend) {
    let api = app(backend).await;
    // Owns acme (user endpoints), and may read beta.
    let token = tokens::superuser("acme", Full);
    let org = format!("/api/v1/organization/acme/logs?{WINDOW}");
    let repo = format!("/api/v1/repository/acme/web/logs?{WINDOW}");
    let user = format!("/api/v1/user/logs?{WINDOW}");
    let next_of = |body: &Value| body["next_page"].as_str().unwrap().to_owned();

    let org_token = next_of(&api.get_ok(&format!("{org}&limit=5"), &token).await);
    let repo_token = next_of(&api.get_ok(&format!("{repo}&limit=5"), &token).await);
    let user_token = next_of(&api.get_ok(&format!("{user}&limit=5"), &token).await);
    let alice_token = next_of(&api.get_ok(&format!("{org}&limit=5&performer=alice"), &token).await);
    let kind_token = next_of(&api.get_ok(&format!("{org}&limit=5&kind=push_repo"), &token).await);

    // Sanity: each works where it was issued.
    for (path, t) in [
        (org.clone(), &org_token),
        (repo.clone(), &repo_token),
        (user.clone(), &user_token),
        (format!("{org}&performer=alice"), &alice_token),
        (format!("{org}&kind=push_repo"), &kind_token),
    ] {
        api.get_ok(&format!("{path}&limit=5&next_page={}", enc(t)), &token).await;
    }

    let foreign = [
        ("another namespace", format!("/api/v1/organization/beta/logs?{WINDOW}"), &org_token),
        ("another repository", format!("/api/v1/repository/acme/api/logs?{WINDOW}"), &repo_token),
        ("another namespace's repository", format!("/api/v1/repository/beta/web/logs?{WINDOW}"), &repo_token),
        ("org token on repo", repo.clone(), &org_token),
        ("org token on user", user.clone(), &org_token),
        ("repo token on org", org.clone(), &repo_token),
        ("user token on org", org.clone(), &user_token),
        ("user token on repo", repo.clone(), &user_token),
        ("another performer", format!("{org}&performer=bob"), &alice_token),
        ("performer dropped", org.clone(), &alice_token),
        ("performer added", format!("{org}&performer=alice"), &org_token),
        ("another kind", format!("{org}&kind=pull_repo"), &kind_token),
        ("kind dropped", org.clone(), &kind_token),
        ("kind added", format!("{org}&kind=push_repo"), &org_token),
        (
            "another start",
            "/api/v1/organization/acme/logs?starttime=03/02/2024&endtime=03/10/2024".to_owned(),
            &org_token,
        ),
        (
            "another end",
            "/api/v1/organization/acme/logs?starttime=03/01/2024&endtime=03/09/2024".to_owned(),
            &org_token,
        ),
    ];
    for (what, path, t) in foreign {
        let r = api.get(&format!("{path}&limit=5&next_page={}", enc(t)), Some(&token)).await;
        let detail = assert_api_error(&r, 400, "invalid_request", &[]);
        assert_eq!(detail, "Invalid page token", "{what}");
    }

    // Tampering, truncation, garbage.
    let mut tampered: Vec<String> = [0, org_token.len() / 2, org_token.len() - 1]
        .into_iter()
        .map(|i| {
            let mut chars: Vec<char> = org_token.chars().collect();
            chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
            chars.into_iter().collect()
        })
        .collect();
    tampered.push(org_token[..org_token.len() - 4].to_owned());
    tampered.push(format!("{org_token}AAAA"));
    tampered.push("garbage".to_owned());
    tampered.push("gAAAAABl-a-quay-fernet-token".to_owned());
    tampered.push("x".repeat(2000));
    for t in tampered {
        let r = api.get(&format!("{org}&limit=5&next_page={}", enc(&t)), Some(&token)).await;
        assert_api_error(&r, 400, "invalid_request", &["Invalid page token"]);
    }
}

on_both_backends!(page_tokens_are_bound_and_tamper_proof);

#[actix_web::test]
async fn tokens_of_another_server_key_or_expired_are_refused() {
    let token = tokens::user("acme");
    let org = format!("/api/v1/organization/acme/logs?{WINDOW}&limit=5");
    let ours = app(Backend::Sqlite).await;
    let theirs = TestApp::new()
        .with_entries(fixture())
        .with_config(|c| c.page_token_key = PageTokenKey::new(b"another-server-key".to_vec()))
        .start()
        .await;
    let foreign = theirs.get_ok(&org, &token).await["next_page"].as_str().unwrap().to_owned();
    let r = ours.get(&format!("{org}&next_page={}", enc(&foreign)), Some(&token)).await;
    assert_api_error(&r, 400, "invalid_request", &["Invalid page token"]);

    let expiring =
        TestApp::new().with_entries(fixture()).with_config(|c| c.page_token_ttl = Duration::seconds(-60)).start().await;
    let stale = expiring.get_ok(&org, &token).await["next_page"].as_str().unwrap().to_owned();
    let r = expiring.get(&format!("{org}&next_page={}", enc(&stale)), Some(&token)).await;
    assert_api_error(&r, 400, "invalid_request", &["Invalid page token"]);

    // The default lifetime is at least the two days the contract promises.
    assert!(ServiceConfig::new(PageTokenKey::new(b"k".to_vec())).page_token_ttl >= Duration::days(2));
}

/// Property: whatever the page size and filter, paging yields the filter's entries exactly once,
/// newest first, with full pages and no empty last page.
#[test]
fn paging_property_any_limit_any_filter() {
    let (_fixture, state) = TestApp::new().with_entries(fixture()).build_state();
    let filters = filters();
    let mut runner = TestRunner::new(Config { cases: 32, failure_persistence: None, ..Config::default() });
    runner
        .run(&(1usize..=60, 0..filters.len()), |(limit, which)| {
            let (path, keep) = &filters[which];
            actix_web::rt::System::new().block_on(async {
                let api = serve(state.clone()).await;
                let (logs, pages) = api.list_all(path, &tokens::user("acme"), Some(limit)).await;
                let want = expected(keep);
                assert_eq!(seqs(&logs), want, "{path} limit {limit}");
                assert_eq!(pages, want.len().div_ceil(limit).max(1), "{path} limit {limit}");
            });
            Ok(())
        })
        .unwrap();
}
