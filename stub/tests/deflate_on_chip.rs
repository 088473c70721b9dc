//! The stub's compressor (`c/deflate.c`) as the stub's own build has it, executed on the
//! virtual ESP8266's CPU: `deflate_block` is called straight from the linked stub with its
//! state and buffers in the stub's `.bss` (the stub itself is not started), and the stream it
//! leaves must inflate with flate2 to the input. Counts the cycles it takes at one cycle per
//! instruction (the interpreter's timing model; the ROM's memset, which it calls, is free
//! there), so the compressor's speed is measured on the code the chip runs.

use std::io::Read;

use esp_emulator::boot::ResetCause;
use esp_emulator::device::BootMode;
use esp_emulator::flash::SpiFlash;
use esp_emulator::machine::{Machine, MachineConfig, ROM};
use esp_emulator::rom_functions::{self, RomOutcome, RomState};
use esp_emulator::sample_firmware::sonoff_like_flash;
use lx106_programs::ElfProgram;
use xtensa_lx106::{sr, Bus, Cpu, Stop};

/// The stack grows down from here, below the ROM's data.
const STACK_TOP: u32 = 0x3FFF_C000;
/// The return address `deflate_block` gets: in the trapped ROM range, at no ROM function.
const EXIT_ADDRESS: u32 = 0x4000_FFF0;
/// More than `struct deflater` takes, so the buffers after it are clear of it.
const STATE_ROOM: u32 = 24 * 1024;
/// The largest input and output these tests place.
const BUFFER_ROOM: u32 = 16 * 1024;
/// A call that has not returned after this many cycles is stuck (some 2000 per byte).
const CYCLE_LIMIT: u64 = 40_000_000;
const SECTOR: usize = 4096;

struct Chip {
    cpu: Cpu,
    machine: Machine,
    rom: RomState,
    entry: u32,
    state: u32,
    input: u32,
    output: u32,
}

impl Chip {
    fn new(elf: &ElfProgram) -> Chip {
        let flash = SpiFlash::blank(1 << 20).expect("1 MiB is a supported flash size");
        let mut machine = Machine::new(
            MachineConfig {
                efuses: [0; 4],
                boot: BootMode::Download,
            },
            flash,
        );
        for segment in &elf.segments {
            machine
                .write_ram(segment.address, &segment.data)
                .expect("the stub's segments are in RAM");
        }
        let mut cpu = Cpu::new();
        cpu.set_trap_range(ROM);
        let bss = (elf.symbol("_bss_start").expect("the stub has a .bss") + 15) & !15;
        assert!(bss + STATE_ROOM + 2 * BUFFER_ROOM + 1024 < STACK_TOP - 4096);
        Chip {
            cpu,
            machine,
            rom: RomState::new(ResetCause::PowerOn),
            entry: elf
                .symbol("deflate_block")
                .expect("the stub links deflate.c"),
            state: bss,
            input: bss + STATE_ROOM,
            output: bss + STATE_ROOM + BUFFER_ROOM,
        }
    }

    /// Calls `deflate_block` on `data` with an output buffer of `capacity` bytes; returns the
    /// stream (None when it does not fit), the cycles it took, and whether the call wrote
    /// into the guard bytes after the output buffer.
    fn deflate(&mut self, data: &[u8], capacity: u32) -> (Option<Vec<u8>>, u64) {
        const GUARD: [u8; 64] = [0xA5; 64];
        self.machine.write_ram(self.input, data).unwrap();
        self.machine
            .write_ram(self.output + capacity, &GUARD)
            .unwrap();
        self.cpu.set_ar(0, EXIT_ADDRESS);
        self.cpu.set_ar(1, STACK_TOP);
        self.cpu.set_ar(2, self.state);
        self.cpu.set_ar(3, self.input);
        self.cpu.set_ar(4, data.len() as u32);
        self.cpu.set_ar(5, self.output);
        self.cpu.set_ar(6, capacity);
        assert!(self.cpu.write_sr(sr::PS, 0x20));
        self.cpu.set_pc(self.entry);
        let start = self.cpu.cycles();
        loop {
            assert!(
                self.cpu.cycles() - start < CYCLE_LIMIT,
                "deflate_block is stuck at {:#010x}",
                self.cpu.pc()
            );
            match self.cpu.run(&mut self.machine, 1_000_000) {
                Stop::Budget => {}
                Stop::Trap { pc } if pc == EXIT_ADDRESS => break,
                Stop::Trap { pc } => {
                    match rom_functions::call(&mut self.cpu, &mut self.machine, &mut self.rom) {
                        RomOutcome::Returned => {}
                        other => panic!("the ROM call at {pc:#010x} did not return: {other:?}"),
                    }
                }
                Stop::Waiting => panic!("WAITI in deflate_block"),
            }
        }
        let cycles = self.cpu.cycles() - start;
        let length = self.cpu.ar(2);
        assert!(length <= capacity, "{length} bytes out of {capacity}");
        let mut guard = [0u8; 64];
        for (i, byte) in guard.iter_mut().enumerate() {
            *byte = self.read8(self.output + capacity + i as u32);
        }
        assert_eq!(guard, GUARD, "deflate_block wrote past its output buffer");
        let stream =
            (length > 0).then(|| (0..length).map(|i| self.read8(self.output + i)).collect());
        (stream, cycles)
    }

