//! The documented exit codes (the README's "Exit codes"), in one place for the binary and the tests.
//! Every error type that can end a command maps itself to one of them (`exit_code()`), exhaustively.

/// Every ID has an outcome and none failed.
pub const OK: u8 = 0;
/// An unexpected internal error (a bug: a stage panicked, SQLite refused what it never should).
pub const INTERNAL: u8 = 1;
/// Bad usage, configuration or input; or the API refused every request alike (e.g. 401).
pub const USAGE: u8 = 2;
/// Finished with problems: some IDs ended `failed` after all retries, or an input could not be
/// read to its end (a truncated or corrupt gzip stream); everything else was fetched and kept.
pub const FAILED_IDS: u8 = 3;
/// Interrupted (Ctrl-C, SIGTERM, or the API unreachable for longer than the outage limit): run the
/// same command again to resume.
pub const INTERRUPTED: u8 = 4;
/// The store file is damaged, foreign or from a newer engage; it was left untouched.
pub const STORE: u8 = 5;
/// The machine around the run failed it: a full disk, a read-only or missing folder, a permission.
/// Nothing committed is lost; fix the cause and run the same command again to resume.
pub const ENVIRONMENT: u8 = 6;
