//! Exports end to end: e-mail through a real SMTP server, and a server killed mid-export.

use crate::server::{Server, cli, eventually};
use crate::{SECRET, token};
use serde_json::{Value, json};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use usagelogs_store::Backend;
use usagelogs_store::testing::test_database;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Debian's aiosmtpd on loopback, storing what it receives in a Maildir.
struct SmtpSink {
    child: Child,
    port: u16,
    maildir: tempfile::TempDir,
}

impl SmtpSink {
    fn start() -> SmtpSink {
        let maildir = tempfile::tempdir().unwrap();
        let port = free_port();
        let python = usagelogs_store::testing::tools::python_with("aiosmtpd", "aiosmtpd");
        let child = Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("mail"))
            .stdout(Stdio::null())
            .spawn()
            .expect("the SMTP sink starts");
        eventually(Duration::from_secs(30), || TcpStream::connect(("127.0.0.1", port)).ok());
        SmtpSink { child, port, maildir }
    }

    fn messages(&self) -> Vec<String> {
        let new = self.maildir.path().join("mail").join("new");
        let Ok(dir) = std::fs::read_dir(new) else { return Vec::new() };
        dir.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok()).collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of a quoted-printable body: soft line breaks joined, `=XX` decoded.
fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status(server: &Server, path: &str, token: &str) -> Value {
    let (code, body) = server.get(path, token);
    assert_eq!(code, 200, "{body}");
    body
}

#[test]
fn a_finished_export_sends_one_email_with_the_link() {
    let smtp = SmtpSink::start();
    let db = test_database(Backend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    let out = cli(dir.path(), &["--database-url", db.url(), "demo-data", "--entries", "3000", "--days", "5"]);
    assert!(out.status.success());
    let smtp_url = format!("smtp://127.0.0.1:{}", smtp.port);
    let server = Server::launch(
        None,
        dir.path(),
        &["--database-url", db.url(), "--jwt-secret", SECRET],
        &["--smtp-url", &smtp_url, "--mail-from", "logs@registry.example"],
    );
    let admin = token(dir.path(), &["--sub", "alice", "--org-admin", "acme"]);
    let (code, created) = server.post_json(
        "/api/v1/organization/acme/exportlogs",
        &admin,
        &json!({"callback_email": "alice@example.com"}),
    );
    assert_eq!(code, 201, "{created}");
    let id = created["export_id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/organization/acme/exportlogs/{id}");
    let done = eventually(Duration::from_secs(120), || {
        let s = status(&server, &path, &admin);
        (s["status"] == "success").then_some(s)
    });
    let link = done["exported_data_url"].as_str().unwrap().to_owned();
    let mail = eventually(Duration::from_secs(60), || smtp.messages().into_iter().next());
    let mail = decode_quoted_printable(&mail);
    assert!(mail.contains("Subject: [usagelogs] Export Action Logs Complete"), "{mail}");
    assert!(mail.contains("To: alice@example.com"), "{mail}");
    assert!(mail.contains("Usage Logs Export has completed"), "{mail}");
    assert!(mail.contains(&id), "{mail}");
    assert!(mail.contains(&link), "the link is in the mail: {mail}");
    assert_eq!(smtp.messages().len(), 1, "one e-mail per export");
    let (code, body) = server.get_bytes(&link);
    assert_eq!(code, 200);
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["logs"].as_array().unwrap().len() as i64, done["entries"].as_i64().unwrap() + 1);
}

#[test]
fn an_export_survives_its_server_being_killed() {
    let db = test_database(Backend::Postgres);
    let dir = tempfile::tempdir().unwrap();
    let out = cli(dir.path(), &["--database-url", db.url(), "demo-data", "--entries", "100000", "--days", "3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let global = ["--database-url", db.url(), "--jwt-secret", SECRET];
    // Small chunks keep the first server busy long enough to be killed in the middle.
    let serve = ["--export-lease", "2s", "--export-poll", "1s", "--export-chunk-size", "20"];
    let mut first = Server::launch(None, dir.path(), &global, &serve);
    let admin = token(dir.path(), &["--sub", "alice", "--org-admin", "acme"]);
    let today = time::OffsetDateTime::now_utc().date();
    let window = format!("starttime={}&endtime={}", today - time::Duration::days(4), today);
    let (code, agg) = first.get(&format!("/api/v1/organization/acme/aggregatelogs?{window}"), &admin);
    assert_eq!(code, 200);
    let expected: i64 = agg["aggregated"].as_array().unwrap().iter().map(|a| a["count"].as_i64().unwrap()).sum();
    assert!(expected > 10_000, "{expected}");

    let (code, created) =
        first.post_json(&format!("/api/v1/organization/acme/exportlogs?{window}"), &admin, &json!({}));
    assert_eq!(code, 201, "{created}");
    let path = format!("/api/v1/organization/acme/exportlogs/{}", created["export_id"].as_str().unwrap());
    eventually(Duration::from_secs(60), || (status(&first, &path, &admin)["status"] == "running").then_some(()));
    first.kill();

    let second = Server::launch(None, dir.path(), &global, &serve);
    let interrupted = status(&second, &path, &admin);
    assert_eq!(interrupted["status"], "running", "killed in the middle: {interrupted}");
    let done = eventually(Duration::from_secs(300), || {
        let s = status(&second, &path, &admin);
        (s["status"] == "success").then_some(s)
    });
    assert_eq!(done["entries"].as_i64(), Some(expected), "{done}");
    // The link was made by the first server (no --public-url here): follow its path on the second.
    let link = done["exported_data_url"].as_str().unwrap();
    let path = &link[link.find("/exportedlogs/").unwrap()..];
    let (code, body) = second.get_bytes(&format!("{}{path}", second.base_url()));
    assert_eq!(code, 200);
    let doc: Value = serde_json::from_slice(&body).expect("the file is whole JSON");
    let logs = doc["logs"].as_array().unwrap();
    assert_eq!(logs.len() as i64, expected + 1);
    assert_eq!(logs.last().unwrap(), &json!({"terminator": true}));
    // Exactly one success audit for the one export.
    let (code, audits) = second.get("/api/v1/organization/acme/logs?kind=export_logs_success", &admin);
    assert_eq!(code, 200);
    assert_eq!(audits["logs"].as_array().unwrap().len(), 1, "{audits}");
}
