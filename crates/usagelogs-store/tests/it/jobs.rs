//! Export jobs: round trips, claims under leases, retries, expiry, exclusive claims.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use usagelogs_core::TimeWindow;
use usagelogs_store::testing::test_database;
use usagelogs_store::{
    Backend, DieselStore, ExportJob, ExportJobStore, ExportOutcome, ExportStatus, NewExportJob, StoreError,
};

both_backends!(
    create_and_get_round_trip,
    claims_oldest_first_under_leases,
    failed_attempts_requeue_until_max,
    abandoned_jobs_fail,
    success_then_expiry,
    claim_is_exclusive,
);

const T0: OffsetDateTime = datetime!(2024-03-05 13:07:09.123456 UTC);
const LEASE: StdDuration = StdDuration::from_secs(60);

fn new_job(id: &str, created_at: OffsetDateTime) -> NewExportJob {
    NewExportJob {
        id: id.into(),
        level: "org".into(),
        namespace: "acme".into(),
        repository: None,
        window: TimeWindow::new(datetime!(2024-02-01 00:00 UTC), datetime!(2024-03-01 00:00 UTC)).unwrap(),
        format: "json".into(),
        callback_url: None,
        callback_email: None,
        requested_by: "alice".into(),
        link_base: "https://logs.example.com".into(),
        created_at,
    }
}

fn get(store: &DieselStore, id: &str) -> ExportJob {
    store.get_export(id).unwrap().unwrap_or_else(|| panic!("job {id} not found"))
}

fn failed(error: &str) -> ExportOutcome {
    ExportOutcome::Failed { error: error.into() }
}

fn create_and_get_round_trip(backend: Backend) {
    let db = test_database(backend);
    let store = db.store();
    assert_eq!(store.get_export("0b5e8c1e-0000-4000-8000-000000000000").unwrap(), None);

    let full = NewExportJob {
        id: "0b5e8c1e-6f3a-4c55-9a59-2f7f5b0f9a11".into(),
        level: "repo".into(),
        namespace: "acme".into(),
        repository: Some("team/web".into()),
        window: TimeWindow::new(datetime!(2023-12-31 23:59:59.999999 UTC), datetime!(2024-03-01 00:00:00.000001 UTC))
            .unwrap(),
        format: "ndjson".into(),
        callback_url: Some("https://hooks.example.com/x?y=1".into()),
        callback_email: Some("ops@example.com".into()),
        requested_by: "acme+deployer".into(),
        link_base: "https://logs.example.com:8443".into(),
        created_at: T0,
    };
    store.create_export(&full).unwrap();
    let minimal = new_job("job-minimal", T0 + Duration::microseconds(1));
    store.create_export(&minimal).unwrap();

    for new in [&full, &minimal] {
        let job = get(&store, &new.id);
        let expected = ExportJob {
            id: new.id.clone(),
            level: new.level.clone(),
            namespace: new.namespace.clone(),
            repository: new.repository.clone(),
            window: new.window,
            format: new.format.clone(),
            callback_url: new.callback_url.clone(),
            callback_email: new.callback_email.clone(),
            requested_by: new.requested_by.clone(),
            link_base: new.link_base.clone(),
            status: ExportStatus::Queued,
            attempts: 0,
            lease_owner: None,
            lease_until: None,
            file_id: None,
            entries: None,
            error: None,
            created_at: new.created_at,
            finished_at: None,
            expires_at: None,
        };
        assert_eq!(job, expected);
    }

    // Ids are unique.
    let err = store.create_export(&new_job(&full.id, T0)).unwrap_err();
    assert!(matches!(err, StoreError::Query(_)), "{err:?}");
}

