//! The `usagelogs` binary.

mod cli;
mod demo;
mod import;
mod keys;

use actix_web::{App, HttpServer, web};
use clap::Parser;
use cli::{Cli, Command, LogFormat, ServeArgs, Superuser, TokenArgs};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tracing_actix_web::TracingLogger;
use usagelogs_core::{AccessGrant, Claims, SuperuserLevel};
use usagelogs_http::{AppState, HttpLimits, configure};
use usagelogs_service::export::storage::{S3Config, S3ExportStorage};
use usagelogs_service::export::{CallbackPolicy, ExportStorage, LocalExportStorage, Notifier, NotifyConfig};
use usagelogs_service::{ExportConfig, ExportService, LogService, ServiceConfig};
use usagelogs_store::{DieselStore, LogStore, StoreOptions};

type Error = Box<dyn std::error::Error>;

/// jemalloc hands memory freed after a burst (large ingestion batches, export chunks) back to the
/// system within seconds, where glibc's per-thread arenas keep the high-water mark for good.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("USAGELOGS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn open_store(cli: &Cli) -> Result<DieselStore, Error> {
    let options = StoreOptions { max_connections: cli.common.db_pool_size, ..StoreOptions::default() };
    Ok(DieselStore::connect(&cli.common.database_url, options)?)
}

fn mint(signer: &usagelogs_http::TokenSigner, args: &TokenArgs) -> Result<String, Error> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let mut access: Vec<AccessGrant> = args
        .org_admin
        .iter()
        .map(|ns| AccessGrant { kind: "organization".into(), name: ns.clone(), actions: vec!["admin".into()] })
        .collect();
    access.extend(args.repo_admin.iter().map(|r| AccessGrant {
        kind: "repository".into(),
        name: r.clone(),
        actions: vec!["admin".into()],
    }));
    let claims = Claims {
        sub: args.sub.clone(),
        exp: now + i64::try_from(args.ttl.as_secs()).unwrap_or(i64::MAX / 2),
        nbf: None,
        iat: Some(now),
        iss: None,
        aud: None,
        scope: args.scope.clone(),
        access,
        superuser: args.superuser.map(|s| match s {
            Superuser::Full => SuperuserLevel::Full,
            Superuser::Readonly => SuperuserLevel::Readonly,
        }),
    };
    Ok(signer.sign(&claims)?)
}

fn fill_demo(store: &DieselStore, entries: usize, days: u32, seed: u64) -> Result<usize, Error> {
    let data = demo::generate(entries, days, seed, OffsetDateTime::now_utc());
    let mut stored = 0;
    for chunk in data.chunks(1000) {
        stored += store.insert_batch(chunk)?;
    }
    Ok(stored)
}

/// Prints a ready admin token and a curl line, for the development secret.
fn print_dev_token(file: &str, signer: &usagelogs_http::TokenSigner, base: &str, demo: bool) -> Result<(), Error> {
    let token = mint(
        signer,
        &TokenArgs {
            sub: "admin".into(),
            scope: "user:admin org:admin repo:admin logs:write".into(),
            org_admin: vec![],
            repo_admin: vec![],
            superuser: Some(Superuser::Full),
            ttl: Duration::from_secs(24 * 3600),
        },
    )?;
    let path = if demo { format!("/api/v1/organization/{}/logs", demo::DEMO_ORG) } else { "/api/v1/user/logs".into() };
    println!("No JWT key configured: made a development secret and keep it in {file}.");
    println!("An admin token, valid for 24 hours (mint more with `usagelogs token --sub NAME`):\n\n{token}\n");
    println!("Try:\n\ncurl -s -H \"Authorization: Bearer {token}\" '{base}{path}'\n");
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "usagelogs".into())
}

