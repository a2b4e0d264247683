//! `palisade`: the IPsec daemon and its command-line interface.

mod demo;
mod selftest;

use clap::{Parser, Subcommand};
use palisade::cli;
use palisade::control::dataplane::ConfigOnly;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "palisade",
    version,
    about = "IPsec (ESP, AH, IKEv2, IKEv1) in user space"
)]
struct Cli {
    /// Control socket of the daemon [default: /run/palisade/palisade.sock, or
    /// $PALISADE_SOCKET].
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every transform's known-answer test and a short throughput check.
    Selftest {
        /// Skip the throughput check (known-answer tests only).
        #[arg(long)]
        no_throughput: bool,
        /// Print the result as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Two network namespaces, two daemons, an ESP tunnel set up with IKEv2
    /// (fresh pre-shared key), real traffic through it and a look at the wire
    /// (needs root).
    Demo {
        /// Key the tunnel by hand (manual SAs with fresh random keys) instead
        /// of with IKEv2.
        #[arg(long)]
        manual: bool,
    },
    /// Run the daemon in the foreground (logs to stderr; SIGHUP reloads,
    /// SIGTERM/SIGINT stop).
    Daemon {
        /// The config file.
        #[arg(long, short, value_name = "FILE", default_value = palisade::config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// `userspace`: TUN + raw/UDP sockets (the real one). `none`: run the
        /// control plane only, processing no packets (for tests of config,
        /// reload and the CLI without root).
        #[arg(long, value_name = "KIND", default_value = "userspace", value_parser = ["userspace", "none"])]
        dataplane: String,
    },
    /// Validate a config file without running anything (exit 2 if invalid).
    CheckConfig {
        /// The config file.
        file: PathBuf,
    },
    /// Show SAs, policies, counters and connections of the running daemon.
    Status {
        /// Print JSON (the control socket's answer) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Security associations of the running daemon.
    Sa {
        #[command(subcommand)]
        cmd: ListCmd,
    },
    /// Security policies of the running daemon.
    Policy {
        #[command(subcommand)]
        cmd: ListCmd,
    },
    /// Make the daemon re-read its config and apply only what changed.
    Reload {
        #[arg(long)]
        json: bool,
    },
    /// Set up an IKE connection (IKE SA and first CHILD_SA) and wait until it
    /// is up, like `swanctl --initiate`.
    Up {
        /// The connection's name in the config.
        name: String,
    },
    /// Delete an IKE connection's SAs (telling the peer).
    Down {
        /// The connection's name in the config.
        name: String,
    },
    /// Stop the daemon (it removes everything it created).
    Stop,
}

#[derive(Subcommand)]
enum ListCmd {
    /// List them.
    List {
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let args = Cli::parse();
    let socket = args.socket;
    match args.command {
        Command::Selftest {
            no_throughput,
            json,
        } => selftest::run(!no_throughput, json),
        Command::Demo { manual } => demo::run(manual),
        Command::Daemon { config, dataplane } => {
            let dp: Box<dyn palisade::control::dataplane::Dataplane> = match dataplane.as_str() {
                "none" => Box::<ConfigOnly>::default(),
                _ => Box::<palisade::userspace::Userspace>::default(),
            };
            cli::daemon::run(&config, socket, dp)
        }
        Command::CheckConfig { file } => cli::check_config(&file),
        Command::Status { json } => cli::status(&cli::socket_path(socket), json),
        Command::Sa {
            cmd: ListCmd::List { json },
        } => cli::sa_list(&cli::socket_path(socket), json),
        Command::Policy {
            cmd: ListCmd::List { json },
        } => cli::policy_list(&cli::socket_path(socket), json),
        Command::Reload { json } => cli::reload(&cli::socket_path(socket), json),
        Command::Up { name } => cli::up(&cli::socket_path(socket), &name),
        Command::Down { name } => cli::down(&cli::socket_path(socket), &name),
        Command::Stop => cli::stop(&cli::socket_path(socket)),
    }
}
