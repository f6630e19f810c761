//! Ingest rate, for the record (ignored by default; run in release):
//! `cargo test -p usagelogs-store --release --test it -- --ignored --nocapture throughput`

use crate::common::*;
use std::time::Instant;
use usagelogs_store::testing::test_database;
use usagelogs_store::{Backend, LogStore};

both_backends!(
    #[ignore = "measures the ingest rate; run in release"]
    throughput
);

fn throughput(backend: Backend) {
    let db = test_database(backend);
    let store = db.store();
    let entries = random_entries(&mut rng(5), 50_000, 20_000);
    let started = Instant::now();
    for chunk in entries.chunks(1000) {
        store.insert_batch(chunk).unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{backend}: {} entries in batches of 1000: {secs:.2} s, {:.0} entries/s",
        entries.len(),
        entries.len() as f64 / secs
    );
}
