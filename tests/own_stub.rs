//! flashlab's own stub against esptool 5.6.0's (esp-flasher-stub), both executed on the
//! virtual chip: the same random operations through esp-flasher's library (compressed and
//! plain writes, erases, reads, digests) give the same results and leave the same flash.
//! esptool's stub comes from the esptool the tests install; it is never committed.

use esp_emulator::device::{CodeExecution, Device, DeviceConfig};
use esp_emulator::flash::{FlashOptions, SpiFlash};
use esp_flasher::{
    BeforeReset, ConnectOptions, EmulatorTransport, Flasher, HeaderParams, Region, Silent,
    StubImage, WriteOptions,
};
use proptest::prelude::*;

use crate::util::{esptool, pseudo_random};

const FLASH_SIZE: u32 = 256 * 1024;
const SECTOR: u32 = 0x1000;

#[derive(Debug, Clone)]
enum Op {
    Write {
        address: u32,
        len: u32,
        seed: u64,
        compress: bool,
    },
    EraseRegion {
        address: u32,
        len: u32,
    },
    Read {
        address: u32,
        len: u32,
    },
    Md5 {
        address: u32,
        len: u32,
    },
}

/// What an operation gave the host, compared between the stubs.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Done,
    Bytes(Vec<u8>),
    Failed(String),
}

fn connect(stub: StubImage, contents: &[u8]) -> Flasher<EmulatorTransport> {
    let flash = SpiFlash::new(contents.to_vec(), FlashOptions::default()).expect("a flash size");
    let device = Device::new(
        DeviceConfig {
            execution: CodeExecution::Run,
            ..DeviceConfig::default()
        },
        flash,
    );
    let options = ConnectOptions {
        before: BeforeReset::NoReset,
        stub: Some(stub),
        ..ConnectOptions::default()
    };
    Flasher::connect(EmulatorTransport::new(device), &options, Box::new(Silent))
        .expect("connects and starts the stub")
}

fn apply(flasher: &mut Flasher<EmulatorTransport>, op: &Op) -> Outcome {
    let result = match *op {
        Op::Write {
            address,
            len,
            seed,
            compress,
        } => {
            let region = Region {
                address,
                data: pseudo_random(len as usize, seed),
            };
            let options = WriteOptions {
                compress,
                verify: true,
                skip_unchanged: false,
                header: HeaderParams::default(),
            };
            flasher
                .write_flash(&[region], &options)
                .map(|_| Outcome::Done)
        }
        Op::EraseRegion { address, len } => {
            flasher.erase_region(address, len).map(|()| Outcome::Done)
        }
        Op::Read { address, len } => flasher.read_flash(address, len).map(Outcome::Bytes),
        Op::Md5 { address, len } => flasher
            .flash_md5(address, len)
            .map(|digest| Outcome::Bytes(digest.to_vec())),
    };
    result.unwrap_or_else(|error| Outcome::Failed(error.to_string()))
}

fn op() -> impl Strategy<Value = Op> {
    let word_address = (0..FLASH_SIZE / 4).prop_map(|word| word * 4);
    let sectors = (0..FLASH_SIZE / SECTOR, 1..=4u32);
    prop_oneof![
        3 => (word_address.clone(), 1..0x6000u32, any::<u64>(), any::<bool>()).prop_map(
            |(address, len, seed, compress)| Op::Write {
                address,
                len: len.min(FLASH_SIZE - address).max(1),
                seed,
                compress,
            }
        ),
        1 => sectors.prop_map(|(first, count)| {
            let count = count.min(FLASH_SIZE / SECTOR - first);
            Op::EraseRegion {
                address: first * SECTOR,
                len: count * SECTOR,
            }
        }),
        1 => (0..FLASH_SIZE, 1..0x3000u32).prop_map(|(address, len)| Op::Read {
            address,
            len: len.min(FLASH_SIZE - address).max(1),
        }),
        1 => (0..FLASH_SIZE, 0..0x8000u32).prop_map(|(address, len)| Op::Md5 {
            address,
            len: len.min(FLASH_SIZE - address),
        }),
    ]
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(24)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn own_stub_and_esptools_stub_leave_the_same_flash(
        seed in any::<u64>(),
        ops in proptest::collection::vec(op(), 1..=6),
    ) {
        let contents = pseudo_random(FLASH_SIZE as usize, seed);
        let esptool_stub = StubImage::load(&esptool("5.6.0").stub_json(2)).expect("esptool's stub");
        let mut ours = connect(StubImage::flashlab(), &contents);
        let mut theirs = connect(esptool_stub, &contents);
        for (step, op) in ops.iter().enumerate() {
            let our_outcome = apply(&mut ours, op);
            let their_outcome = apply(&mut theirs, op);
            prop_assert_eq!(&our_outcome, &their_outcome, "step {} {:?}", step, op);
            prop_assert!(
                ours.transport().flash_contents() == theirs.transport().flash_contents(),
                "the flashes differ after step {} {:?}", step, op
            );
        }
    }
}