fn claims_oldest_first_under_leases(backend: Backend) {
    let db = test_database(backend);
    let store = db.store();
    // Created out of order; b1 and b2 share a creation time (the id breaks the tie).
    store.create_export(&new_job("c", T0 + Duration::seconds(2))).unwrap();
    store.create_export(&new_job("b2", T0 + Duration::seconds(1))).unwrap();
    store.create_export(&new_job("a", T0)).unwrap();
    store.create_export(&new_job("b1", T0 + Duration::seconds(1))).unwrap();

    let now = T0 + Duration::minutes(5);
    let claim = |owner: &str, now: OffsetDateTime| store.claim_export(owner, LEASE, 3, now).unwrap();
    let a = claim("w1", now).unwrap();
    assert_eq!(a.id, "a");
    assert_eq!(a.status, ExportStatus::Running);
    assert_eq!(a.attempts, 1);
    assert_eq!(a.lease_owner.as_deref(), Some("w1"));
    assert_eq!(a.lease_until, Some(now + Duration::seconds(60)));
    assert_eq!(get(&store, "a"), a);
    assert_eq!(claim("w2", now).unwrap().id, "b1");
    assert_eq!(claim("w3", now).unwrap().id, "b2");
    assert_eq!(claim("w4", now).unwrap().id, "c");
    // Every job is running under a live lease.
    assert_eq!(claim("w5", now), None);
    assert_eq!(claim("w5", now + Duration::seconds(60)), None, "a lease that ends now has not lapsed");

    // b1's owner renews before the others lapse.
    assert!(store.renew_export_lease("b1", "w2", now + Duration::minutes(10)).unwrap());
    // Later, every other lease has lapsed: the oldest lapsed job goes to a new owner, counting
    // a second attempt.
    let later = now + Duration::seconds(61);
    let again = claim("w6", later).unwrap();
    assert_eq!((again.id.as_str(), again.attempts, again.lease_owner.as_deref()), ("a", 2, Some("w6")));
    assert_eq!(again.lease_until, Some(later + Duration::seconds(60)));
    // The old owner has lost it.
    assert!(!store.renew_export_lease("a", "w1", later + Duration::minutes(1)).unwrap());
    assert!(!store.finish_export("a", "w1", &failed("late"), 3, later).unwrap());
    let success = ExportOutcome::Success { file_id: "f00d".into(), entries: 1, expires_at: later + Duration::DAY };
    assert!(!store.finish_export("a", "w1", &success, 3, later).unwrap());
    let a = get(&store, "a");
    assert_eq!((a.status, a.lease_owner.as_deref(), a.file_id.as_deref()), (ExportStatus::Running, Some("w6"), None));

    // A lapsed lease that nobody took may still be renewed by its owner.
    assert!(store.renew_export_lease("b2", "w3", later + Duration::minutes(2)).unwrap());
    assert_eq!(get(&store, "b2").lease_until, Some(later + Duration::minutes(2)));
    // b1 (renewed) and b2 are live: c is next, then nothing.
    assert_eq!(claim("w7", later).unwrap().id, "c");
    assert_eq!(claim("w8", later), None);
    // Nobody but the holder renews.
    assert!(!store.renew_export_lease("b1", "w3", later).unwrap());
    assert!(!store.renew_export_lease("missing", "w3", later).unwrap());
}

fn failed_attempts_requeue_until_max(backend: Backend) {
    let db = test_database(backend);
    let store = db.store();
    store.create_export(&new_job("j", T0)).unwrap();
    let max = 3;
    for attempt in 1..=max {
        let now = T0 + Duration::minutes(i64::from(attempt));
        let job = store.claim_export("w", LEASE, max, now).unwrap().unwrap();
        assert_eq!(job.attempts, attempt);
        assert!(store.finish_export("j", "w", &failed(&format!("boom {attempt}")), max, now).unwrap());
        // Finishing twice is refused: the attempt is over.
        assert!(!store.finish_export("j", "w", &failed("again"), max, now).unwrap());
        let job = get(&store, "j");
        assert_eq!(job.error.as_deref(), Some(format!("boom {attempt}").as_str()));
        assert_eq!((job.lease_owner, job.lease_until), (None, None));
        if attempt < max {
            assert_eq!(job.status, ExportStatus::Queued, "attempt {attempt}");
            assert_eq!(job.finished_at, None);
        } else {
            assert_eq!(job.status, ExportStatus::Failed);
            assert_eq!(job.finished_at, Some(now));
        }
    }
    assert_eq!(store.claim_export("w", LEASE, max, T0 + Duration::hours(1)).unwrap(), None);
    assert_eq!(store.fail_abandoned_exports(max, T0 + Duration::hours(1)).unwrap(), Vec::new());
}

