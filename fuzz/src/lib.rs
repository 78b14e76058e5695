//! Shared by the fuzz targets: known findings, tolerated so fuzzing can go on until they are fixed.
//!
//! A finding that is reported but not yet fixed would stop every run at its first occurrence and hide
//! whatever else a run could find. Each one is listed here (and in `docs/fuzzing.md`, with its input
//! under `fuzz/regressions/<target>/`). A panic matching one is swallowed and the input skipped;
//! `ENGAGE_FUZZ_STRICT=1` turns them all back into crashes, which is how a fix is checked:
//!
//! ```sh
//! ENGAGE_FUZZ_STRICT=1 cargo fuzz run request fuzz/regressions/request/*
//! ```
//!
//! When a finding is fixed, delete its entry here; its regression inputs stay and keep it fixed.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Once};

/// A reported panic: where it happens and what it says.
pub struct Known {
    /// The finding's number in `docs/fuzzing.md`.
    pub id: &'static str,
    /// The end of the panicking source file's path.
    pub file: &'static str,
    /// The start of the panic message.
    pub message: &'static str,
}

/// Panics reported and not fixed yet. Empty: F2 (window arithmetic at the date type's limits) and F3
/// (the simulator's OAuth timestamp overflow) were fixed in ea9a1ab; their inputs stay in
/// `fuzz/regressions/`. An entry looks like
/// `Known { id: "F2", file: "engagement-api/src/window.rs", message: "resulting value is out of range" }`.
pub const KNOWN_PANICS: &[Known] = &[];

/// `ENGAGE_FUZZ_STRICT=1`: every known finding fails again.
pub fn strict() -> bool {
    static STRICT: LazyLock<bool> =
        LazyLock::new(|| std::env::var_os("ENGAGE_FUZZ_STRICT").is_some_and(|v| v == "1"));
    *STRICT
}

static HIT: AtomicBool = AtomicBool::new(false);

/// Wraps the panic hook libfuzzer-sys installed (which aborts, so libFuzzer records a crash): a known
/// panic only sets a flag and unwinds. Call before running code that may panic.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let abort = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let file = info.location().map_or("", |l| l.file());
            let known = KNOWN_PANICS
                .iter()
                .any(|k| file.ends_with(k.file) && message.starts_with(k.message));
            if known && !strict() {
                HIT.store(true, Ordering::SeqCst);
                return;
            }
            abort(info)
        }));
    });
}

/// Whether a known panic happened since the last call (also in another task or thread).
pub fn take_known_panic() -> bool {
    HIT.swap(false, Ordering::SeqCst)
}

/// Runs `f`; `None` when it hit a known panic. Any other panic still aborts.
pub fn guard<R>(f: impl FnOnce() -> R) -> Option<R> {
    install();
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(payload) => {
            if take_known_panic() {
                None
            } else {
                panic::resume_unwind(payload)
            }
        }
    }
}
