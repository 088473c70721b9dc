//! The decoder checked against an oracle: Debian's `xtensa-lx106-elf-objdump` (package
//! `binutils-xtensa-lx106`), whose lx106 configuration is the ESP8266's. Instruction words are
//! written into one raw file per batch and disassembled with one objdump process
//! (`-D -b binary -m xtensa`); for every word, our [`decode`] and its `display` must print the
//! same mnemonic and operands as objdump, or both must call the word invalid.
//!
//! Reading objdump's answers:
//! - objdump prints `.byte 0xNN` where no instruction format fits (op0 14 and 15);
//! - the lx106 opcode tables decode every other unknown encoding as opcode 0, which is `excw`
//!   (their decoder's "not found" value is 0, not -1): so `excw` from objdump means "EXCW or
//!   invalid". The one real EXCW encoding is checked on its own (`excw_is_decoded`);
//! - L32R lines end with the literal's value in parentheses when objdump could read it: that
//!   suffix is dropped. Whitespace is normalised. Nothing else is.
//!
//! Layout of a batch: each word takes a 5-byte slot, its 3 bytes then `ff ff`. objdump decodes
//! 0xff as a 1-byte `.byte` and never takes more than 3 bytes, so whatever the word's bytes
//! decode to, objdump is back in step at the next slot: each slot's line is the word's decoding.
//!
//! There are no documented disagreements: every encoding class agrees.

use proptest::prelude::*;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use xtensa_lx106::{decode, Op};

const OBJDUMP: &str = "xtensa-lx106-elf-objdump";
const SLOT: usize = 5;

/// What objdump printed for one slot: the bytes it took and the instruction text.
struct Line {
    byte_count: usize,
    text: String,
}

fn objdump_missing(detail: &str) -> ! {
    panic!(
        "{OBJDUMP} is needed for the decoder oracle ({detail}): \
         apt-get install -y binutils-xtensa-lx106"
    )
}

fn batch_file() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("xtensa-oracle-{}-{n}.bin", std::process::id()))
}