fn abandoned_jobs_fail(backend: Backend) {
    let db = test_database(backend);
    let store = db.store();
    store.create_export(&new_job("spent", T0)).unwrap();
    store.create_export(&new_job("retry", T0 + Duration::seconds(1))).unwrap();
    let max = 2;
    let t1 = T0 + Duration::minutes(1);
    assert_eq!(store.claim_export("w1", LEASE, max, t1).unwrap().unwrap().id, "spent");
    let t2 = t1 + Duration::minutes(2);
    // spent's first lease lapsed: a second (last) attempt.
    let spent = store.claim_export("w2", LEASE, max, t2).unwrap().unwrap();
    assert_eq!((spent.id.as_str(), spent.attempts), ("spent", 2));
    assert_eq!(store.claim_export("w3", LEASE, max, t2).unwrap().unwrap().id, "retry");

    // Live leases: nothing is abandoned.
    assert_eq!(store.fail_abandoned_exports(max, t2 + Duration::seconds(30)).unwrap(), Vec::new());
    // Both leases lapse; only the job without attempts left is failed. The other stays
    // claimable.
    let t3 = t2 + Duration::minutes(10);
    let abandoned = store.fail_abandoned_exports(max, t3).unwrap();
    assert_eq!(abandoned.len(), 1, "{abandoned:?}");
    let job = &abandoned[0];
    assert_eq!((job.id.as_str(), job.status, job.attempts), ("spent", ExportStatus::Failed, 2));
    assert!(job.error.as_deref().is_some_and(|e| e.contains("abandoned")), "{:?}", job.error);
    assert_eq!(job.finished_at, Some(t3));
    assert_eq!((job.lease_owner.as_deref(), job.lease_until), (None, None));
    assert_eq!(&get(&store, "spent"), job);
    assert!(!store.finish_export("spent", "w2", &failed("too late"), max, t3).unwrap());
    assert!(!store.renew_export_lease("spent", "w2", t3 + Duration::minutes(1)).unwrap());
    assert_eq!(get(&store, "retry").status, ExportStatus::Running);
    assert_eq!(store.fail_abandoned_exports(max, t3).unwrap(), Vec::new(), "failed only once");
    let retry = store.claim_export("w4", LEASE, max, t3).unwrap().unwrap();
    assert_eq!((retry.id.as_str(), retry.attempts), ("retry", 2));
}

