//! The command line.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Usage logs of a container registry, served through Red Hat Quay's logs API.
#[derive(Debug, Parser)]
#[command(name = "usagelogs", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Command,
}

/// Settings every command shares.
#[derive(Debug, Args)]
pub struct Common {
    /// Database: `sqlite://PATH` (the embedded default) or `postgres://USER@HOST:PORT/DB`.
    #[arg(long, env = "USAGELOGS_DATABASE_URL", default_value = "sqlite://usagelogs.db", global = true)]
    pub database_url: String,
    /// Shared secret for HS256 bearer tokens. Without it (and without --jwt-public-key) a
    /// development secret is made and kept in `.usagelogs-dev-secret`.
    #[arg(long, env = "USAGELOGS_JWT_SECRET", global = true, hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// PEM public key for RS256 or ES256 bearer tokens.
    #[arg(long, env = "USAGELOGS_JWT_PUBLIC_KEY", global = true)]
    pub jwt_public_key: Option<PathBuf>,
    /// The one algorithm tokens must use: HS256, RS256 or ES256 (default: HS256 with a secret,
    /// RS256 with a public key).
    #[arg(long, env = "USAGELOGS_JWT_ALGORITHM", global = true)]
    pub jwt_algorithm: Option<String>,
    /// Required `iss` claim.
    #[arg(long, env = "USAGELOGS_JWT_ISSUER", global = true)]
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim.
    #[arg(long, env = "USAGELOGS_JWT_AUDIENCE", global = true)]
    pub jwt_audience: Option<String>,
    /// Key that signs page tokens (default: derived from the JWT secret, or random).
    #[arg(long, env = "USAGELOGS_PAGE_TOKEN_KEY", global = true, hide_env_values = true)]
    pub page_token_key: Option<String>,
    /// Log output format.
    #[arg(long, env = "USAGELOGS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Largest database pool.
    #[arg(long, env = "USAGELOGS_DB_POOL_SIZE", default_value_t = 16, global = true)]
    pub db_pool_size: u32,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Superuser level of a minted token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Superuser {
    Full,
    Readonly,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (migrates the database first).
    Serve(ServeArgs),
    /// Apply the database migrations and exit.
    Migrate,
    /// Print a JWT signed with the configured secret.
    Token(TokenArgs),
    /// Import NDJSON log entries from a file (`-` for standard input).
    Import(ImportArgs),
    /// Print the OpenAPI document.
    Openapi,
    /// Fill the database with realistic demo logs.
    DemoData(DemoArgs),
    /// Remove log entries older than N days (print the plan with --dry-run, remove with --apply).
    Retention(RetentionArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "USAGELOGS_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// External `scheme://host[:port]` of the server, used in error `type` URLs and links.
    #[arg(long, env = "USAGELOGS_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Folder for export files.
    #[arg(long, env = "USAGELOGS_EXPORT_DIR", default_value = "exports")]
    pub export_dir: PathBuf,
    /// How long export links stay valid, e.g. `1h`, `30m`, `2d`.
    #[arg(long, env = "USAGELOGS_EXPORT_TTL", default_value = "1h", value_parser = parse_duration)]
    pub export_ttl: std::time::Duration,
    /// S3 object storage for export files.
    #[command(flatten)]
    pub export_s3: Box<ExportS3Args>,
    /// SMTP server for export e-mail, e.g. `smtp://127.0.0.1:2525`.
    #[arg(long, env = "USAGELOGS_SMTP_URL")]
    pub smtp_url: Option<String>,
    /// Sender of export e-mail.
    #[arg(long, env = "USAGELOGS_MAIL_FROM", default_value = "usagelogs@localhost")]
    pub mail_from: String,
    /// Hosts or CIDRs export callbacks may reach although they are not public (comma-separated).
    #[arg(long, env = "USAGELOGS_CALLBACK_ALLOW", value_delimiter = ',')]
    pub callback_allow: Vec<String>,
    /// Export jobs this server runs at once.
    #[arg(long, env = "USAGELOGS_EXPORT_WORKERS", default_value_t = 2)]
    pub export_workers: usize,
    /// How long a worker's claim on an export lasts without renewal (a killed server's job is
    /// resumed by another after this), e.g. `60s`.
    #[arg(long, env = "USAGELOGS_EXPORT_LEASE", default_value = "60s", value_parser = parse_duration)]
    pub export_lease: std::time::Duration,
    /// Entries read per query while writing an export.
    #[arg(long, env = "USAGELOGS_EXPORT_CHUNK_SIZE", default_value_t = 5000)]
    pub export_chunk_size: usize,
    /// How often idle export workers look for work left by other replicas, e.g. `5s`.
    #[arg(long, env = "USAGELOGS_EXPORT_POLL", default_value = "5s", value_parser = parse_duration)]
    pub export_poll: std::time::Duration,
    /// Wait before retrying a failed export callback (doubled each time), e.g. `2s`.
    #[arg(long, env = "USAGELOGS_CALLBACK_BACKOFF", default_value = "2s", value_parser = parse_duration)]
    pub callback_backoff: std::time::Duration,
    /// Longest aggregate window, in days.
    #[arg(long, env = "USAGELOGS_MAX_AGGREGATE_DAYS", default_value_t = 31)]
    pub max_aggregate_days: u32,
    /// Accept log kinds outside Quay's catalog.
    #[arg(long, env = "USAGELOGS_ALLOW_CUSTOM_KINDS")]
    pub allow_custom_kinds: bool,
    /// Most entries in one ingestion batch.
    #[arg(long, env = "USAGELOGS_MAX_BATCH_ENTRIES", default_value_t = 10_000)]
    pub max_batch_entries: usize,
    /// Largest ingestion body, in bytes.
    #[arg(long, env = "USAGELOGS_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "USAGELOGS_WORKERS")]
    pub workers: Option<usize>,
    /// Fill an empty database with realistic demo logs first.
    #[arg(long, env = "USAGELOGS_DEMO")]
    pub demo: bool,
    /// Remove log entries older than this many days (whole PostgreSQL partitions where
    /// possible), at start and every --retention-interval. Off when not given.
    #[arg(long, env = "USAGELOGS_RETENTION_DAYS")]
    pub retention_days: Option<u32>,
    /// How often retention runs, e.g. `1h` (on PostgreSQL it also makes the coming months'
    /// partitions, also when retention is off).
    #[arg(long, env = "USAGELOGS_RETENTION_INTERVAL", default_value = "1h", value_parser = parse_duration)]
    pub retention_interval: std::time::Duration,
    /// Archive the entries as NDJSON files in --export-dir (`retention-YYYY-MM.ndjson` per
    /// partition, `retention-YYYY-MM-DD.ndjson` per day) before removing them.
    #[arg(long, env = "USAGELOGS_RETENTION_ARCHIVE", requires = "retention_days")]
    pub retention_archive: bool,
}

/// Export files in S3 (`serve`).
#[derive(Debug, Args)]
pub struct ExportS3Args {
    /// Keep export files in this S3 bucket (or one of an S3-compatible server) instead of
    /// --export-dir; downloads then go through pre-signed URLs. Settings not given by the
    /// --export-s3-* flags come from the usual AWS_* variables.
    #[arg(long, env = "USAGELOGS_EXPORT_S3_BUCKET")]
    pub export_s3_bucket: Option<String>,
    /// Key prefix of the export files in the bucket, e.g. `usagelogs/exports`.
    #[arg(long, env = "USAGELOGS_EXPORT_S3_PREFIX", requires = "export_s3_bucket")]
    pub export_s3_prefix: Option<String>,
    /// Endpoint of an S3-compatible server, e.g. `https://minio.example:9000` (path-style
    /// requests); default: AWS_ENDPOINT, else Amazon S3.
    #[arg(long, env = "USAGELOGS_EXPORT_S3_ENDPOINT", requires = "export_s3_bucket")]
    pub export_s3_endpoint: Option<String>,
    /// Region of the bucket [default: AWS_REGION, else us-east-1].
    #[arg(long, env = "USAGELOGS_EXPORT_S3_REGION", requires = "export_s3_bucket")]
    pub export_s3_region: Option<String>,
    /// Access key id (default: AWS_ACCESS_KEY_ID, else instance or web-identity credentials).
    #[arg(long, env = "USAGELOGS_EXPORT_S3_ACCESS_KEY_ID", requires = "export_s3_bucket", hide_env_values = true)]
    pub export_s3_access_key_id: Option<String>,
    /// Secret access key (default: AWS_SECRET_ACCESS_KEY).
    #[arg(long, env = "USAGELOGS_EXPORT_S3_SECRET_ACCESS_KEY", requires = "export_s3_bucket", hide_env_values = true)]
    pub export_s3_secret_access_key: Option<String>,
    /// Allow a plain-HTTP S3 endpoint (a test server on loopback, say).
    #[arg(long, env = "USAGELOGS_EXPORT_S3_ALLOW_HTTP", requires = "export_s3_bucket")]
    pub export_s3_allow_http: bool,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The caller's user name (also their own namespace).
    #[arg(long)]
    pub sub: String,
    /// Space-separated scopes.
    #[arg(long, default_value = "user:admin org:admin repo:admin")]
    pub scope: String,
    /// Namespaces the caller administers (repeatable).
    #[arg(long = "org-admin")]
    pub org_admin: Vec<String>,
    /// Repositories (`namespace/name`) the caller administers (repeatable).
    #[arg(long = "repo-admin")]
    pub repo_admin: Vec<String>,
    /// Superuser powers.
    #[arg(long, value_enum)]
    pub superuser: Option<Superuser>,
    /// Lifetime, e.g. `1h`, `30m`, `7d`.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub ttl: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// NDJSON file, one entry per line; `-` reads standard input.
    pub file: PathBuf,
    /// Entries per transaction.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// Skip this many entry lines first (to resume an interrupted import).
    #[arg(long, default_value_t = 0)]
    pub skip: u64,
    /// Accept log kinds outside Quay's catalog.
    #[arg(long, env = "USAGELOGS_ALLOW_CUSTOM_KINDS")]
    pub allow_custom_kinds: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many entries to write.
    #[arg(long, default_value_t = 20_000)]
    pub entries: usize,
    /// Days back the entries spread over.
    #[arg(long, default_value_t = 60)]
    pub days: u32,
    /// Seed of the generator (same seed, same data).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct RetentionArgs {
    /// Days kept: entries before 00:00 UTC of (today − DAYS) are removed.
    #[arg(long, env = "USAGELOGS_RETENTION_DAYS")]
    pub days: u32,
    /// Print what would be removed; remove nothing.
    #[arg(long, required_unless_present = "apply", conflicts_with = "apply")]
    pub dry_run: bool,
    /// Remove it, and print what was removed.
    #[arg(long)]
    pub apply: bool,
    /// Archive the entries as NDJSON files in --export-dir before removing them.
    #[arg(long, requires = "apply")]
    pub archive: bool,
    /// Folder of the archive files.
    #[arg(long, env = "USAGELOGS_EXPORT_DIR", default_value = "exports")]
    pub export_dir: PathBuf,
}

/// Parses `90s`, `30m`, `1h`, `2d` or plain seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("'{s}' is not a duration like 90s, 30m, 1h or 2d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("'{s}' is not a duration like 90s, 30m, 1h or 2d")),
    };
    if secs == 0 {
        return Err("a duration must be positive".into());
    }
    Ok(std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(std::time::Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(std::time::Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h"), Ok(std::time::Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Ok(std::time::Duration::from_secs(172_800)));
        assert!(parse_duration("1y").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("h").is_err());
    }
}
