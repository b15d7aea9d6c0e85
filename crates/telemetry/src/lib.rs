//! Logs and metrics.
//!
//! Every log line passes through [`redact`] on its way out, whatever field or
//! message it came from: bearer tokens, our token shapes and values of fields
//! named like secrets are replaced by `[REDACTED]`. Code should still never log
//! a secret; this is the net under that rule, not the rule.
//!
//! Metrics go to one process-wide Prometheus recorder ([`prometheus`]).

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use regex::Regex;
use std::io::Write;
use std::sync::OnceLock;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pretty,
    Json,
}

fn patterns() -> &'static [(Regex, &'static str)] {
    static PATTERNS: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        vec![
            // Authorization header values.
            (Regex::new(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+").unwrap(), "$1 [REDACTED]"),
            // Our own session tokens and API keys, wherever they appear.
            (Regex::new(r"\bbc[ski]_[A-Za-z0-9_-]{8,}").unwrap(), "[REDACTED]"),
            // key=value / "key":"value" where the key names a secret.
            (
                Regex::new(
                    r#"(?i)("?[a-z_]*(password|passwd|secret|token|api_key|apikey|authorization|private_key|credential)[a-z_]*"?\s*[:=]\s*)("(?:[^"\\]|\\.)*"|[^\s,}]+)"#,
                )
                .unwrap(),
                "$1\"[REDACTED]\"",
            ),
            // Passwords inside connection URLs: scheme://user:password@host
            (Regex::new(r"([a-z][a-z0-9+.-]*://[^:/@\s]*):[^@\s/]+@").unwrap(), "$1:[REDACTED]@"),
        ]
    })
}

/// Remove secrets from one formatted log line.
pub fn redact(line: &str) -> String {
    patterns().iter().fold(line.to_string(), |acc, (re, with)| {
        re.replace_all(&acc, *with).into_owned()
    })
}

/// Wraps a writer: each formatted event is redacted before it is written.
#[derive(Clone)]
pub struct RedactingMakeWriter<M>(pub M);

pub struct RedactingWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let text = String::from_utf8_lossy(&self.buf);
            self.inner.write_all(redact(&text).as_bytes())?;
            self.buf.clear();
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        // tracing-subscriber makes one writer per event and drops it after writing.
        let _ = self.flush();
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for RedactingMakeWriter<M> {
    type Writer = RedactingWriter<M::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            inner: self.0.make_writer(),
            buf: Vec::with_capacity(256),
        }
    }
}

/// Install the global subscriber: `RUST_LOG` wins over `default_filter`. Logs go
/// to stderr so stdout stays free for what admin commands print.
pub fn init(format: Format, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let writer = RedactingMakeWriter(std::io::stderr);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let result = match format {
        Format::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        Format::Pretty => builder.with_target(false).try_init(),
    };
    // A second init (tests, `dev` calling into `serve`) keeps the first subscriber.
    let _ = result;
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ])
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (e.g. by a test); ours still renders.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_every_kind_of_secret() {
        let cases = [
            ("authorization: Bearer abc.def-123", "abc.def-123"),
            ("key bck_AbCdEfGh_rest0fTheKeyMaterial used", "bck_AbCdEfGh"),
            (
                r#"{"password":"hunter2 with spaces","email":"a@b.c"}"#,
                "hunter2",
            ),
            ("client_secret=s3cr3t other=1", "s3cr3t"),
            ("db postgres://app:pa55word@db:5432/x", "pa55word"),
            ("session bcs_0123456789abcdefghij", "bcs_0123456789"),
            (
                "POST /v1/invitations/bci_0123456789abcdefghij/accept",
                "bci_0123456789",
            ),
        ];
        for (line, secret) in cases {
            let out = redact(line);
            assert!(!out.contains(secret), "{line:?} -> {out:?}");
            assert!(out.contains("[REDACTED]"), "{out}");
        }
        assert_eq!(redact("nothing secret here"), "nothing secret here");
        assert!(redact(r#"{"email":"a@b.c"}"#).contains("a@b.c"));
    }
}
