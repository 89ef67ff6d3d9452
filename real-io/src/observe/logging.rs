//! [`init_logging`]: the process-wide `tracing` subscriber.
//!
//! Lines are tracing-subscriber's default text format: timestamp, level, target, message and the event's
//! fields as `key=value`, e.g. `2025-01-01T00:00:00.000000Z  INFO tessera_real_io::observe::http: metrics
//! endpoint listening local_addr=127.0.0.1:9100`. (JSON would need tracing-subscriber's `json` feature,
//! which the workspace does not enable.)
//!
//! Writes are synchronous: each event is written to stderr, or to the log file under a mutex, by the task
//! that logs it. Keep hot paths at `debug`/`trace` so production levels stay cheap.

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

use super::ObserveError;

/// Install the process-wide logger. `level` is an env-filter directive (`info`, `tessera=debug,warn`, ...);
/// `file`, if given, is created if missing and appended to instead of writing to stderr (colours only on a
/// terminal stderr). A bad directive is [`ObserveError::BadLogFilter`], checked before anything else; a
/// second call in one process (or a logger installed by other code) is
/// [`ObserveError::LoggingAlreadyInitialized`], not a panic.
pub fn init_logging(level: &str, file: Option<&Path>) -> Result<(), ObserveError> {
    let filter = parse_filter(level)?;
    if tracing::dispatcher::has_been_set() {
        return Err(ObserveError::LoggingAlreadyInitialized { reason: "a global subscriber is already set".into() });
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = match file {
        None => builder.with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal()).try_init(),
        Some(path) => {
            let log_file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| ObserveError::LogFile { path: path.to_path_buf(), source })?;
            builder.with_writer(Mutex::new(log_file)).with_ansi(false).try_init()
        }
    };
    installed.map_err(|e| ObserveError::LoggingAlreadyInitialized { reason: e.to_string() })
}

fn parse_filter(level: &str) -> Result<EnvFilter, ObserveError> {
    let bad = |reason: String| ObserveError::BadLogFilter { directive: level.to_string(), reason };
    if level.trim().is_empty() {
        return Err(bad("it is empty".into()));
    }
    EnvFilter::try_new(level.trim()).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_are_checked() {
        assert!(parse_filter("info").is_ok());
        assert!(parse_filter("tessera=debug,warn").is_ok());
        assert!(parse_filter("tessera_real_io::observe=trace").is_ok());
        for bad in ["", "  ", "tessera=loud", "info,x=y=z"] {
            let err = parse_filter(bad).expect_err(bad);
            assert!(matches!(&err, ObserveError::BadLogFilter { directive, .. } if directive == bad), "{err:?}");
            assert!(err.to_string().contains("expected an env-filter directive"), "{err}");
        }
    }
}