fn export_service(logs: &Arc<DieselStore>, args: &ServeArgs) -> Result<ExportService, Error> {
    let policy = CallbackPolicy::new(&args.callback_allow)?;
    let s3 = &args.export_s3;
    let storage: Arc<dyn ExportStorage> = match &s3.export_s3_bucket {
        Some(bucket) => {
            let config = S3Config {
                bucket: bucket.clone(),
                prefix: s3.export_s3_prefix.clone(),
                endpoint: s3.export_s3_endpoint.clone(),
                region: s3.export_s3_region.clone(),
                access_key_id: s3.export_s3_access_key_id.clone(),
                secret_access_key: s3.export_s3_secret_access_key.clone(),
                allow_http: s3.export_s3_allow_http,
                part_size: 0,
            };
            let storage = S3ExportStorage::new(&config).map_err(|e| format!("cannot use S3 bucket {bucket}: {e}"))?;
            tracing::info!(bucket = %bucket, prefix = ?s3.export_s3_prefix, "export files go to S3");
            Arc::new(storage)
        }
        None => Arc::new(
            LocalExportStorage::new(&args.export_dir)
                .map_err(|e| format!("cannot use export folder {}: {e}", args.export_dir.display()))?,
        ),
    };
    let notify = NotifyConfig {
        smtp_url: args.smtp_url.clone(),
        mail_from: args.mail_from.clone(),
        callback_backoff: args.callback_backoff,
        ..NotifyConfig::default()
    };
    let config = ExportConfig {
        ttl: args.export_ttl,
        lease: args.export_lease,
        poll_interval: args.export_poll,
        concurrency: args.export_workers,
        chunk_size: args.export_chunk_size.max(1),
        ..ExportConfig::default()
    };
    Ok(ExportService::new(logs.clone(), logs.clone(), storage, Notifier::new(notify, policy.clone()), policy, config))
}

