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
use usagelogs_service::export::{CallbackPolicy, LocalExportStorage, Notifier, NotifyConfig};
use usagelogs_service::{ExportConfig, ExportService, LogService, ServiceConfig};
use usagelogs_store::{DieselStore, LogStore, StoreOptions};

type Error = Box<dyn std::error::Error>;

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
    let storage = LocalExportStorage::new(&args.export_dir)
        .map_err(|e| format!("cannot use export folder {}: {e}", args.export_dir.display()))?;
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
    Ok(ExportService::new(
        logs.clone(),
        logs.clone(),
        Arc::new(storage),
        Notifier::new(notify, policy.clone()),
        policy,
        config,
    ))
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