    fn read8(&mut self, address: u32) -> u8 {
        let word = self.machine.read32(address & !3).unwrap();
        (word >> (8 * (address & 3))) as u8
    }
}

fn stub_elf() -> ElfProgram {
    lx106_programs::Builder::new()
        .stub()
        .unwrap_or_else(|error| {
            panic!(
                "building the stub failed: {error}\n(install the toolchain with: {})",
                lx106_programs::TOOLCHAIN_INSTALL_COMMAND
            )
        })
}

fn inflate(stream: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(stream)
        .read_to_end(&mut out)
        .expect("the stream inflates");
    out
}

/// Compresses `sectors` of the same kind one after the other; returns (input bytes, output
/// bytes with a raw sector counted whole, cycles).
fn compress_sectors<'a>(
    chip: &mut Chip,
    sectors: impl Iterator<Item = &'a [u8]>,
) -> (usize, usize, u64) {
    let (mut input, mut output, mut cycles) = (0, 0, 0);
    for sector in sectors {
        let (stream, spent) = chip.deflate(sector, sector.len() as u32);
        if let Some(stream) = &stream {
            assert!(
                inflate(stream) == sector,
                "a sector inflates to something else"
            );
        }
        input += sector.len();
        output += stream.map_or(sector.len(), |stream| stream.len());
        cycles += spent;
    }
    (input, output, cycles)
}

/// The compressor's speed on the chip, for the README's figures: firmware-like sectors of the
/// sample Sonoff flash, erased ones, and random ones (which come back raw). Run with
/// `--nocapture` to see them. The bounds are some 25% above what was measured, so a change
/// that slows the compressor down much fails here.
#[test]
fn sectors_compress_on_the_chip_at_a_measured_speed() {
    let elf = stub_elf();
    let mut chip = Chip::new(&elf);
    let flash = sonoff_like_flash(1 << 20, 1);
    let random: Vec<u8> = {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        (0..16 * SECTOR)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    };
    let erased = vec![0xFF; SECTOR];
    let cases: [(&str, Vec<&[u8]>, f64); 3] = [
        (
            "firmware",
            flash[..0x7_0000].chunks(SECTOR).collect(),
            190.0,
        ),
        ("erased", vec![erased.as_slice(); 4], 50.0),
        ("random", random.chunks(SECTOR).collect(), 200.0),
    ];
    for (name, sectors, bound) in cases {
        let (input, output, cycles) = compress_sectors(&mut chip, sectors.into_iter());
        let per_byte = cycles as f64 / input as f64;
        println!(
            "{name}: {input} -> {output} bytes ({:.3}), {per_byte:.1} cycles/byte, \
             {:.2} MB/s at 80 MHz",
            output as f64 / input as f64,
            80.0 / per_byte
        );
        assert!(per_byte < bound, "{name}: {per_byte:.1} cycles per byte");
    }
}

/// A 16 KiB block (several deflate blocks, each with its own codes) on the chip.
#[test]
fn a_16_kib_block_compresses_on_the_chip() {
    let elf = stub_elf();
    let mut chip = Chip::new(&elf);
    let flash = sonoff_like_flash(1 << 20, 1);
    let block = &flash[0x2_0000..0x2_0000 + BUFFER_ROOM as usize];
    let (stream, _) = chip.deflate(block, BUFFER_ROOM);
    assert_eq!(inflate(&stream.expect("firmware compresses")), block);
}