fn success_then_expiry(backend: Backend) {
    let db = test_database(backend);
    let store = db.store();
    store.create_export(&new_job("j", T0)).unwrap();
    store.create_export(&new_job("other", T0 + Duration::seconds(1))).unwrap();
    let max = 3;
    // A failed attempt first: its error must not outlive the success.
    store.claim_export("w1", LEASE, max, T0).unwrap().unwrap();
    assert!(store.finish_export("j", "w1", &failed("disk full"), max, T0).unwrap());
    let done_at = T0 + Duration::minutes(1);
    assert_eq!(store.claim_export("w2", LEASE, max, done_at).unwrap().unwrap().id, "j");
    let expires_at = done_at + Duration::days(7);
    let outcome = ExportOutcome::Success { file_id: "9f86d081884c7d65".into(), entries: 1234, expires_at };
    assert!(store.finish_export("j", "w2", &outcome, max, done_at).unwrap());
    assert!(!store.finish_export("j", "w2", &outcome, max, done_at).unwrap(), "already finished");

    let job = get(&store, "j");
    assert_eq!(job.status, ExportStatus::Success);
    assert_eq!(job.file_id.as_deref(), Some("9f86d081884c7d65"));
    assert_eq!(job.entries, Some(1234));
    assert_eq!(job.expires_at, Some(expires_at));
    assert_eq!(job.finished_at, Some(done_at));
    assert_eq!(job.error, None);
    assert_eq!((job.lease_owner.as_deref(), job.lease_until, job.attempts), (None, None, 2));
    assert_eq!(store.export_by_file("9f86d081884c7d65").unwrap().as_ref(), Some(&job));
    assert_eq!(store.export_by_file("0000").unwrap(), None);
    // Succeeded jobs are not claimed again.
    assert_eq!(store.claim_export("w3", LEASE, max, expires_at).unwrap().unwrap().id, "other");

    // File ids are unique.
    let clash = ExportOutcome::Success { file_id: "9f86d081884c7d65".into(), entries: 1, expires_at };
    assert!(store.finish_export("other", "w3", &clash, max, done_at).is_err());

    assert_eq!(store.expired_exports(expires_at - Duration::microseconds(1)).unwrap(), Vec::new());
    assert_eq!(store.expired_exports(expires_at).unwrap(), vec![job.clone()]);
    assert_eq!(store.expired_exports(expires_at + Duration::days(1)).unwrap(), vec![job.clone()]);
    store.mark_export_expired("j").unwrap();
    assert_eq!(store.expired_exports(expires_at + Duration::days(1)).unwrap(), Vec::new());
    // The old link still finds its job, which says it expired.
    let expired = store.export_by_file("9f86d081884c7d65").unwrap().unwrap();
    assert_eq!(expired, ExportJob { status: ExportStatus::Expired, ..job });
    // Only a successful job expires.
    store.mark_export_expired("other").unwrap();
    assert_eq!(get(&store, "other").status, ExportStatus::Running);
}

const THREADS: usize = 8;
const JOBS: usize = 50;

fn claim_is_exclusive(backend: Backend) {
    let db = test_database(backend);
    let store = db.store();
    for i in 0..JOBS {
        // Some creation times tie.
        store.create_export(&new_job(&format!("job-{i:02}"), T0 + Duration::seconds((i / 3) as i64))).unwrap();
    }
    // On PostgreSQL, half the workers use a second store (another pool, as another replica
    // would); SQLite's writers share one file either way.
    let stores = match backend {
        Backend::Postgres => vec![store.clone(), db.store()],
        Backend::Sqlite => vec![store.clone()],
    };
    let now = T0 + Duration::minutes(1);
    let claimed: Vec<(String, String)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = stores[t % stores.len()].clone();
                s.spawn(move || {
                    let owner = format!("worker-{t}");
                    let mut mine = Vec::new();
                    while let Some(job) = store.claim_export(&owner, StdDuration::from_secs(3600), 3, now).unwrap() {
                        assert_eq!(job.lease_owner.as_deref(), Some(owner.as_str()));
                        assert_eq!(job.attempts, 1, "{} claimed twice", job.id);
                        mine.push((job.id, owner.clone()));
                    }
                    mine
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    let mut by_id: BTreeMap<String, String> = BTreeMap::new();
    for (id, owner) in &claimed {
        assert!(by_id.insert(id.clone(), owner.clone()).is_none(), "{id} claimed twice");
    }
    assert_eq!(claimed.len(), JOBS);
    assert_eq!(by_id.keys().cloned().collect::<Vec<_>>(), (0..JOBS).map(|i| format!("job-{i:02}")).collect::<Vec<_>>());
    for (id, owner) in &by_id {
        let job = get(&store, id);
        assert_eq!((job.status, job.attempts, job.lease_owner.as_ref()), (ExportStatus::Running, 1, Some(owner)));
    }
}