/// Stepping down 3M, 2M, 1.5M, 921600 left the chip 6% above 921600, where nothing got
/// through: the stub scaled the divider in force, and each step's rounding carried into the
/// next. Every rate must now get the divider a direct switch from the loader's rate gives.
#[test]
fn regression_stepping_the_baud_down_drifted_the_divider() {
    use esp_protocol::uart::{reg, CLKDIV_MASK, UART0_BASE};
    let divider_after = |steps: &[u32]| {
        let mut flasher = connect(StubImage::flashlab(), &[0xFF; FLASH_SIZE as usize]);
        for &baud in steps {
            flasher
                .change_baud(baud)
                .expect("the stub changes the rate");
        }
        flasher
            .read_reg(UART0_BASE + reg::CLKDIV)
            .expect("CLKDIV reads back")
            & CLKDIV_MASK
    };
    let ladder = [3_000_000, 2_000_000, 1_500_000, 921_600, 460_800];
    for end in 1..=ladder.len() {
        let target = ladder[end - 1];
        assert_eq!(
            divider_after(&ladder[..end]),
            divider_after(&[target]),
            "the divider for {target} after stepping down through {:?}",
            &ladder[..end]
        );
    }
}

/// What a broken or hostile host may send.
#[derive(Debug, Clone)]
enum HostileInput {
    /// Bytes with no framing at all (and whatever 0xC0 they happen to hold).
    Noise(Vec<u8>),
    /// A request with a random opcode, direction byte, length field, checksum and payload,
    /// SLIP-framed as the protocol wants.
    Request {
        direction: u8,
        opcode: u8,
        length_field: Option<u16>,
        checksum: u32,
        payload: Vec<u8>,
    },
    /// A frame longer than any request the stub takes.
    Oversized(usize),
}

/// Opcodes that change the chip by design (writes, erases, RAM, registers, rate, jumps,
/// resets) are left out: the test is about what the stub does with input it must refuse.
const CHANGES_THE_CHIP: [u8; 13] = [
    0x02, 0x04, 0x05, 0x06, 0x07, 0x09, 0x0A, 0x0F, 0x10, 0x12, 0xD0, 0xD1, 0xD3,
];

fn hostile_input() -> impl Strategy<Value = HostileInput> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 1..600).prop_map(HostileInput::Noise),
        (
            prop_oneof![Just(0u8), any::<u8>()],
            any::<u8>().prop_filter("changes the chip", |op| !CHANGES_THE_CHIP.contains(op)),
            proptest::option::of(any::<u16>()),
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(direction, opcode, length_field, checksum, payload)| {
                HostileInput::Request {
                    direction,
                    opcode,
                    length_field,
                    checksum,
                    payload,
                }
            }),
        (0x4000usize..0x6000).prop_map(HostileInput::Oversized),
    ]
}

fn hostile_bytes(input: &HostileInput) -> Vec<u8> {
    match input {
        HostileInput::Noise(bytes) => bytes.clone(),
        HostileInput::Request {
            direction,
            opcode,
            length_field,
            checksum,
            payload,
        } => {
            let length = length_field.unwrap_or(payload.len() as u16);
            let mut frame = vec![*direction, *opcode];
            frame.extend_from_slice(&length.to_le_bytes());
            frame.extend_from_slice(&checksum.to_le_bytes());
            frame.extend_from_slice(payload);
            esp_protocol::slip::encode_to_vec(&frame)
        }
        HostileInput::Oversized(len) => esp_protocol::slip::encode_to_vec(&vec![0x5A; *len]),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Corrupt frames, wrong lengths and checksums, data blocks with no write begun, reads
    /// and digests past the flash, unknown opcodes, noise and oversized frames: the stub
    /// still answers the next request (a new request ends whatever it waited for), and not a
    /// byte of the flash changed.
    #[test]
    fn hostile_input_never_hangs_flashlabs_stub_nor_touches_the_flash(
        seed in any::<u64>(),
        inputs in proptest::collection::vec(hostile_input(), 1..12),
    ) {
        use esp_flasher::Transport;
        let contents = pseudo_random(FLASH_SIZE as usize, seed);
        let mut flasher = connect(StubImage::flashlab(), &contents);
        for input in &inputs {
            flasher.transport_mut().write_all(&hostile_bytes(input)).expect("the link takes bytes");
        }
        // The first request may only end a READ_FLASH that waits for acknowledgements.
        let answered = (0..3).any(|_| match flasher.flash_md5(0, SECTOR) {
            Ok(_) | Err(esp_flasher::Error::Device { .. }) => true,
            Err(_) => false,
        });
        prop_assert!(answered, "the stub stopped answering after {:?}", inputs);
        prop_assert!(
            flasher.transport().flash_contents() == contents,
            "the flash changed after {:?}", inputs
        );
    }
}
