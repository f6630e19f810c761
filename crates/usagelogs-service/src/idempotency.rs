//! Remembers answered ingestion batches by caller and `Idempotency-Key`, so a retried batch is a
//! no-op that answers like the first call.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
enum Slot {
    /// A call with this key is running.
    Pending,
    /// Answered: how many entries were accepted, and when.
    Done(usize, Instant),
}

/// Answered or running calls, by (caller, key).
type Slots = Mutex<HashMap<(String, String), Slot>>;

/// The memory of keys, bounded in size and age.
#[derive(Debug, Clone)]
pub(crate) struct IdempotencyCache {
    inner: Arc<(Slots, Condvar)>,
    ttl: Duration,
    capacity: usize,
}

/// What a caller must do with a key.
pub(crate) enum Claim {
    /// First call: run the batch, then `complete` or `abandon`.
    Run,
    /// Already answered with this count.
    Answered(usize),
}

impl IdempotencyCache {
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        Self { inner: Arc::new((Mutex::new(HashMap::new()), Condvar::new())), ttl, capacity }
    }

    /// Claims `key` for `caller`; waits while another call with the same key runs.
    pub(crate) fn claim(&self, caller: &str, key: &str) -> Claim {
        let (lock, cvar) = &*self.inner;
        let id = (caller.to_owned(), key.to_owned());
        let mut map = lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match map.get(&id) {
                Some(Slot::Pending) => map = cvar.wait(map).unwrap_or_else(|p| p.into_inner()),
                Some(Slot::Done(n, at)) if at.elapsed() < self.ttl => return Claim::Answered(*n),
                _ => {
                    if map.len() >= self.capacity {
                        let ttl = self.ttl;
                        map.retain(|_, s| {
                            matches!(s, Slot::Pending) || matches!(s, Slot::Done(_, at) if at.elapsed() < ttl)
                        });
                    }
                    map.insert(id, Slot::Pending);
                    return Claim::Run;
                }
            }
        }
    }

    /// Records the answer of a claimed key.
    pub(crate) fn complete(&self, caller: &str, key: &str, accepted: usize) {
        self.set(caller, key, Some(Slot::Done(accepted, Instant::now())));
    }

    /// Forgets a claimed key whose call failed, so a retry runs again.
    pub(crate) fn abandon(&self, caller: &str, key: &str) {
        self.set(caller, key, None);
    }

    fn set(&self, caller: &str, key: &str, slot: Option<Slot>) {
        let (lock, cvar) = &*self.inner;
        let mut map = lock.lock().unwrap_or_else(|p| p.into_inner());
        let id = (caller.to_owned(), key.to_owned());
        match slot {
            Some(s) => {
                map.insert(id, s);
            }
            None => {
                map.remove(&id);
            }
        }
        cvar.notify_all();
    }
}
