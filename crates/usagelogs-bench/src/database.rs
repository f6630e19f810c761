//! The benchmark's database: made fresh at the start so runs repeat, removed at the end.

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use std::path::PathBuf;

use crate::Error;

/// Where the run stores its entries.
#[derive(Debug, Clone)]
pub enum Target {
    /// `postgres://…/NAME`: NAME is dropped and created through the `postgres` database.
    Postgres { url: String, admin_url: String, name: String },
    /// `sqlite://PATH`: the file (and its WAL) is deleted first.
    Sqlite { url: String, path: PathBuf },
}

impl Target {
    /// Reads a `postgres://`/`postgresql://` or `sqlite://` URL.
    pub fn parse(url: &str) -> Result<Self, Error> {
        if let Some(rest) = url.strip_prefix("sqlite://") {
            let path = PathBuf::from(rest);
            let path = if path.is_absolute() { path } else { std::env::current_dir()?.join(path) };
            return Ok(Self::Sqlite { url: format!("sqlite://{}", path.display()), path });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
            let authority = base.find("://").map_or(0, |i| i + 3);
            let slash =
                base[authority..].find('/').map(|i| authority + i).ok_or("the PostgreSQL URL names no database")?;
            let name = base[slash + 1..].to_owned();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(format!("use a plain database name (letters, digits, _ and -), not {name:?}").into());
            }
            if name == "postgres" || name.starts_with("template") {
                return Err(format!("refusing to drop and re-create the {name} database: name another one").into());
            }
            let admin_url =
                format!("{}/postgres{}", &base[..slash], query.map(|q| format!("?{q}")).unwrap_or_default());
            return Ok(Self::Postgres { url: url.to_owned(), admin_url, name });
        }
        Err(format!("--database-url must start with postgres:// or sqlite://, not {url:?}").into())
    }

    /// The URL the server gets.
    pub fn url(&self) -> &str {
        match self {
            Self::Postgres { url, .. } | Self::Sqlite { url, .. } => url,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres { .. })
    }

    /// Drops and re-creates the database, or deletes the SQLite file.
    pub fn recreate(&self) -> Result<(), Error> {
        match self {
            Self::Postgres { admin_url, name, .. } => {
                let mut admin =
                    PgConnection::establish(admin_url).map_err(|e| format!("cannot connect to {admin_url}: {e}"))?;
                admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))?;
                admin.batch_execute(&format!("CREATE DATABASE \"{name}\""))?;
            }
            Self::Sqlite { path, .. } => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    match std::fs::remove_file(&p) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// Removes what [`Target::recreate`] made.
    pub fn remove(&self) -> Result<(), Error> {
        match self {
            Self::Postgres { admin_url, name, .. } => {
                let mut admin = PgConnection::establish(admin_url)?;
                admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))?;
            }
            Self::Sqlite { path, .. } => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
        Ok(())
    }

    /// The size of the stored data, for the report.
    pub fn size_bytes(&self) -> Option<u64> {
        match self {
            Self::Postgres { url, .. } => {
                #[derive(QueryableByName)]
                struct Size {
                    #[diesel(sql_type = diesel::sql_types::BigInt)]
                    bytes: i64,
                }
                let mut conn = PgConnection::establish(url).ok()?;
                let sizes: Vec<Size> =
                    diesel::sql_query("SELECT pg_database_size(current_database()) AS bytes").load(&mut conn).ok()?;
                sizes.first().map(|s| s.bytes as u64)
            }
            Self::Sqlite { path, .. } => {
                let size = |suffix: &str| {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    std::fs::metadata(&p).map_or(0, |m| m.len())
                };
                Some(size("") + size("-wal"))
            }
        }
    }
}

/// The server version and the settings that matter for write speed, in one line.
pub fn postgres_description(conn: &mut PgConnection) -> String {
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    let one = |conn: &mut PgConnection, sql: &str| -> String {
        diesel::sql_query(sql)
            .load::<Setting>(conn)
            .ok()
            .and_then(|r| r.into_iter().next())
            .map_or_else(|| "?".into(), |s| s.v)
    };
    let version = one(conn, "SELECT current_setting('server_version') AS v");
    let settings: Vec<String> = ["shared_buffers", "fsync", "synchronous_commit", "max_wal_size"]
        .iter()
        .map(|s| format!("{s}={}", one(conn, &format!("SELECT current_setting('{s}') AS v"))))
        .collect();
    format!("PostgreSQL {version} ({})", settings.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read() {
        let Target::Postgres { admin_url, name, .. } =
            Target::parse("postgres://postgres@127.0.0.1:5432/bench?sslmode=disable").unwrap()
        else {
            panic!("not postgres")
        };
        assert_eq!(admin_url, "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable");
        assert_eq!(name, "bench");
        assert!(Target::parse("postgres://h/postgres").is_err());
        assert!(Target::parse("postgres://h/").is_err());
        assert!(Target::parse("mysql://h/db").is_err());
        let Target::Sqlite { path, .. } = Target::parse("sqlite:///tmp/x.db").unwrap() else { panic!("not sqlite") };
        assert_eq!(path, PathBuf::from("/tmp/x.db"));
        assert!(Target::parse("sqlite://rel.db").unwrap().url().starts_with("sqlite:///"));
    }
}