/// Disassembles `words` (3 bytes each, little-endian) with one objdump run; the line of each slot.
fn objdump(words: &[u32]) -> Vec<Line> {
    let mut bytes = Vec::with_capacity(words.len() * SLOT);
    for word in words {
        bytes.extend_from_slice(&word.to_le_bytes()[..3]);
        bytes.extend_from_slice(&[0xFF, 0xFF]);
    }
    let path = batch_file();
    std::fs::write(&path, &bytes).expect("write the batch file");
    let output = Command::new(OBJDUMP)
        .args(["-D", "-b", "binary", "-m", "xtensa"])
        .arg(&path)
        .output();
    let _ = std::fs::remove_file(&path);
    let output = output.unwrap_or_else(|error| objdump_missing(&error.to_string()));
    if !output.status.success() {
        objdump_missing(&String::from_utf8_lossy(&output.stderr));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut by_address: HashMap<usize, Line> = HashMap::new();
    for line in text.lines() {
        // "   1e:\t3012a1  \tsll\ta1, a2"
        let mut fields = line.splitn(3, '\t');
        let (Some(address), Some(hex), Some(insn)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Some(address) = address.trim().strip_suffix(':') else {
            continue;
        };
        let Ok(address) = usize::from_str_radix(address, 16) else {
            continue;
        };
        if address % SLOT == 0 {
            by_address.insert(
                address,
                Line {
                    byte_count: hex.trim().len() / 2,
                    text: insn.to_string(),
                },
            );
        }
    }
    (0..words.len())
        .map(|slot| {
            by_address.remove(&(slot * SLOT)).unwrap_or_else(|| {
                panic!(
                    "objdump printed no line at slot {slot} (word {:06x})",
                    words[slot]
                )
            })
        })
        .collect()
}

/// Whitespace collapsed; an L32R's " (0x…)" literal value dropped.
fn normalise(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.find(" (0x") {
        Some(at) if text.starts_with("l32r ") && text.ends_with(')') => text[..at].to_string(),
        _ => text,
    }
}

/// Compares our decoder with objdump on `words`, each placed at its slot address; the
/// disagreements, one line each.
fn disagreements(words: &[u32]) -> Vec<String> {
    let lines = objdump(words);
    let mut found = Vec::new();
    for (slot, (word, line)) in words.iter().zip(&lines).enumerate() {
        let pc = (slot * SLOT) as u32;
        let theirs = normalise(&line.text);
        let invalid_for_objdump = theirs.starts_with(".byte") || theirs == "excw";
        let agrees = match decode(*word) {
            Err(_) => invalid_for_objdump,
            Ok(insn) if insn.op() == Op::Excw => theirs == "excw",
            Ok(insn) => {
                normalise(&insn.display(pc).to_string()) == theirs
                    && insn.len() as usize == line.byte_count
            }
        };
        if !agrees {
            let ours = match decode(*word) {
                Ok(insn) => format!("{} ({} bytes)", insn.display(pc), insn.len()),
                Err(_) => "invalid".to_string(),
            };
            found.push(format!(
                "{word:06x} at {pc:#x}: objdump `{theirs}` ({} bytes), ours `{ours}`",
                line.byte_count
            ));
        }
    }
    found
}

fn assert_agree(words: &[u32]) {
    let found = disagreements(words);
    assert!(
        found.is_empty(),
        "{} of {} words disagree with objdump:\n{}",
        found.len(),
        words.len(),
        found
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A small deterministic generator for the sweep's filler fields.
struct XorShift(u32);

impl XorShift {
    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
}

const fn word(op0: u32, t: u32, s: u32, r: u32, op1: u32, op2: u32) -> u32 {
    op2 << 20 | op1 << 16 | r << 12 | s << 8 | t << 4 | op0
}

/// Every op0/op1/op2 class with 32 random fillings of r, s and t; every r/s/t combination
/// (4096 words) of the classes where s and t select instructions or special registers; and
/// every 16-bit density encoding.
fn sweep_words() -> Vec<u32> {
    let mut words = Vec::new();
    let mut random = XorShift(0x2545_F491);
    for op0 in 0..16 {
        for op1 in 0..16 {
            for op2 in 0..16 {
                for _ in 0..32 {
                    let filler = random.next();
                    words.push(word(
                        op0,
                        filler & 15,
                        (filler >> 4) & 15,
                        (filler >> 8) & 15,
                        op1,
                        op2,
                    ));
                }
            }
        }
    }
    // (op1, op2) of op0 = 0 whose r, s, t all matter: ST0, ST1, TLB, RT0, XSR, SRL/SLL/SRA,
    // IMP, RSR, WSR.
    let exhaustive = [
        (0, 0),
        (0, 4),
        (0, 5),
        (0, 6),
        (1, 6),
        (1, 9),
        (1, 10),
        (1, 11),
        (1, 15),
        (3, 0),
        (3, 1),
    ];
    for (op1, op2) in exhaustive {
        for rst in 0..4096 {
            words.push(word(0, rst & 15, (rst >> 4) & 15, rst >> 8, op1, op2));
        }
    }
    for op0 in 8..=13 {
        for rest in 0..4096 {
            words.push(rest << 4 | op0);
        }
    }
    words
}

#[test]
fn every_encoding_class_agrees_with_objdump() {
    let words = sweep_words();
    assert!(words.len() > 190_000);
    assert_agree(&words);
}

#[test]
fn excw_is_decoded() {
    // objdump's `excw` also stands for "invalid", so the oracle cannot tell EXCW apart.
    let insn = decode(0x2080).expect("EXCW decodes");
    assert_eq!(insn.op(), Op::Excw);
    assert_eq!(insn.display(0).to_string(), "excw");
    assert!(
        decode(0x2180).is_err(),
        "SYNC group with s != 0 is reserved"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random 24-bit words, 4096 per case, one objdump run per case.
    #[test]
    fn random_words_agree_with_objdump(words in prop::collection::vec(0u32..1 << 24, 4096)) {
        let found = disagreements(&words);
        prop_assert!(found.is_empty(), "disagreements:\n{}", found.join("\n"));
    }
}
