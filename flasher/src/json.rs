//! `--json`: the one JSON document a run prints on stdout — the command, whether it
//! succeeded, its result (each command's own serde struct, kept by `Output::result`) and, on
//! failure, the error. Human text (connect lines, progress, warnings, the error line) goes to
//! stderr as usual.

use std::io::Write;

use serde::Serialize;
use serde_json::Value;

use crate::cmd::CmdError;

/// The document.
#[derive(Debug, Serialize)]
pub struct Document {
    /// The command as clap names it ("chip-id", "board-info"); null when the command line
    /// did not parse.
    pub command: Option<String>,
    /// True when the command succeeded (exit code 0).
    pub ok: bool,
    /// What the command found; absent when it has no result or failed before having one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Why it failed; absent on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
}

/// A failure, as the error line and its remedy say it.
#[derive(Debug, Serialize)]
pub struct ErrorObject {
    /// "usage" (bad input, nothing was sent: exit 2), "failed" (exit 1) or "interrupted"
    /// (Ctrl-C: exit 130).
    pub kind: &'static str,
    /// The one-line problem, without the "error: " prefix.
    pub message: String,
    /// What to do about it, when known.
    pub remedy: Option<String>,
    /// The process's exit code.
    pub exit_code: u8,
}

impl ErrorObject {
    /// A usage error found before any command ran (clap's, or a bad environment variable).
    pub fn usage(message: &str) -> ErrorObject {
        ErrorObject {
            kind: "usage",
            message: message
                .strip_prefix("error: ")
                .unwrap_or(message)
                .to_string(),
            remedy: None,
            exit_code: 2,
        }
    }
}

impl From<&CmdError> for ErrorObject {
    fn from(error: &CmdError) -> ErrorObject {
        match error {
            CmdError::Usage(message) => ErrorObject::usage(message),
            CmdError::Failed { message, remedy } => ErrorObject {
                kind: "failed",
                message: message.clone(),
                remedy: remedy.clone(),
                exit_code: 1,
            },
        }
    }
}

/// Serialises a duration in seconds to the millisecond, without float noise
/// (`1.6153800870000001` becomes `1.615`).
pub fn rounded_seconds<S: serde::Serializer>(
    seconds: &f64,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64((seconds * 1000.0).round() / 1000.0)
}

impl Document {
    /// Prints the document on stdout.
    pub fn print(&self) {
        let text = serde_json::to_string_pretty(self).expect("the document serialises");
        // A reader that closed stdout (`| head -c 0`) wants nothing more; the exit code stays.
        let _ = writeln!(std::io::stdout(), "{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_carries_kind_message_remedy_and_exit_code() {
        let error = CmdError::failed("no answer", "Check the cable.");
        let document = Document {
            command: Some("chip-id".into()),
            ok: false,
            result: None,
            error: Some(ErrorObject::from(&error)),
        };
        let value = serde_json::to_value(&document).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "command": "chip-id",
                "ok": false,
                "error": {"kind": "failed", "message": "no answer", "remedy": "Check the cable.", "exit_code": 1}
            })
        );
        let usage = ErrorObject::from(&CmdError::Usage("error: bad port".into()));
        assert_eq!(
            (usage.kind, usage.message.as_str(), usage.exit_code),
            ("usage", "bad port", 2)
        );
    }
}
