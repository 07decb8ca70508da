//! The `litehouse` command: benchmarks, database maintenance, migration between backends,
//! reading log databases, the server (`serve`, `token`) and the offline-first sync demo (`demo`).

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

mod args;
mod bench;
mod bench_http;
mod bench_realtime;
mod bench_sync;
mod db;
mod demo;
mod logs;
mod migrate;
mod serve;

use args::{Args, Command};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe (`litehouse bench | head`) is not an error worth reporting.
            let broken_pipe = err.chain().any(|cause| {
                cause
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            eprintln!("litehouse: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Opens a database file that must already exist (opening a mistyped path would silently
/// create an empty database), with one reader: the commands are single-threaded.
fn open_existing(file: &std::path::Path) -> anyhow::Result<litehouse::Database> {
    anyhow::ensure!(
        file.exists(),
        "{} does not exist: check the path",
        file.display()
    );
    let config = litehouse::Config {
        readers: 1,
        ..litehouse::Config::default()
    };
    litehouse::Database::open(file, config)
        .with_context(|| format!("could not open {}", file.display()))
}

fn run() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    match args.command {
        Command::Bench(bench) => bench::run(bench).map(|()| ExitCode::SUCCESS),
        Command::Db(db) => db::run(db),
        Command::Migrate(migrate) => migrate::run(migrate),
        Command::Logs(logs) => logs::run(logs).map(|()| ExitCode::SUCCESS),
        Command::Serve(serve) => serve::run(serve).map(|()| ExitCode::SUCCESS),
        Command::Token(token) => serve::token(token).map(|()| ExitCode::SUCCESS),
        Command::Demo(demo) => demo::run(demo),
        Command::BenchLoad(load) => bench_http::load(load).map(|()| ExitCode::SUCCESS),
        Command::BenchRealtimeLoad(load) => bench_realtime::load(load).map(|()| ExitCode::SUCCESS),
    }
}
