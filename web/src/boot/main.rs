//! `omniroute`: serve the contact center, migrate its database, seed a demo.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Omniroute, a self-hosted omnichannel contact-center engine.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (migrates the database first).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Fill the database with a demo contact center (idempotent) and print its logins.
    SeedDemo,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    web::boot::telemetry::init();
    let config = match web::boot::config::Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("omniroute: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = match cli.command {
        Command::Serve => {
            purge_in_background();
            web::boot::server::serve(config)
        }
        Command::Migrate => web::boot::server::migrate(&config).map(|applied| {
            println!("migrations applied: {}", applied.len());
        }),
        Command::SeedDemo => web::boot::seed::seed_demo(&config),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line naming the problem, for the operator; no panic, no backtrace.
            eprintln!("omniroute: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// jemalloc as the allocator: it hands the memory freed after a burst (10,000 desks connecting at
/// once: their handshakes, checks and snapshots) back to the system after its decay time, where
/// glibc kept it in its arenas (`omniroute-load --scenario idle`; the figures are in
/// docs/performance.md, "Idle agent connections").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's background thread: it returns freed pages to the system when their decay time is
/// up. Without it jemalloc purges only when the arena is used again, so a server gone quiet after
/// a burst kept its pages (measured: 10,000 idle desks read 19.95 KB each 4 s after connecting and
/// still 20 s later, against 13.4–15.6 KB once the pages were purged).
fn purge_in_background() {
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(error = %e, "jemalloc's background purging could not be started");
    }
}
