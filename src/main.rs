//! Entry point: parses arguments and runs a command (the app arrives with no command).

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
        None => {
            eprintln!("the desktop app is not built yet; run `morphosearch --help` for the commands");
            2
        }
    };
    std::process::exit(code);
}
