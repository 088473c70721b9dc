//! The end of a many-board run: one row per board (port, chip, MAC, flash size, result,
//! time), the failures with their explanation and remedy, and the same as one JSON document
//! for `--json`.

use std::fmt::Write as _;
use std::path::PathBuf;

use esp_flasher::chip::format_mac;
use esp_protocol::flash_params::size_name;
use serde::Serialize;

use crate::cmd::CmdError;
use crate::output::BoardFacts;

/// How one board's run ended.
#[derive(Debug)]
pub struct BoardOutcome {
    /// Its place in the `--port` order, from 1.
    pub n: usize,
    /// Its port as given.
    pub port: String,
    /// What its session found.
    pub facts: BoardFacts,
    /// Its command's result.
    pub result: Result<(), CmdError>,
    /// Wall seconds from its start to its end.
    pub seconds: f64,
}

/// `--json`'s document: `{"boards": [...], "succeeded": N, "failed": N, "seconds": S}`.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// One entry per board, in `--port` order.
    pub boards: Vec<BoardSummary>,
    /// Boards whose command succeeded.
    pub succeeded: usize,
    /// Boards whose command failed.
    pub failed: usize,
    /// Wall seconds of the whole run.
    pub seconds: f64,
}

/// One board in `--json`'s document.
#[derive(Debug, Serialize)]
pub struct BoardSummary {
    /// Place in the `--port` order, from 1.
    pub n: usize,
    /// The port as given.
    pub port: String,
    /// "ESP8266EX", "ESP8285H16"...; null if it never answered.
    pub chip: Option<String>,
    /// "aa:bb:cc:dd:ee:ff"; null if it never answered.
    pub mac: Option<String>,
    /// Bytes, from the flash's JEDEC ID; null if not found.
    pub flash_size: Option<u32>,
    /// "ok" or "failed".
    pub result: &'static str,
    /// The one-line explanation of a failure; null on success.
    pub error: Option<String>,
    /// What to do about it; null when there is nothing to say.
    pub remedy: Option<String>,
    /// Wall seconds of this board's run.
    pub seconds: f64,
    /// The file the command wrote for this board (templates expanded); null if none.
    pub file: Option<PathBuf>,
}

impl Summary {
    /// The summary of `outcomes` (in `--port` order) after `seconds` of run.
    pub fn new(outcomes: &[BoardOutcome], seconds: f64) -> Summary {
        let boards: Vec<BoardSummary> = outcomes.iter().map(BoardSummary::new).collect();
        let failed = boards.iter().filter(|board| board.result != "ok").count();
        Summary {
            succeeded: boards.len() - failed,
            failed,
            boards,
            seconds: round_tenths(seconds),
        }
    }

