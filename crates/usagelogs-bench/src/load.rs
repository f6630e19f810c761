//! Concurrent HTTP load: ingestion batches and timed requests, with latency percentiles.

use reqwest::blocking::{Client, RequestBuilder};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::Error;

/// Latency percentiles of a set of timings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    pub p50: Duration,
    pub p99: Duration,
}

impl Latency {
    /// Nearest-rank percentiles of `samples`.
    pub fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let at = |q: f64| {
            if samples.is_empty() {
                return Duration::ZERO;
            }
            let rank = (q * samples.len() as f64).ceil() as usize;
            samples[rank.clamp(1, samples.len()) - 1]
        };
        Self { p50: at(0.50), p99: at(0.99) }
    }
}

/// An HTTP client for one thread: keep-alive, no proxy, generous timeout.
pub fn client() -> Result<Client, Error> {
    Ok(Client::builder().no_proxy().timeout(Duration::from_secs(600)).pool_max_idle_per_host(1).build()?)
}

/// Sends `request` and reads the whole body; an error unless the status is `expect`.
pub fn send(request: RequestBuilder, expect: u16) -> Result<Vec<u8>, Error> {
    let resp = request.send()?;
    let status = resp.status().as_u16();
    let body = resp.bytes()?.to_vec();
    if status != expect {
        return Err(format!("HTTP {status} (expected {expect}): {}", String::from_utf8_lossy(&body)).into());
    }
    Ok(body)
}

/// Runs `requests` requests built by `build` from `clients` threads at once (each with its own
/// connection), after a short warm-up, and returns their latencies (request sent to body read).
pub fn measure<F>(clients: usize, requests: usize, build: F) -> Result<Latency, Error>
where
    F: Fn(&Client) -> RequestBuilder + Sync,
{
    let clients = clients.max(1);
    let next = AtomicUsize::new(0);
    let samples = Mutex::new(Vec::with_capacity(requests));
    let failure: Mutex<Option<String>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..clients {
            s.spawn(|| {
                let result = (|| -> Result<(), Error> {
                    let http = client()?;
                    for _ in 0..2 {
                        send(build(&http), 200)?;
                    }
                    let mut mine = Vec::new();
                    while next.fetch_add(1, Ordering::Relaxed) < requests {
                        let started = Instant::now();
                        send(build(&http), 200)?;
                        mine.push(started.elapsed());
                    }
                    samples.lock().unwrap().extend(mine);
                    Ok(())
                })();
                if let Err(e) = result {
                    failure.lock().unwrap().get_or_insert(e.to_string());
                    next.store(usize::MAX / 2, Ordering::Relaxed);
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap() {
        return Err(e.into());
    }
    Ok(Latency::of(samples.into_inner().unwrap()))
}

/// The outcome of an ingestion run.
#[derive(Debug, Clone, Copy)]
pub struct Ingested {
    pub entries: u64,
    pub elapsed: Duration,
    pub batch_latency: Latency,
}

impl Ingested {
    pub fn rate(&self) -> f64 {
        self.entries as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One ingestion request body: its entry count and its NDJSON bytes.
pub type Batch = (usize, Vec<u8>);

/// POSTs every body (NDJSON batches of `sizes[i]` entries) to `url` from `senders` threads; each
/// body is sent once and dropped after its 201.
pub fn ingest(
    url: &str,
    token: &str,
    bodies: Vec<Batch>,
    senders: usize,
    progress: impl Fn(u64) + Sync,
) -> Result<Ingested, Error> {
    let total: u64 = bodies.iter().map(|(n, _)| *n as u64).sum();
    let queue: Vec<Mutex<Option<Batch>>> = bodies.into_iter().map(|b| Mutex::new(Some(b))).collect();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let samples = Mutex::new(Vec::new());
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..senders.max(1) {
            s.spawn(|| {
                let result = (|| -> Result<(), Error> {
                    let http = client()?;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(slot) = queue.get(i) else { return Ok(()) };
                        let Some((n, body)) = slot.lock().unwrap().take() else { return Ok(()) };
                        let t = Instant::now();
                        send(
                            http.post(url).bearer_auth(token).header("content-type", "application/x-ndjson").body(body),
                            201,
                        )?;
                        samples.lock().unwrap().push(t.elapsed());
                        let so_far = done.fetch_add(n, Ordering::Relaxed) + n;
                        progress(so_far as u64);
                    }
                })();
                if let Err(e) = result {
                    failure.lock().unwrap().get_or_insert(e.to_string());
                    next.store(usize::MAX / 2, Ordering::Relaxed);
                }
            });
        }
    });
    let elapsed = started.elapsed();
    if let Some(e) = failure.into_inner().unwrap() {
        return Err(format!("ingestion failed: {e}").into());
    }
    Ok(Ingested { entries: total, elapsed, batch_latency: Latency::of(samples.into_inner().unwrap()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let ms = |n| Duration::from_millis(n);
        let l = Latency::of((1..=100).rev().map(ms).collect());
        assert_eq!((l.p50, l.p99), (ms(50), ms(99)));
        let one = Latency::of(vec![ms(7)]);
        assert_eq!((one.p50, one.p99), (ms(7), ms(7)));
        assert_eq!(Latency::of(Vec::new()).p99, Duration::ZERO);
    }
}
