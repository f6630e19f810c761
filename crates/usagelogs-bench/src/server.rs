//! The real `usagelogs` server, started on port 0, and its memory as the kernel reports it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::Error;

/// A running `usagelogs serve`.
#[derive(Debug)]
pub struct Server {
    child: Child,
    pub base: String,
    pub pid: u32,
    log: PathBuf,
}

impl Server {
    /// Starts `BIN --database-url URL --jwt-secret SECRET serve --bind 127.0.0.1:0 --workers W
    /// --export-dir DIR` and waits for the line that names the bound address. Its log (at
    /// `warn`, so request logging costs nothing) goes to `work/server.log`.
    pub fn start(bin: &Path, database_url: &str, secret: &str, workers: usize, work: &Path) -> Result<Self, Error> {
        let log = work.join("server.log");
        let export_dir = work.join("exports");
        std::fs::create_dir_all(&export_dir)?;
        let mut child = Command::new(bin)
            .args(["--database-url", database_url, "--jwt-secret", secret, "serve", "--bind", "127.0.0.1:0"])
            .arg("--workers")
            .arg(workers.to_string())
            .arg("--export-dir")
            .arg(&export_dir)
            .env("USAGELOGS_LOG", "warn")
            .env_remove("USAGELOGS_DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let pid = child.id();
        let out = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    // Keep draining so the server never blocks on a full pipe.
                    continue;
                }
            }
        });
        let mut server = Self { child, base: String::new(), pid, log };
        loop {
            match rx.recv_timeout(Duration::from_secs(300)) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("usagelogs listening on ") {
                        server.base = rest.split_whitespace().next().unwrap_or_default().to_owned();
                        return Ok(server);
                    }
                }
                Err(_) => {
                    return Err(format!("the server did not start; its log:\n{}", server.log_tail()).into());
                }
            }
        }
    }

    /// The last lines of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The server's memory now.
    pub fn memory(&self) -> Memory {
        Memory::of(self.pid)
    }

    /// Resets the kernel's peak-RSS mark (VmHWM), so the next peak belongs to what follows.
    /// Returns false where the kernel does not allow it (then only sampling sees peaks).
    pub fn reset_peak(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5").is_ok()
    }

    /// SIGTERM, then a wait (SIGKILL after 30 s).
    pub fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
        for _ in 0..300 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Resident memory of a process, in KiB: now (VmRSS), its peak (VmHWM), and the anonymous part
/// of now (RssAnon: heap and stacks, without mapped files).
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss_kib: u64,
    pub peak_kib: u64,
    pub anon_kib: u64,
}

impl Memory {
    /// Read from `/proc/PID/status`; zeros when the process is gone.
    pub fn of(pid: u32) -> Self {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        Self { rss_kib: field("VmRSS:"), peak_kib: field("VmHWM:"), anon_kib: field("RssAnon:") }
    }
}

/// Samples a process's RSS every 20 ms and keeps the largest value seen since the last reset.
#[derive(Debug)]
pub struct RssSampler {
    max_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(pid: u32) -> Self {
        let max_kib = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (max_kib.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                m.fetch_max(Memory::of(pid).rss_kib, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Self { max_kib, stop, handle: Some(handle) }
    }

    /// The largest RSS seen since the last reset, and a new start.
    pub fn take(&self) -> u64 {
        self.max_kib.swap(0, Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A superuser token with every scope, minted by the binary itself.
pub fn mint_token(bin: &Path, secret: &str) -> Result<String, Error> {
    let out = Command::new(bin)
        .args(["--jwt-secret", secret, "token", "--sub", "bench"])
        .args(["--scope", "user:admin org:admin repo:admin logs:write", "--superuser", "full", "--ttl", "2h"])
        .env("USAGELOGS_LOG", "warn")
        .env_remove("USAGELOGS_DATABASE_URL")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!("`usagelogs token` failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let token = String::from_utf8(out.stdout)?.trim().to_owned();
    if token.is_empty() {
        return Err("`usagelogs token` printed nothing".into());
    }
    Ok(token)
}
