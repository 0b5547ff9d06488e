//! The `tokenlake` command (see the library, `lib.rs`).

use std::process::ExitCode;

fn main() -> ExitCode {
    tokenlake::main_with_args(std::env::args_os().collect())
}
