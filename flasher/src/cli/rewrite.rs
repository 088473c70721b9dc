//! esptool's spellings of commands and options (`write_flash`, `-fs 1MB`, `--flash_size=detect`)
//! rewritten into what the clap definitions take.

use std::ffi::OsString;

use clap::CommandFactory;

use super::Cli;

/// esptool's two-letter short flags and the long options they stand for.
const TWO_LETTER_FLAGS: [(&str, &str); 3] = [
    ("-fs", "--flash-size"),
    ("-fm", "--flash-mode"),
    ("-ff", "--flash-freq"),
];

/// Global options that take a value in the next argument.
const GLOBAL_OPTIONS_WITH_VALUE: [&str; 11] = [
    "-p",
    "--port",
    "-b",
    "--baud",
    "-c",
    "--chip",
    "--before",
    "-a",
    "--after",
    "--stub-file",
    "--stub_file",
];

/// Rewrites esptool spellings into what clap takes: `-fs 1MB` → `--flash-size 1MB`,
/// `--flash_size=detect` → `--flash-size=detect`, `write_flash` → `write-flash`.
/// Nothing after `--` is touched, and only the subcommand word is renamed. A `--port` after
/// the command moves before it: clap would let it replace the ports given before the
/// command instead of joining them.
pub fn normalize_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let subcommands: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|sub| sub.get_name().to_string())
        .collect();
    let mut out = Vec::new();
    let mut args = args.into_iter();
    out.extend(args.next()); // the program name
    let mut seen_subcommand = false;
    let mut value_follows = false;
    // Where the command word is in `out`, and the `--port`s that followed it.
    let mut subcommand_at = None;
    let mut hoisted: Vec<OsString> = Vec::new();
    let mut port_follows = false;
    for arg in args.by_ref() {
        if port_follows {
            port_follows = false;
            hoisted.push(arg);
            continue;
        }
        let Some(text) = arg.to_str() else {
            out.push(arg);
            value_follows = false;
            continue;
        };
        if seen_subcommand && (text == "--port" || text == "-p") {
            hoisted.push(arg);
            port_follows = true;
        } else if seen_subcommand && (text.starts_with("--port=") || is_joined_short_port(text)) {
            hoisted.push(arg);
        } else if value_follows {
            value_follows = false;
            out.push(arg);
        } else if text == "--" {
            out.push(arg);
            break;
        } else if let Some(long) = rewrite_flag(text) {
            value_follows = !seen_subcommand && GLOBAL_OPTIONS_WITH_VALUE.contains(&text);
            out.push(long.into());
        } else if !seen_subcommand && !text.starts_with('-') {
            seen_subcommand = true;
            subcommand_at = Some(out.len());
            let hyphenated = text.replace('_', "-");
            out.push(if subcommands.contains(&hyphenated) {
                hyphenated.into()
            } else {
                arg
            });
        } else {
            value_follows = !seen_subcommand && GLOBAL_OPTIONS_WITH_VALUE.contains(&text);
            out.push(arg);
        }
    }
    out.extend(args);
    if let Some(at) = subcommand_at {
        out.splice(at..at, hoisted);
    }
    out
}

/// `-pPORT` (a short flag with its value joined).
fn is_joined_short_port(text: &str) -> bool {
    text.len() > 2 && text.starts_with("-p") && !text.starts_with("--")
}

/// The clap spelling of an esptool flag, if it differs.
fn rewrite_flag(text: &str) -> Option<String> {
    for (short, long) in TWO_LETTER_FLAGS {
        if text == short {
            return Some(long.to_string());
        }
        if let Some(value) = text
            .strip_prefix(short)
            .and_then(|rest| rest.strip_prefix('='))
        {
            return Some(format!("{long}={value}"));
        }
    }
    let name = text.strip_prefix("--")?;
    let (name, value) = match name.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (name, None),
    };
    if !name.contains('_') {
        return None;
    }
    let name = name.replace('_', "-");
    Some(match value {
        Some(value) => format!("--{name}={value}"),
        None => format!("--{name}"),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn strings(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn rewrites_two_letter_flags_and_underscores() {
        let out = normalize_args(strings(&[
            "esp-flasher",
            "--port",
            "COM5",
            "write_flash",
            "-fs",
            "1MB",
            "-fm=dout",
            "--flash_freq=40m",
            "0x0",
            "my_file.bin",
        ]));
        assert_eq!(
            out,
            strings(&[
                "esp-flasher",
                "--port",
                "COM5",
                "write-flash",
                "--flash-size",
                "1MB",
                "--flash-mode=dout",
                "--flash-freq=40m",
                "0x0",
                "my_file.bin",
            ])
        );
    }

    #[test]
    fn ports_after_the_command_join_those_before_it() {
        let out = normalize_args(strings(&[
            "esp-flasher",
            "-p",
            "COM5",
            "backup",
            "--port",
            "COM6",
            "b-{n}.bin",
            "--port=COM7",
            "-pCOM8",
            "--",
            "--port",
        ]));
        assert_eq!(
            out,
            strings(&[
                "esp-flasher",
                "-p",
                "COM5",
                "--port",
                "COM6",
                "--port=COM7",
                "-pCOM8",
                "backup",
                "b-{n}.bin",
                "--",
                "--port",
            ])
        );
    }

    #[test]
    fn leaves_values_and_arguments_after_double_dash_alone() {
        let out = normalize_args(strings(&[
            "esp-flasher",
            "--port",
            "read_flash",
            "read_flash",
            "0",
            "ALL",
            "--",
            "-fs",
        ]));
        assert_eq!(
            out,
            strings(&[
                "esp-flasher",
                "--port",
                "read_flash",
                "read-flash",
                "0",
                "ALL",
                "--",
                "-fs"
            ])
        );
    }

    #[test]
    fn unknown_subcommand_is_left_for_clap_to_name() {
        let out = normalize_args(strings(&["esp-flasher", "flash_it"]));
        assert_eq!(out, strings(&["esp-flasher", "flash_it"]));
        assert!(Cli::try_parse_from(out).is_err());
    }
}