    /// The table and the failures, for people.
    pub fn table(&self) -> String {
        let header = ["#", "port", "chip", "MAC", "flash", "result", "time"];
        let rows: Vec<[String; 7]> = self
            .boards
            .iter()
            .map(|board| {
                [
                    board.n.to_string(),
                    board.port.clone(),
                    board.chip.clone().unwrap_or_else(|| "-".into()),
                    board.mac.clone().unwrap_or_else(|| "-".into()),
                    board
                        .flash_size
                        .map_or_else(|| "-".into(), |size| size_name(size.into())),
                    board.result.to_string(),
                    format!("{:.1}s", board.seconds),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut text = format!(
            "Summary: {} of {} boards succeeded in {:.1} s.\n",
            self.succeeded,
            self.boards.len(),
            self.seconds
        );
        let header = header.map(str::to_string);
        for row in std::iter::once(&header).chain(&rows) {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            let _ = writeln!(text, "  {}", cells.join("  ").trim_end());
        }
        for board in self.boards.iter().filter(|board| board.result != "ok") {
            let _ = writeln!(
                text,
                "Failed on {}: {}",
                board.port,
                board.error.as_deref().unwrap_or("")
            );
            if let Some(remedy) = &board.remedy {
                let _ = writeln!(text, "  {remedy}");
            }
        }
        text
    }
}

impl BoardSummary {
    fn new(outcome: &BoardOutcome) -> BoardSummary {
        let (result, error, remedy) = match &outcome.result {
            Ok(()) => ("ok", None, None),
            Err(CmdError::Usage(message)) => ("failed", Some(message.clone()), None),
            Err(CmdError::Failed { message, remedy }) => {
                ("failed", Some(message.clone()), remedy.clone())
            }
        };
        BoardSummary {
            n: outcome.n,
            port: outcome.port.clone(),
            chip: outcome.facts.chip.clone(),
            mac: outcome.facts.mac.as_ref().map(format_mac),
            flash_size: outcome.facts.flash_size,
            result,
            error,
            remedy,
            seconds: round_tenths(outcome.seconds),
            file: outcome.facts.file.clone(),
        }
    }
}

/// Seconds to a tenth, as the table shows them.
fn round_tenths(seconds: f64) -> f64 {
    (seconds * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(n: usize, port: &str, result: Result<(), CmdError>) -> BoardOutcome {
        BoardOutcome {
            n,
            port: port.into(),
            facts: BoardFacts {
                chip: Some("ESP8266EX".into()),
                mac: Some([0x18, 0xfe, 0x34, 0, 0, n as u8]),
                flash_size: Some(1 << 20),
                file: Some(PathBuf::from(format!("b-{n}.bin"))),
            },
            result,
            seconds: 4.04 + n as f64,
        }
    }

    #[test]
    fn table_lists_every_board_and_explains_the_failures() {
        let outcomes = [
            outcome(1, "emu:1MB,seed=1", Ok(())),
            outcome(
                2,
                "/dev/ttyUSB7",
                Err(CmdError::failed(
                    "the chip stopped answering",
                    "Check the cable.",
                )),
            ),
        ];
        let summary = Summary::new(&outcomes, 7.26);
        assert_eq!((summary.succeeded, summary.failed), (1, 1));
        let table = summary.table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "Summary: 1 of 2 boards succeeded in 7.3 s.");
        assert_eq!(
            lines[1],
            "  #  port            chip       MAC                flash  result  time"
        );
        assert_eq!(
            lines[2],
            "  1  emu:1MB,seed=1  ESP8266EX  18:fe:34:00:00:01  1MB    ok      5.0s"
        );
        assert_eq!(
            lines[3],
            "  2  /dev/ttyUSB7    ESP8266EX  18:fe:34:00:00:02  1MB    failed  6.0s"
        );
        assert_eq!(
            lines[4],
            "Failed on /dev/ttyUSB7: the chip stopped answering"
        );
        assert_eq!(lines[5], "  Check the cable.");
        assert_eq!(lines.len(), 6);
    }

    #[test]
    fn json_has_the_documented_fields() {
        let outcomes = [
            outcome(1, "COM3", Ok(())),
            BoardOutcome {
                facts: BoardFacts::default(),
                ..outcome(2, "COM4", Err(CmdError::Usage("bad".into())))
            },
        ];
        let json = serde_json::to_value(Summary::new(&outcomes, 6.0)).unwrap();
        let first = &json["boards"][0];
        assert_eq!(first["port"], "COM3");
        assert_eq!(first["chip"], "ESP8266EX");
        assert_eq!(first["mac"], "18:fe:34:00:00:01");
        assert_eq!(first["flash_size"], 1 << 20);
        assert_eq!(first["result"], "ok");
        assert!(first["error"].is_null() && first["remedy"].is_null());
        assert_eq!(first["seconds"], 5.0);
        assert_eq!(first["file"], "b-1.bin");
        let second = &json["boards"][1];
        assert_eq!(second["result"], "failed");
        assert_eq!(second["error"], "bad");
        assert!(second["mac"].is_null() && second["flash_size"].is_null());
        assert_eq!(
            (json["succeeded"].as_u64(), json["failed"].as_u64()),
            (Some(1), Some(1))
        );
    }
}
