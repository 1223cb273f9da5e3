//! `sigil`: an OCI registry, registry client, and image signing/verification tool in one binary.
//!
//! This file parses the command line and dispatches to the `cmd` modules. Errors are printed as one
//! line (`sigil: <cause chain>`) and give exit status 1; clap usage errors give 2.

mod cli;
mod cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // The TLS stack is rustls on the ring provider everywhere; install it before anything builds a
    // client or server config.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = cli::Cli::parse();
    init_tracing(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sigil: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cmd::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("sigil: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn init_tracing(cli: &cli::Cli) {
    use tracing_subscriber::EnvFilter;
    let default = match cli.verbose {
        0 => "warn,sigil=info,sigil_registry=info",
        1 => "info,sigil=debug,sigil_registry=debug,sigil_client=debug",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_env("SIGIL_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if cli.log_format == cli::LogFormat::Json {
        builder.json().init();
    } else {
        builder.init();
    }
}
