//! Entry point: parses arguments; runs a command, or the desktop app when there is none.

use clap::Parser;

fn main() {
    let cli = morphosearch::cli::Cli::parse();
    let code = match cli.command {
        Some(command) => match morphosearch::cli::run(command) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                1
            }
        },
        None => match morphosearch::app::run(cli.database, None, cli.window) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e:#}");
                1
            }
        },
    };
    std::process::exit(code);
}
