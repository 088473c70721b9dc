//! `cargo bench -p xtensa-lx106 --bench interpreter`: the interpreter's speed in millions of
//! instructions per second on a realistic loop (a program that prints, not a timed test).
//!
//! The program is a bitwise CRC-32 over 256 bytes of DRAM followed by a CALL0 to a 64-word copy
//! loop, forever: loads and stores of every width the loop needs, narrow and wide
//! instructions, taken and untaken branches, L32R, a call and a return. Its bytes were
//! assembled by `xtensa-lx106-elf-as` from this source (linked at 0x40100000):
//!
//! ```text
//! data_addr: .word 0x3ffe8000
//! poly:      .word 0xedb88320
//! _start:    movi a2, 0
//! outer:     l32r a3, data_addr
//!            movi a4, 256
//!            movi a5, -1
//!            l32r a8, poly
//! byte_loop: l8ui a6, a3, 0
//!            xor a5, a5, a6
//!            movi a7, 8
//! bit_loop:  extui a9, a5, 0, 1
//!            srli a5, a5, 1
//!            beqz a9, 1f
//!            xor a5, a5, a8
//! 1:         addi a7, a7, -1
//!            bnez a7, bit_loop
//!            addi a3, a3, 1
//!            addi a4, a4, -1
//!            bnez a4, byte_loop
//!            s32i a5, a1, 0
//!            call0 copy
//!            addi a2, a2, 1
//!            j outer
//!            .align 4
//! copy:      l32r a10, data_addr
//!            addmi a11, a10, 1024
//!            movi a12, 64
//! 2:         l32i a13, a10, 0
//!            s32i a13, a11, 0
//!            addi a10, a10, 4
//!            addi a11, a11, 4
//!            addi a12, a12, -1
//!            bnez a12, 2b
//!            ret
//! ```
//!
//! The bus is what an emulator's would be: address-range checks in front of two RAM arrays.

use std::time::Instant;
use xtensa_lx106::{Bus, BusFault, Cpu, Stop};

const IRAM: u32 = 0x4010_0000;
const DRAM: u32 = 0x3FFE_8000;
const START: u32 = IRAM + 8;

const PROGRAM: [u8; 91] = [
    0x00, 0x80, 0xfe, 0x3f, 0x20, 0x83, 0xb8, 0xed, 0x0c, 0x02, 0x31, 0xfd, 0xff, 0x42, 0xa1, 0x00,
    0x7c, 0xf5, 0x81, 0xfc, 0xff, 0x62, 0x03, 0x00, 0x60, 0x55, 0x30, 0x0c, 0x87, 0x50, 0x90, 0x04,
    0x50, 0x51, 0x41, 0x8c, 0x19, 0x80, 0x55, 0x30, 0x72, 0xc7, 0xff, 0x56, 0xe7, 0xfe, 0x32, 0xc3,
    0x01, 0x42, 0xc4, 0xff, 0x56, 0xd4, 0xfd, 0x59, 0x01, 0x85, 0x00, 0x00, 0x1b, 0x22, 0x06, 0xf2,
    0xff, 0x00, 0x00, 0x00, 0xa1, 0xef, 0xff, 0xb2, 0xda, 0x04, 0x4c, 0x0c, 0xd8, 0x0a, 0xd9, 0x0b,
    0x4b, 0xaa, 0x4b, 0xbb, 0x0b, 0xcc, 0x56, 0x2c, 0xff, 0x0d, 0xf0,
];

struct Memory {
    iram: Vec<u8>,
    dram: Vec<u8>,
}

impl Memory {
    fn slice(&mut self, address: u32, len: usize) -> Result<&mut [u8], BusFault> {
        let (base, memory) = match address {
            IRAM..=0x4010_FFFF => (IRAM, &mut self.iram),
            DRAM..=0x3FFF_FFFF => (DRAM, &mut self.dram),
            _ => return Err(BusFault { address }),
        };
        let start = (address - base) as usize;
        memory
            .get_mut(start..start + len)
            .ok_or(BusFault { address })
    }
}

impl Bus for Memory {
    fn read8(&mut self, address: u32) -> Result<u8, BusFault> {
        Ok(self.slice(address, 1)?[0])
    }
    fn read16(&mut self, address: u32) -> Result<u16, BusFault> {
        let bytes = self.slice(address, 2)?;
        Ok(u16::from_le_bytes([bytes[0], bytes[1]]))
    }
    fn read32(&mut self, address: u32) -> Result<u32, BusFault> {
        let bytes = self.slice(address, 4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
    fn write8(&mut self, address: u32, value: u8) -> Result<(), BusFault> {
        self.slice(address, 1)?[0] = value;
        Ok(())
    }
    fn write16(&mut self, address: u32, value: u16) -> Result<(), BusFault> {
        self.slice(address, 2)?
            .copy_from_slice(&value.to_le_bytes());
        Ok(())
    }
    fn write32(&mut self, address: u32, value: u32) -> Result<(), BusFault> {
        self.slice(address, 4)?
            .copy_from_slice(&value.to_le_bytes());
        Ok(())
    }
}

/// The reflected CRC-32 register after `data`, without the final inversion (as the program).
fn crc_register(data: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    crc
}

fn main() {
    let mut memory = Memory {
        iram: vec![0; 0x1_0000],
        dram: vec![0; 0x1_8000],
    };
    memory.iram[..PROGRAM.len()].copy_from_slice(&PROGRAM);
    for (i, byte) in memory.dram[..256].iter_mut().enumerate() {
        *byte = (i as u8).wrapping_mul(37).wrapping_add(11);
    }
    let expected_crc = crc_register(&memory.dram[..256]);

    let mut cpu = Cpu::new();
    cpu.set_trap_range(0x4000_0000..0x4001_0000);
    cpu.set_pc(START);
    cpu.set_ar(1, DRAM + 0x8000);

    // Warm up (and check the program computes what it should).
    let stop = cpu.run(&mut memory, 1_000_000);
    assert_eq!(
        stop,
        Stop::Budget,
        "the benchmark program stopped: {stop:?}"
    );
    assert_eq!(
        memory.read32(DRAM + 0x8000),
        Ok(expected_crc),
        "CRC mismatch"
    );

    const INSTRUCTIONS: u64 = 400_000_000;
    let mut best_wall = 0.0f64;
    let mut best_on_cpu: Option<f64> = None;
    for _ in 0..3 {
        let retired = cpu.instructions_retired();
        let on_cpu = thread_cpu_time();
        let started = Instant::now();
        let stop = cpu.run(&mut memory, INSTRUCTIONS);
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!(stop, Stop::Budget);
        let millions = (cpu.instructions_retired() - retired) as f64 / 1e6;
        best_wall = best_wall.max(millions / elapsed);
        if let (Some(before), Some(after)) = (on_cpu, thread_cpu_time()) {
            let mips = millions / (after - before);
            best_on_cpu = Some(best_on_cpu.map_or(mips, |best| best.max(mips)));
        }
    }
    let on_cpu = best_on_cpu.map_or(String::new(), |mips| format!(", {mips:.0} MIPS on-CPU"));
    println!(
        "interpreter: {best_wall:.0} MIPS wall-clock{on_cpu} (best of 3 runs of {}M instructions; \
         CRC + copy loop, {} outer iterations)",
        INSTRUCTIONS / 1_000_000,
        cpu.ar(2)
    );
}

/// Seconds this thread has run on a CPU (Linux's schedstat), so a busy machine that takes the
/// CPU away does not count against the interpreter; `None` elsewhere.
fn thread_cpu_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanoseconds: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(nanoseconds as f64 / 1e9)
}
