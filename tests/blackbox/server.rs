//! Starts the real binary on a free loopback port and talks to it over HTTP.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_usagelogs");

/// Runs a `usagelogs` command in `dir` to completion.
pub fn cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("USAGELOGS_DATABASE_URL")
        .env("USAGELOGS_LOG", "warn")
        .output()
        .expect("the usagelogs binary runs")
}

/// A running `usagelogs serve`.
pub struct Server {
    child: Child,
    dir: Option<tempfile::TempDir>,
    path: std::path::PathBuf,
    base: String,
    stdout: Vec<String>,
    http: reqwest::blocking::Client,
}

impl Server {
    /// Starts `usagelogs [args] serve --bind 127.0.0.1:0` in a fresh folder and waits for the line
    /// that says where it listens. `--demo` goes to `serve`; every other flag is global and
    /// takes a value.
    pub fn start(args: &[&str]) -> Server {
        let (mut global, mut serve) = (Vec::new(), Vec::new());
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if *a == "--demo" {
                serve.push(*a);
            } else {
                global.push(*a);
                global.extend(it.next());
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        Self::launch(Some(dir), &path, &global, &serve)
    }

    /// Starts `usagelogs [global] serve --bind 127.0.0.1:0 [serve]` in `path` (kept by the caller
    /// unless `dir` hands it over).
    pub fn launch(dir: Option<tempfile::TempDir>, path: &Path, global: &[&str], serve: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(global)
            .arg("serve")
            .args(["--bind", "127.0.0.1:0", "--workers", "2"])
            .args(serve)
            .current_dir(path)
            .env_remove("USAGELOGS_DATABASE_URL")
            .env("USAGELOGS_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the usagelogs binary starts");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stdout = Vec::new();
        let base = loop {
            // Blocks on the server's own output; the bound only guards against a hung start.
            let line = rx.recv_timeout(Duration::from_secs(120)).expect("the server prints where it listens");
            stdout.push(line.clone());
            if let Some(rest) = line.strip_prefix("usagelogs listening on ") {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        Server { child, dir, path: path.to_owned(), base, stdout, http }
    }

    /// The folder the server runs in.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.base.clone()
    }

    /// The first line of the server's start-up output starting with `prefix`.
    pub fn stdout_line_starting(&self, prefix: &str) -> String {
        self.stdout
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting with {prefix:?} in {:#?}", self.stdout))
            .clone()
    }

    fn json(resp: reqwest::blocking::Response) -> (u16, Value) {
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// GET with a bearer token.
    pub fn get(&self, path: &str, token: &str) -> (u16, Value) {
        Self::json(self.http.get(format!("{}{path}", self.base)).bearer_auth(token).send().unwrap())
    }

    /// GET without a token.
    pub fn get_raw(&self, path: &str) -> (u16, Value) {
        Self::json(self.http.get(format!("{}{path}", self.base)).send().unwrap())
    }

    /// POST a JSON body with a bearer token.
    pub fn post_json(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        Self::json(self.http.post(format!("{}{path}", self.base)).bearer_auth(token).json(body).send().unwrap())
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// GET returning the raw status and bytes.
    pub fn get_bytes(&self, url: &str) -> (u16, Vec<u8>) {
        let resp = self.http.get(url).send().unwrap();
        (resp.status().as_u16(), resp.bytes().unwrap().to_vec())
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        drop(self.dir.take());
    }
}

/// Polls `check` until it yields a value, up to `limit`: for work another process does.
pub fn eventually<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + limit;
    let mut wait = Duration::from_millis(5);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "gave up after {limit:?}");
        std::thread::sleep(wait);
        wait = (wait * 2).min(Duration::from_millis(200));
    }
}
