//! A throwaway `moto_server` (an S3-compatible server from PyPI) on a free loopback port.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use usagelogs_service::export::storage::{S3Config, S3ExportStorage};

/// A running `moto_server`, killed when dropped.
pub struct Moto {
    child: Child,
    pub endpoint: String,
    http: reqwest::blocking::Client,
}

fn executable() -> PathBuf {
    // On PATH, or installed with pip into the shared test-tools environment.
    usagelogs_store::testing::tools::python_tool("moto_server", "moto[server]")
}

impl Moto {
    /// Starts the server and waits until it answers.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(executable())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto_server: {e}"));
        let endpoint = format!("http://127.0.0.1:{port}");
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let mut moto = Self { child, endpoint, http };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if moto.http.get(&moto.endpoint).send().is_ok_and(|r| r.status().is_success()) {
                return moto;
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "moto_server did not answer on {} within 60 s", moto.endpoint);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A plain HTTP client.
    pub fn http(&self) -> &reqwest::blocking::Client {
        &self.http
    }

    /// Creates `bucket` (moto accepts an unsigned `PUT /bucket`; object_store cannot create buckets).
    pub fn create_bucket(&self, bucket: &str) {
        let resp = self.http.put(format!("{}/{bucket}", self.endpoint)).send().unwrap();
        assert!(resp.status().is_success(), "creating bucket {bucket}: {}", resp.status());
    }

    /// The keys of multipart uploads in progress in `bucket` (unsigned, as moto allows).
    pub fn uploads_in_progress(&self, bucket: &str) -> String {
        self.http.get(format!("{}/{bucket}?uploads", self.endpoint)).send().unwrap().text().unwrap()
    }

    /// The settings of a storage on `bucket` of this server.
    pub fn config(&self, bucket: &str, prefix: Option<&str>) -> S3Config {
        S3Config {
            bucket: bucket.into(),
            prefix: prefix.map(Into::into),
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            access_key_id: Some("testing".into()),
            secret_access_key: Some("testing".into()),
            allow_http: true,
            part_size: 0,
        }
    }

    /// A storage on a new bucket of this server.
    pub fn storage(&self, bucket: &str, prefix: Option<&str>) -> S3ExportStorage {
        self.create_bucket(bucket);
        S3ExportStorage::new(&self.config(bucket, prefix)).unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