fn serve(cli: &Cli, args: &ServeArgs) -> Result<(), Error> {
    let keys = keys::load(&cli.common)?;
    let store = open_store(cli)?;
    if args.demo {
        if store.namespace_exists(demo::DEMO_ORG)? {
            println!("Demo data already present; not adding more.");
        } else {
            let n = fill_demo(&store, 20_000, 60, 7)?;
            println!("Filled the database with {n} demo log entries over the last 60 days.");
        }
    }
    let mut config = ServiceConfig::new(keys.page_key.clone());
    config.max_aggregate_days = args.max_aggregate_days;
    config.allow_custom_kinds = args.allow_custom_kinds;
    config.max_batch_entries = args.max_batch_entries;
    let logs: Arc<DieselStore> = Arc::new(store);
    let service = LogService::new(logs.clone(), config);
    let exports = Arc::new(export_service(&logs, args)?);
    let workers_handle = exports.start_workers(&format!("{}-{}", hostname(), std::process::id()));
    let retention_handle = start_retention(&logs, args)?;
    let mut state = AppState::new(service, keys.verifier.clone());
    state.public_url = args.public_url.clone();
    state.limits = HttpLimits { max_body_bytes: args.max_body_bytes };
    state.exports = Some(exports);
    let state = web::Data::new(state);

    let workers = args.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let dev_secret = keys.dev_secret_file.clone().zip(keys.signer.clone());
    let public_url = args.public_url.clone();
    let (bind, demo) = (args.bind.clone(), args.demo);
    actix_web::rt::System::new().block_on(async move {
        let server =
            HttpServer::new(move || App::new().wrap(TracingLogger::default()).configure(configure(state.clone())))
                .workers(workers)
                .shutdown_timeout(30)
                .bind(&bind)?;
        let addr = server.addrs().first().copied();
        let base =
            public_url.or_else(|| addr.map(|a| format!("http://{a}"))).unwrap_or_else(|| format!("http://{bind}"));
        if let Some((file, signer)) = dev_secret {
            print_dev_token(&file, &signer, &base, demo).map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        println!("usagelogs listening on {base} (API documentation at {base}/docs/)");
        server.run().await
    })?;
    workers_handle.stop();
    if let Some(handle) = retention_handle {
        handle.stop();
    }
    Ok(())
}

/// Starts the retention schedule of `serve`: with --retention-days, or on PostgreSQL (to make the
/// coming months' partitions ahead of time).
fn start_retention(
    logs: &Arc<DieselStore>,
    args: &ServeArgs,
) -> Result<Option<usagelogs_service::retention::RetentionHandle>, Error> {
    use usagelogs_service::retention::{self, RetentionSettings};
    if args.retention_days.is_none() && logs.backend() == usagelogs_store::Backend::Sqlite {
        return Ok(None);
    }
    let settings = RetentionSettings {
        days: args.retention_days,
        interval: args.retention_interval,
        archive: args.retention_archive,
    };
    // Archives go to the export folder (with S3 exports too: the folder is local to this server).
    let storage: Option<Arc<dyn ExportStorage>> = if args.retention_archive {
        let dir = &args.export_dir;
        Some(Arc::new(
            LocalExportStorage::new(dir).map_err(|e| format!("cannot use export folder {}: {e}", dir.display()))?,
        ))
    } else {
        None
    };
    if let Some(days) = args.retention_days {
        tracing::info!(days, interval = ?args.retention_interval, archive = args.retention_archive, "retention on");
    }
    Ok(Some(retention::start(Arc::clone(logs), settings, storage)))
}

/// `usagelogs retention`: prints the plan, and with --apply removes it.
fn retention_command(cli: &Cli, args: &cli::RetentionArgs) -> Result<(), Error> {
    use usagelogs_service::retention;
    use usagelogs_store::{RetentionAction, RetentionUnit};
    let describe = |u: &RetentionUnit| {
        let (what, how) = match &u.action {
            RetentionAction::DropPartition { partition } => (partition.as_str(), "drop partition"),
            RetentionAction::Delete => ("log_entries", "delete"),
        };
        format!("  {what:<22} {} .. {}  {how:<15} {:>12} entries", u.from, u.to, u.entries)
    };
    let store = open_store(cli)?;
    let now = OffsetDateTime::now_utc();
    let plan = retention::plan(&store, args.days, now)?;
    println!("Keeping {} days on {}: entries before {} 00:00 UTC go.", args.days, store.backend(), plan.cutoff);
    if plan.units.is_empty() {
        println!("Nothing to remove.");
        return Ok(());
    }
    for unit in &plan.units {
        println!("{}", describe(unit));
    }
    println!("Total: {} entries.", plan.entries());
    if args.dry_run {
        println!("Dry run: nothing removed (run with --apply to remove them).");
        return Ok(());
    }
    let storage = if args.archive {
        Some(
            LocalExportStorage::new(&args.export_dir)
                .map_err(|e| format!("cannot use export folder {}: {e}", args.export_dir.display()))?,
        )
    } else {
        None
    };
    let (report, result) = retention::apply(&store, args.days, now, storage.as_ref().map(|s| s as &dyn ExportStorage));
    for done in &report.units {
        let how = match &done.unit.action {
            RetentionAction::DropPartition { partition } => format!("dropped {partition}"),
            RetentionAction::Delete => "deleted in batches".to_owned(),
        };
        println!("Removed {} entries of {} .. {} ({how}).", done.removed, done.unit.from, done.unit.to);
    }
    for file in &report.files {
        println!("Archived to {}", args.export_dir.join(file).display());
    }
    println!("Removed {} entries in all.", report.removed());
    result?;
    Ok(())
}

fn run(cli: Cli) -> Result<(), Error> {
    match &cli.command {
        Command::Serve(args) => serve(&cli, args),
        Command::Migrate => {
            open_store(&cli)?;
            println!("Migrations applied to {}", redact(&cli.common.database_url));
            Ok(())
        }
        Command::Token(args) => {
            let keys = keys::load(&cli.common)?;
            let signer = keys.signer.ok_or("`token` signs with a shared secret: give --jwt-secret")?;
            println!("{}", mint(&signer, args)?);
            Ok(())
        }
        Command::Openapi => {
            print!("{}", usagelogs_http::openapi_json());
            Ok(())
        }
        Command::DemoData(args) => {
            let store = open_store(&cli)?;
            let n = fill_demo(&store, args.entries, args.days, args.seed)?;
            println!("Stored {n} demo log entries over the last {} days.", args.days);
            Ok(())
        }
        Command::Retention(args) => retention_command(&cli, args),
        Command::Import(args) => {
            let store = open_store(&cli)?;
            let (report, result) = if args.file.as_os_str() == "-" {
                import::import(
                    &store,
                    std::io::stdin().lock(),
                    None,
                    args.batch_size,
                    args.skip,
                    args.allow_custom_kinds,
                )
            } else {
                let file =
                    std::fs::File::open(&args.file).map_err(|e| format!("cannot open {}: {e}", args.file.display()))?;
                let len = file.metadata().ok().map(|m| m.len());
                import::import(&store, file, len, args.batch_size, args.skip, args.allow_custom_kinds)
            };
            println!("Imported {} entries; {} entry lines done.", report.imported, report.lines_done);
            if let Err(e) = result {
                println!("Stopped: {e}");
                println!(
                    "Everything before entry line {} is stored. Fix the input and resume with --skip {}.",
                    report.lines_done + 1,
                    report.lines_done
                );
                return Err(e.into());
            }
            Ok(())
        }
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}@{}", &url[..s + 3], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.common.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
