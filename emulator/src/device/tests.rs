//! Tests of the device core through its byte interface, with a small in-test host.

use std::time::Duration;

use esp_protocol::packet::{
    encode_read_ack, BeginParams, Command, DataBlock, RegisterWrite, Response, SpiParams,
};
use esp_protocol::slip::{self, SlipDecoder, SlipEvent};
use esp_protocol::status::{ErrorCode, Status};
use md5::{Digest, Md5};

use super::*;
use crate::flash::{FlashOptions, SpiFlash};

const MIB: usize = 1 << 20;
const V1_TEXT_START: u32 = 0x4010_D000;
const V2_TEXT_START: u32 = 0x4010_C500;
const V2_ENTRY: u32 = 0x4010_C504;

/// A host that speaks the protocol to a device in memory, at time zero unless told.
struct Host {
    device: Device,
    decoder: SlipDecoder,
    now: Duration,
}

impl Host {
    /// These tests cover the ROM loader and the behavioural stub model (uploads here are
    /// no code); executed code is tested with real programs in `tests/`.
    fn new(config: DeviceConfig, flash: SpiFlash) -> Host {
        let config = DeviceConfig {
            execution: CodeExecution::StubModel,
            ..config
        };
        Host {
            device: Device::new(config, flash),
            decoder: SlipDecoder::new(),
            now: Duration::ZERO,
        }
    }

    fn with_flash(flash: SpiFlash) -> Host {
        Host::new(DeviceConfig::default(), flash)
    }

    fn blank() -> Host {
        Host::with_flash(SpiFlash::blank(4 * MIB).unwrap())
    }

    fn send(&mut self, command: &Command) {
        self.send_packet(&command.to_bytes().unwrap());
    }

    fn send_packet(&mut self, packet: &[u8]) {
        self.device.receive(self.now, &slip::encode_to_vec(packet));
    }

    /// Every byte the device has sent by now, across baud-rate switches.
    fn output(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while self
            .device
            .next_output_at()
            .is_some_and(|at| at <= self.now)
        {
            self.device.poll_output(self.now, &mut out);
        }
        out
    }

    /// The frames the device has sent by now.
    fn frames(&mut self) -> Vec<Vec<u8>> {
        let output = self.output();
        self.decoder
            .feed_to_vec(&output)
            .into_iter()
            .filter_map(|event| match event {
                SlipEvent::Frame(frame) => Some(frame),
                _ => None,
            })
            .collect()
    }

    fn responses(&mut self) -> Vec<Response> {
        self.frames()
            .iter()
            .map(|frame| Response::decode(frame).expect("a response frame"))
            .collect()
    }

    /// Sends `command` and returns its single response.
    fn command(&mut self, command: &Command) -> Response {
        self.send(command);
        let mut responses = self.responses();
        assert_eq!(
            responses.len(),
            1,
            "one response to {command:?}: {responses:?}"
        );
        responses.remove(0)
    }

    fn read_reg(&mut self, address: u32) -> u32 {
        let response = self.command(&Command::ReadReg { address });
        assert_eq!(response.status, Status::Success);
        response.value
    }

    fn write_reg(&mut self, address: u32, value: u32) {
        let write = RegisterWrite {
            address,
            value,
            mask: 0xFFFF_FFFF,
            delay_us: 0,
        };
        assert_eq!(
            self.command(&Command::WriteReg(vec![write])).status,
            Status::Success
        );
    }

    /// Uploads a small fake stub image and runs it; returns the frames after MEM_END's reply.
    fn upload_stub(&mut self, text_start: u32, entry: u32) -> Vec<Vec<u8>> {
        let text: Vec<u8> = (0..0x200u32).map(|i| i as u8).collect();
        let begin = BeginParams {
            size: text.len() as u32,
            blocks: 2,
            block_size: 0x100,
            offset: text_start,
            encrypted: None,
        };
        assert_eq!(
            self.command(&Command::MemBegin(begin)).status,
            Status::Success
        );
        for (sequence, chunk) in text.chunks(0x100).enumerate() {
            let block = DataBlock {
                sequence: sequence as u32,
                data: chunk.to_vec(),
            };
            assert_eq!(
                self.command(&Command::MemData(block)).status,
                Status::Success
            );
        }
        self.send(&Command::MemEnd {
            execute: true,
            entry,
        });
        let frames = self.frames();
        let end_reply = Response::decode(&frames[0]).unwrap();
        assert_eq!(
            (end_reply.opcode, end_reply.status),
            (0x06, Status::Success)
        );
        frames[1..].to_vec()
    }

    fn start_v2_stub(&mut self) {
        assert_eq!(
            self.upload_stub(V2_TEXT_START, V2_ENTRY),
            vec![b"OHAI".to_vec()]
        );
    }

    fn start_v1_stub(&mut self) {
        assert_eq!(
            self.upload_stub(V1_TEXT_START, StubFlavor::LEGACY_ENTRY),
            vec![b"OHAI".to_vec()]
        );
    }

    /// Runs esptool's `run_spiflash_command` over READ_REG/WRITE_REG; returns W0.
    fn spi_command(
        &mut self,
        command: u8,
        data: &[u8],
        read_bits: u32,
        address: Option<(u32, u32)>,
        dummy_bits: u32,
    ) -> u32 {
        const BASE: u32 = 0x6000_0200;
        let saved_usr = self.read_reg(BASE + 0x1C);
        let saved_usr2 = self.read_reg(BASE + 0x24);
        let data_bits = data.len() as u32 * 8;
        let (address_value, address_bits) = address.unwrap_or((0, 0));
        let field = |bits: u32| bits.saturating_sub(1);
        let usr1 = field(read_bits) << 8
            | field(data_bits) << 17
            | field(address_bits) << 26
            | field(dummy_bits);
        self.write_reg(BASE + 0x20, usr1);
        let mut flags = 1 << 31;
        if address_bits > 0 {
            flags |= 1 << 30;
        }
        if dummy_bits > 0 {
            flags |= 1 << 29;
        }
        if read_bits > 0 {
            flags |= 1 << 28;
        }
        if data_bits > 0 {
            flags |= 1 << 27;
        }
        self.write_reg(BASE + 0x1C, flags);
        self.write_reg(BASE + 0x24, 7 << 28 | u32::from(command));
        if address_bits > 0 {
            self.write_reg(BASE + 0x04, address_value << (32 - address_bits));
        }
        if data.is_empty() {
            self.write_reg(BASE + 0x40, 0);
        } else {
            let mut padded = data.to_vec();
            padded.resize(data.len().div_ceil(4) * 4, 0);
            for (index, word) in padded.chunks(4).enumerate() {
                self.write_reg(
                    BASE + 0x40 + 4 * index as u32,
                    u32::from_le_bytes(word.try_into().unwrap()),
                );
            }
        }
        self.write_reg(BASE, 1 << 18);
        assert_eq!(
            self.read_reg(BASE) & (1 << 18),
            0,
            "the USR bit clears when the command is done"
        );
        let result = self.read_reg(BASE + 0x40);
        self.write_reg(BASE + 0x1C, saved_usr);
        self.write_reg(BASE + 0x24, saved_usr2);
        result
    }
}

#[test]
fn rom_answers_sync_with_eight_nonzero_replies() {
    let mut host = Host::blank();
    host.send(&Command::Sync);
    let replies = host.responses();
    assert_eq!(replies.len(), 8);
    for reply in replies {
        assert_eq!(
            (reply.opcode, reply.value, reply.status),
            (0x08, 0x2012_0707, Status::Success)
        );
    }
}

#[test]
fn rom_reads_the_chip_detect_magic_and_unknown_addresses_as_zero() {
    let mut host = Host::blank();
    assert_eq!(host.read_reg(0x4000_1000), 0xFFF0_C101);
    assert_eq!(host.read_reg(0x6000_0F00), 0);
}

#[test]
fn write_reg_updates_the_register_model_with_its_mask() {
    let mut host = Host::blank();
    host.write_reg(0x6000_0A00, 0x1234_5678);
    let write = RegisterWrite {
        address: 0x6000_0A00,
        value: 0xAB,
        mask: 0xFF,
        delay_us: 0,
    };
    assert_eq!(
        host.command(&Command::WriteReg(vec![write])).status,
        Status::Success
    );
    assert_eq!(host.read_reg(0x6000_0A00), 0x1234_56AB);
    // RAM, as esptool's write_mem/read_mem/dump_mem use it.
    host.write_reg(0x3FFE_8000, 0xDEAD_BEEF);
    host.write_reg(0x4010_0004, 0x0BAD_F00D);
    assert_eq!(host.read_reg(0x3FFE_8000), 0xDEAD_BEEF);
    assert_eq!(host.read_reg(0x4010_0004), 0x0BAD_F00D);
}

#[test]
fn rom_turns_away_get_security_info_so_esptool_falls_back_to_the_magic_register() {
    let mut host = Host::blank();
    let mut packet = vec![0x00, 0x14, 0, 0, 0, 0, 0, 0];
    host.send_packet(&packet);
    let frames = host.frames();
    assert_eq!(frames.len(), 1);
    // esptool's command(): another opcode with data[0] != 0 and data[1] == 0x05 is
    // UnsupportedCommandError, which detect_chip catches before reading the magic.
    let (op_ret, data) = (frames[0][1], &frames[0][8..]);
    assert_ne!(op_ret, 0x14);
    assert!(data[0] != 0 && data[1] == 0x05);
    packet[1] = 0xD0;
    host.send_packet(&packet);
    assert_eq!(
        host.responses()[0].status,
        Status::rom_failure(ErrorCode::InvalidMessage)
    );
}

/// esptool's `ESP8266ROM.get_chip_description` (targets/esp8266.py), from the four words.
fn esptool_chip_description(words: [u32; 4]) -> String {
    let efuses = u128::from(words[3]) << 96
        | u128::from(words[2]) << 64
        | u128::from(words[1]) << 32
        | u128::from(words[0]);
    let bit = |n: u32| efuses & (1u128 << n) != 0;
    if !(bit(4) || bit(80)) {
        return "ESP8266EX".to_string();
    }
    let flash_size = match (bit(4), bit(121), bit(123), bit(122)) {
        (true, false, false, false) => 1,
        (true, false, false, true) => 2,
        (false, true, false, false) => 2,
        (false, true, false, true) => 4,
        _ => -1,
    };
    let temperature = if bit(5) { "H" } else { "N" };
    match flash_size {
        1 => format!("ESP8285{temperature}08"),
        2 => format!("ESP8285{temperature}16"),
        _ => "ESP8285".to_string(),
    }
}

/// esptool's `ESP8266ROM.read_mac`.
fn esptool_read_mac(mac0: u32, mac1: u32, mac3: u32) -> Option<[u8; 6]> {
    let oui = if mac3 != 0 {
        [(mac3 >> 16) as u8, (mac3 >> 8) as u8, mac3 as u8]
    } else {
        match (mac1 >> 16) & 0xFF {
            0 => [0x18, 0xFE, 0x34],
            1 => [0xAC, 0xD0, 0x74],
            _ => return None,
        }
    };
    Some([
        oui[0],
        oui[1],
        oui[2],
        (mac1 >> 8) as u8,
        mac1 as u8,
        (mac0 >> 24) as u8,
    ])
}

#[test]
fn efuses_give_esptool_the_configured_mac_and_chip_description() {
    let macs = [
        [0x18, 0xFE, 0x34, 0x12, 0x34, 0x56],
        [0xAC, 0xD0, 0x74, 0x00, 0xFF, 0x80],
        [0x84, 0x0D, 0x8E, 0xAB, 0xCD, 0xEF],
        [0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
    ];
    let cases = [
        (Chip::Esp8266Ex, MIB, "ESP8266EX"),
        (Chip::Esp8266Ex, 4 * MIB, "ESP8266EX"),
        (Chip::Esp8285, MIB, "ESP8285N08"),
        (Chip::Esp8285HighTemperature, MIB, "ESP8285H08"),
        (Chip::Esp8285, 2 * MIB, "ESP8285N16"),
        (Chip::Esp8285HighTemperature, 2 * MIB, "ESP8285H16"),
        (Chip::Esp8285, 4 * MIB, "ESP8285"),
    ];
    for mac in macs {
        for (chip, flash_size, description) in cases {
            let config = DeviceConfig {
                chip,
                mac,
                ..DeviceConfig::default()
            };
            let mut host = Host::new(config, SpiFlash::blank(flash_size).unwrap());
            let words = esp_protocol::chip::EFUSE_REGS.map(|address| host.read_reg(address));
            assert_eq!(
                esptool_chip_description(words),
                description,
                "{chip:?} {mac:02x?}"
            );
            assert_eq!(
                esptool_read_mac(words[0], words[1], words[3]),
                Some(mac),
                "{chip:?} {flash_size}"
            );
            // esptool's chip_id(): MAC bytes 3..6.
            let chip_id = (words[0] >> 24) | (words[1] & 0xFF_FFFF) << 8;
            assert_eq!(
                chip_id & 0xFF_FFFF,
                u32::from_be_bytes([0, mac[3], mac[4], mac[5]])
            );
        }
    }
}

#[test]
fn uart_clock_divider_says_26_mhz_crystal_at_the_current_baud() {
    let mut host = Host::blank();
    let clkdiv = host.read_reg(0x6000_0014);
    // esptool's get_crystal_freq: baud * divider / 1e6 / XTAL_CLK_DIVIDER.
    let estimate = 115_200.0 * f64::from(clkdiv & 0xF_FFFF) / 1e6 / 2.0;
    assert!((estimate - 26.0).abs() < 0.5, "{estimate}");
}

#[test]
fn rdid_reads_all_ones_until_flash_begin_attaches_the_flash() {
    let mut host = Host::blank();
    assert_eq!(host.spi_command(0x9F, &[], 24, None, 0), 0x00FF_FFFF);
    let attach = BeginParams {
        size: 0,
        blocks: 0,
        block_size: 0x400,
        offset: 0,
        encrypted: None,
    };
    assert_eq!(
        host.command(&Command::FlashBegin(attach)).status,
        Status::Success
    );
    assert_eq!(host.spi_command(0x9F, &[], 24, None, 0), 0x0016_40EF);
    // esptool's _verify_flash_connection: the SFDP signature at SFDP address 0.
    assert_eq!(
        host.spi_command(0x5A, &[], 32, Some((0, 24)), 8),
        crate::flash::SFDP_SIGNATURE
    );
}

#[test]
fn flash_status_is_read_and_written_through_the_spi_registers() {
    let mut host = Host::blank();
    host.start_v2_stub();
    assert_eq!(host.spi_command(0x05, &[], 8, None, 0), 0);
    // esptool's write_status with --non-volatile: WREN then WRSR with 16 bits.
    host.spi_command(0x06, &[], 0, None, 0);
    host.spi_command(0x01, &[0x1C, 0x00], 0, None, 0);
    assert_eq!(host.spi_command(0x05, &[], 8, None, 0), 0x1C);
    assert_eq!(host.device.flash().status_registers()[0] & 0x1C, 0x1C);
    // Volatile write of status register 2, then a software reset reloads the non-volatile value.
    host.spi_command(0x50, &[], 0, None, 0);
    host.spi_command(0x31, &[0x02], 0, None, 0);
    assert_eq!(host.spi_command(0x35, &[], 8, None, 0), 0x02);
    host.spi_command(0x66, &[], 0, None, 0);
    host.spi_command(0x99, &[], 0, None, 0);
    assert_eq!(host.spi_command(0x35, &[], 8, None, 0), 0x00);
}

/// A 4 MiB chip whose every byte is `fill`.
fn filled_flash(fill: u8) -> SpiFlash {
    SpiFlash::new(vec![fill; 4 * MIB], FlashOptions::default()).unwrap()
}

#[test]
fn rom_flash_begin_erases_with_the_rom_quirk() {
    let mut host = Host::with_flash(filled_flash(0x00));
    // Two sectors at sector 15: the head is 1 sector, so sectors 15, 16 and 17 are erased.
    let begin = BeginParams {
        size: 0x2000,
        blocks: 8,
        block_size: 0x400,
        offset: 0xF000,
        encrypted: None,
    };
    assert_eq!(
        host.command(&Command::FlashBegin(begin)).status,
        Status::Success
    );
    let flash = host.device.flash().as_bytes();
    assert!(flash[0xE000..0xF000].iter().all(|&b| b == 0x00));
    assert!(flash[0xF000..0x12000].iter().all(|&b| b == 0xFF));
    assert!(flash[0x12000..0x13000].iter().all(|&b| b == 0x00));
}

#[test]
fn rom_flash_data_checks_checksum_and_sequence_and_writes_padded_blocks() {
    let mut host = Host::blank();
    let block = DataBlock {
        sequence: 0,
        data: vec![0x5A; 0x400],
    };
    assert_eq!(
        host.command(&Command::FlashData(block.clone())).status,
        Status::rom_failure(ErrorCode::FailedToAct)
    );
    let begin = BeginParams {
        size: 0x1000,
        blocks: 2,
        block_size: 0x400,
        offset: 0x1000,
        encrypted: None,
    };
    host.command(&Command::FlashBegin(begin));
    let mut corrupt = Command::FlashData(block.clone()).to_bytes().unwrap();
    corrupt[4] ^= 1;
    host.send_packet(&corrupt);
    assert_eq!(
        host.responses()[0].status,
        Status::rom_failure(ErrorCode::InvalidChecksum)
    );
    let out_of_order = DataBlock {
        sequence: 1,
        ..block.clone()
    };
    assert_eq!(
        host.command(&Command::FlashData(out_of_order)).status,
        Status::rom_failure(ErrorCode::InvalidMessage)
    );
    assert_eq!(
        host.command(&Command::FlashData(block)).status,
        Status::Success
    );
    let mut padded = vec![0x11; 0x100];
    padded.resize(0x400, 0xFF);
    let second = DataBlock {
        sequence: 1,
        data: padded,
    };
    assert_eq!(
        host.command(&Command::FlashData(second)).status,
        Status::Success
    );
    let flash = host.device.flash().as_bytes();
    assert!(flash[0x1000..0x1400].iter().all(|&b| b == 0x5A));
    assert!(flash[0x1400..0x1500].iter().all(|&b| b == 0x11));
    assert!(flash[0x1500..0x2000].iter().all(|&b| b == 0xFF));
}

#[test]
fn stub_upload_ends_in_ohai_and_the_stub_syncs_with_value_zero() {
    for (text_start, entry, flavor) in [
        (V1_TEXT_START, StubFlavor::LEGACY_ENTRY, StubFlavor::Legacy),
        (V2_TEXT_START, V2_ENTRY, StubFlavor::EspFlasherStub),
    ] {
        let mut host = Host::blank();
        assert_eq!(host.upload_stub(text_start, entry), vec![b"OHAI".to_vec()]);
        assert_eq!(host.device.program(), Program::Stub(flavor));
        // The uploaded bytes are in IRAM, where read_mem finds them.
        assert_eq!(host.read_reg(text_start), 0x0302_0100);
        host.send(&Command::Sync);
        let replies = host.responses();
        assert_eq!(replies.len(), 8);
        assert!(replies
            .iter()
            .all(|r| r.opcode == 0x08 && r.value == 0 && r.status == Status::Success));
        // The stub attached the flash when it started.
        assert_eq!(host.spi_command(0x9F, &[], 24, None, 0), 0x0016_40EF);
    }
}

#[test]
fn mem_end_without_execute_stays_in_the_rom() {
    let mut host = Host::blank();
    assert_eq!(
        host.command(&Command::MemEnd {
            execute: false,
            entry: 0
        })
        .status,
        Status::Success
    );
    assert_eq!(host.device.program(), Program::RomLoader);
    let outside = BeginParams {
        size: 0x100,
        blocks: 1,
        block_size: 0x100,
        offset: 0x6000_0000,
        encrypted: None,
    };
    assert_eq!(
        host.command(&Command::MemBegin(outside)).status,
        Status::rom_failure(ErrorCode::Other(0x0F))
    );
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn deflate(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn stub_deflate_write_lands_in_flash_and_md5_matches() {
    for start in [Host::start_v1_stub as fn(&mut Host), Host::start_v2_stub] {
        let mut host = Host::with_flash(filled_flash(0x00));
        start(&mut host);
        let mut image = pseudo_random(0x9000, 7);
        image[0x4000..0x8000].fill(0x42);
        let compressed = deflate(&image);
        let blocks = compressed.len().div_ceil(0x4000) as u32;
        let begin = BeginParams {
            size: image.len() as u32,
            blocks,
            block_size: 0x4000,
            offset: 0x20000,
            encrypted: Some(false),
        };
        assert_eq!(
            host.command(&Command::FlashDeflBegin(begin)).status,
            Status::Success
        );
        for (sequence, chunk) in compressed.chunks(0x4000).enumerate() {
            let block = DataBlock {
                sequence: sequence as u32,
                data: chunk.to_vec(),
            };
            assert_eq!(
                host.command(&Command::FlashDeflData(block)).status,
                Status::Success
            );
        }
        assert_eq!(
            host.command(&Command::FlashDeflEnd { reboot: false })
                .status,
            Status::Success
        );
        let flash = host.device.flash().as_bytes();
        assert_eq!(&flash[0x20000..0x29000], &image[..]);
        // Erased on demand: only the sectors the data reaches.
        assert!(flash[0x1F000..0x20000].iter().all(|&b| b == 0x00));
        assert!(flash[0x29000..0x2A000].iter().all(|&b| b == 0x00));
        let md5 = host.command(&Command::SpiFlashMd5 {
            address: 0x20000,
            size: image.len() as u32,
        });
        assert_eq!(md5.status, Status::Success);
        assert_eq!(md5.data, Md5::digest(&image).to_vec());
    }
}

#[test]
fn stub_plain_write_trims_padding_and_reports_missing_data_at_the_end() {
    let mut host = Host::with_flash(filled_flash(0x00));
    host.start_v2_stub();
    let begin = BeginParams {
        size: 0x1800,
        blocks: 1,
        block_size: 0x4000,
        offset: 0x3000,
        encrypted: Some(false),
    };
    host.command(&Command::FlashBegin(begin));
    let mut data = vec![0x77; 0x1800];
    data.resize(0x4000, 0xFF);
    assert_eq!(
        host.command(&Command::FlashData(DataBlock { sequence: 0, data }))
            .status,
        Status::Success
    );
    assert_eq!(
        host.command(&Command::FlashEnd { reboot: false }).status,
        Status::Success
    );
    let flash = host.device.flash().as_bytes();
    assert!(flash[0x3000..0x4800].iter().all(|&b| b == 0x77));
    assert!(flash[0x4800..0x5000].iter().all(|&b| b == 0xFF));
    assert!(flash[0x5000..0x6000].iter().all(|&b| b == 0x00));
    // FLASH_END before all announced data: the flavours differ.
    for (start, code) in [
        (
            Host::start_v1_stub as fn(&mut Host),
            ErrorCode::NotEnoughData,
        ),
        (Host::start_v2_stub, ErrorCode::BadDataLength),
    ] {
        let mut host = Host::blank();
        start(&mut host);
        host.command(&Command::FlashBegin(begin));
        assert_eq!(
            host.command(&Command::FlashEnd { reboot: false }).status,
            Status::stub_failure(code)
        );
    }
}

#[test]
fn stub_data_without_begin_and_bad_checksum_are_refused() {
    let mut host = Host::blank();
    host.start_v2_stub();
    let block = DataBlock {
        sequence: 0,
        data: vec![1, 2, 3, 4],
    };
    assert_eq!(
        host.command(&Command::FlashData(block.clone())).status,
        Status::stub_failure(ErrorCode::NotInFlashMode)
    );
    let begin = BeginParams {
        size: 4,
        blocks: 1,
        block_size: 0x4000,
        offset: 0,
        encrypted: Some(false),
    };
    host.command(&Command::FlashBegin(begin));
    let mut corrupt = Command::FlashData(block).to_bytes().unwrap();
    corrupt[4] ^= 0xFF;
    host.send_packet(&corrupt);
    assert_eq!(
        host.responses()[0].status,
        Status::stub_failure(ErrorCode::BadDataChecksum)
    );
    assert_eq!(host.device.flash().as_bytes()[0], 0xFF);
}

#[test]
fn stub_reports_an_inflate_error_on_the_next_command() {
    let mut host = Host::blank();
    host.start_v1_stub();
    let begin = BeginParams {
        size: 0x1000,
        blocks: 1,
        block_size: 0x4000,
        offset: 0,
        encrypted: Some(false),
    };
    host.command(&Command::FlashDeflBegin(begin));
    let garbage = DataBlock {
        sequence: 0,
        data: vec![0xFF; 64],
    };
    assert_eq!(
        host.command(&Command::FlashDeflData(garbage)).status,
        Status::Success
    );
    assert_eq!(
        host.command(&Command::FlashDeflEnd { reboot: false })
            .status,
        Status::stub_failure(ErrorCode::NotEnoughData)
    );
    let again = DataBlock {
        sequence: 1,
        data: vec![0x00; 8],
    };
    assert_eq!(
        host.command(&Command::FlashDeflData(again)).status,
        Status::stub_failure(ErrorCode::InflateError)
    );
}

/// Runs READ_FLASH like esptool, acknowledging each frame with the bytes received so far,
/// until the device stops sending; returns the data frames and the last frame (the digest).
fn read_flash(
    host: &mut Host,
    address: u32,
    size: u32,
    max_in_flight: u32,
) -> (Vec<Vec<u8>>, Vec<u8>) {
    host.send(&Command::ReadFlash {
        address,
        size,
        packet_size: 0x1000,
        max_in_flight,
    });
    let mut frames = host.frames();
    let reply = Response::decode(&frames.remove(0)).unwrap();
    assert_eq!((reply.opcode, reply.status), (0xD2, Status::Success));
    let mut received_frames = Vec::new();
    let mut received = 0u32;
    while !frames.is_empty() {
        assert!(
            frames.len() <= max_in_flight as usize + 1,
            "window respected"
        );
        for frame in frames {
            received += frame.len() as u32;
            received_frames.push(frame);
            // After the digest the device is back to commands and ignores this 4-byte frame.
            host.send_packet(&encode_read_ack(received));
        }
        frames = host.frames();
    }
    let digest = received_frames.pop().expect("a digest frame");
    (received_frames, digest)
}

#[test]
fn read_flash_streams_within_the_window_and_ends_with_the_md5() {
    let contents = pseudo_random(4 * MIB, 3);
    let mut host =
        Host::with_flash(SpiFlash::new(contents.clone(), FlashOptions::default()).unwrap());
    host.start_v2_stub();
    host.send(&Command::ReadFlash {
        address: 0x1000,
        size: 0x5800,
        packet_size: 0x1000,
        max_in_flight: 2,
    });
    let frames = host.frames();
    assert_eq!(
        frames.len(),
        3,
        "the reply and two frames, then the window is full"
    );
    assert!(host.frames().is_empty());
    host.send_packet(&encode_read_ack(0x1000));
    assert_eq!(host.frames().len(), 1);
    host.send_packet(&encode_read_ack(0x3000));
    let frames = host.frames();
    assert_eq!(
        frames.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![0x1000, 0x1000]
    );
    host.send_packet(&encode_read_ack(0x5000));
    assert_eq!(
        host.frames().iter().map(Vec::len).collect::<Vec<_>>(),
        vec![0x800]
    );
    host.send_packet(&encode_read_ack(0x5800));
    assert_eq!(
        host.frames(),
        vec![Md5::digest(&contents[0x1000..0x6800]).to_vec()]
    );
    // Back to commands.
    assert_eq!(host.read_reg(0x4000_1000), 0xFFF0_C101);
}

#[test]
fn read_flash_of_4_mib_through_the_device_matches_the_md5() {
    let contents = pseudo_random(4 * MIB, 11);
    let mut host =
        Host::with_flash(SpiFlash::new(contents.clone(), FlashOptions::default()).unwrap());
    host.start_v1_stub();
    let request = slip::encode_to_vec(
        &Command::ReadFlash {
            address: 0,
            size: 4 * MIB as u32,
            packet_size: 0x1000,
            max_in_flight: 64,
        }
        .to_bytes()
        .unwrap(),
    );
    // The host's share (SLIP decoding, acks) is kept out of the device's time.
    let mut device_time = Duration::ZERO;
    let mut timed = |host: &mut Host, input: &[u8], output: &mut Vec<u8>| {
        let started = std::time::Instant::now();
        host.device.receive(host.now, input);
        host.device.poll_output(host.now, output);
        device_time += started.elapsed();
    };
    let mut output = Vec::new();
    timed(&mut host, &request, &mut output);
    let mut frames = Vec::new();
    let mut received = 0;
    while !output.is_empty() {
        let mut acks = Vec::new();
        for event in host.decoder.feed_to_vec(&output) {
            if let SlipEvent::Frame(frame) = event {
                if frame.len() == 0x1000 {
                    received += frame.len() as u32;
                    slip::encode(&encode_read_ack(received), &mut acks);
                }
                frames.push(frame);
            }
        }
        output.clear();
        timed(&mut host, &acks, &mut output);
    }
    let rate = 4.0 * MIB as f64 / 1e6 / device_time.as_secs_f64();
    eprintln!("READ_FLASH of 4 MiB in memory: device {device_time:?} ({rate:.0} MB/s)");
    assert_eq!(
        Response::decode(&frames[0]).unwrap().status,
        Status::Success
    );
    assert_eq!(frames.len(), 1 + 1024 + 1);
    assert_eq!(frames[1..1025].concat(), contents);
    assert_eq!(frames[1025], Md5::digest(&contents).to_vec());
}

#[test]
fn erase_region_must_be_sector_aligned() {
    for (start, code) in [
        (Host::start_v1_stub as fn(&mut Host), ErrorCode::Other(0x32)),
        (Host::start_v2_stub, ErrorCode::BadDataLength),
    ] {
        let mut host = Host::with_flash(filled_flash(0x00));
        start(&mut host);
        let reply = host.command(&Command::EraseRegion {
            address: 0x1800,
            size: 0x1000,
        });
        assert_eq!(reply.status, Status::stub_failure(code));
        assert!(host.device.flash().as_bytes().iter().all(|&b| b == 0));
        let reply = host.command(&Command::EraseRegion {
            address: 0x2000,
            size: 0x1000,
        });
        assert_eq!(reply.status, Status::Success);
        let flash = host.device.flash().as_bytes();
        assert!(flash[0x2000..0x3000].iter().all(|&b| b == 0xFF));
        assert!(flash[..0x2000]
            .iter()
            .chain(&flash[0x3000..])
            .all(|&b| b == 0));
    }
    let mut host = Host::blank();
    host.start_v1_stub();
    let raw = host.command(&Command::EraseRegion {
        address: 0,
        size: 0x10,
    });
    assert_eq!(raw.status, Status::stub_failure(ErrorCode::Other(0x33)));
}

#[test]
fn short_read_fault_cuts_the_chosen_frame() {
    let faults = DeviceFaults {
        short_read: Some(ShortRead {
            frame: 2,
            drop: 100,
        }),
        ..DeviceFaults::default()
    };
    let mut host = Host::new(
        DeviceConfig {
            faults,
            ..DeviceConfig::default()
        },
        filled_flash(0x3C),
    );
    host.start_v2_stub();
    let (frames, digest) = read_flash(&mut host, 0, 0x3000, 1);
    assert_eq!(
        frames.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![0x1000, 0x1000 - 100, 0x1000]
    );
    // The chip read all of it; the bytes were lost on the way.
    assert_eq!(digest, Md5::digest([0x3Cu8; 0x3000]).to_vec());
}

#[test]
fn timeout_fault_drops_the_nth_command_of_an_opcode_unexecuted() {
    let faults = DeviceFaults {
        timeouts: vec![CommandTimeout {
            opcode: 0x09,
            nth: 2,
        }],
        ..DeviceFaults::default()
    };
    let mut host = Host::new(
        DeviceConfig {
            faults,
            ..DeviceConfig::default()
        },
        SpiFlash::blank(MIB).unwrap(),
    );
    host.write_reg(0x3FFE_8000, 1);
    let write = RegisterWrite {
        address: 0x3FFE_8000,
        value: 2,
        mask: 0xFFFF_FFFF,
        delay_us: 0,
    };
    host.send(&Command::WriteReg(vec![write]));
    assert!(host.frames().is_empty());
    assert_eq!(host.read_reg(0x3FFE_8000), 1);
    host.write_reg(0x3FFE_8000, 3);
    assert_eq!(host.read_reg(0x3FFE_8000), 3);
}

#[test]
fn bad_md5_fault_corrupts_both_digests() {
    let faults = DeviceFaults {
        bad_md5: true,
        ..DeviceFaults::default()
    };
    let mut host = Host::new(
        DeviceConfig {
            faults,
            ..DeviceConfig::default()
        },
        SpiFlash::blank(MIB).unwrap(),
    );
    host.start_v2_stub();
    let good = Md5::digest([0xFFu8; 0x2000]).to_vec();
    let reply = host.command(&Command::SpiFlashMd5 {
        address: 0,
        size: 0x2000,
    });
    assert_eq!(reply.data.len(), 16);
    assert_ne!(reply.data, good);
    let (_, digest) = read_flash(&mut host, 0, 0x2000, 64);
    assert_eq!(digest.len(), 16);
    assert_ne!(digest, good);
}

#[test]
fn change_baudrate_switches_after_the_reply_is_taken() {
    let mut host = Host::blank();
    host.start_v2_stub();
    assert_eq!(host.device.uart_baud(), ROM_BAUD);
    host.send(&Command::ChangeBaudrate {
        new_baud: 921_600,
        old_baud: 115_200,
    });
    assert_eq!(host.device.uart_baud(), ROM_BAUD);
    let mut out = Vec::new();
    host.device.poll_output(host.now, &mut out);
    assert_eq!(
        Response::decode(
            &SlipDecoder::new()
                .feed_to_vec(&out)
                .into_iter()
                .find_map(|e| match e {
                    SlipEvent::Frame(frame) => Some(frame),
                    _ => None,
                })
                .unwrap()
        )
        .unwrap()
        .opcode,
        0x0F
    );
    assert_eq!(host.device.uart_baud(), 921_600);
    host.device.reset(host.now);
    assert_eq!(host.device.uart_baud(), ROM_BAUD);
    assert_eq!(host.device.program(), Program::RomLoader);
}

#[test]
fn unknown_opcodes_get_each_loaders_error() {
    let unknown = [0x00, 0x42, 0, 0, 0, 0, 0, 0];
    let security_info = [0x00, 0x14, 0, 0, 0, 0, 0, 0];
    for (start, code) in [
        (
            Host::start_v1_stub as fn(&mut Host),
            ErrorCode::CommandNotImplemented,
        ),
        (Host::start_v2_stub, ErrorCode::InvalidCommand),
    ] {
        let mut host = Host::blank();
        start(&mut host);
        host.send_packet(&unknown);
        assert_eq!(host.responses()[0].status, Status::stub_failure(code));
        host.send_packet(&security_info);
        assert_eq!(
            host.responses()[0].status,
            Status::stub_failure(ErrorCode::CommandNotImplemented)
        );
    }
}

#[test]
fn legacy_stub_reboots_into_the_rom_on_flash_end_with_flag_zero() {
    let mut host = Host::blank();
    host.start_v1_stub();
    let begin = BeginParams {
        size: 0,
        blocks: 0,
        block_size: 0x4000,
        offset: 0,
        encrypted: Some(false),
    };
    host.command(&Command::FlashBegin(begin));
    assert_eq!(
        host.command(&Command::FlashEnd { reboot: true }).status,
        Status::Success
    );
    assert_eq!(host.device.program(), Program::RomLoader);
    host.send(&Command::Sync);
    assert!(host.responses().iter().all(|r| r.value == 0x2012_0707));
}

#[test]
fn run_user_code_from_the_rom_boots_the_flash_after_the_reply() {
    let mut host = Host::blank();
    host.send(&Command::FlashEnd { reboot: false });
    let output = host.output();
    let reply_end = output[1..].iter().position(|&byte| byte == 0xC0).unwrap() + 2;
    let reply = Response::decode(&output[1..reply_end - 1]).unwrap();
    assert_eq!(reply.status, Status::Success);
    let log = String::from_utf8(output[reply_end..].to_vec()).unwrap();
    assert!(
        log.contains("boot mode:(3,6)") && log.ends_with("ets_main.c \r\n"),
        "{log:?}"
    );
    assert_eq!(host.device.program(), Program::UserCode);
    host.send(&Command::Sync);
    assert!(host.output().is_empty(), "the loader no longer answers");
}

#[test]
fn flash_boot_mode_prints_the_boot_log_and_never_answers() {
    let config = DeviceConfig {
        boot: BootMode::Flash,
        ..DeviceConfig::default()
    };
    let mut host = Host::new(config, SpiFlash::blank(MIB).unwrap());
    assert_eq!(host.device.uart_baud(), 74_880);
    let log = String::from_utf8(host.output()).unwrap();
    assert!(
        log.starts_with("\r\n ets Jan  8 2013,rst cause:1, boot mode:(3,6)\r\n\r\n"),
        "{log:?}"
    );
    assert!(log.ends_with("ets_main.c \r\n"));
    assert_eq!(host.device.uart_baud(), ROM_BAUD);
    host.send(&Command::Sync);
    assert!(host.output().is_empty());
    host.device.reset(host.now);
    assert!(String::from_utf8(host.output())
        .unwrap()
        .contains("rst cause:2, boot mode:(3,6)"));
}

#[test]
fn realtime_mode_delays_replies_by_the_erase_time() {
    let config = DeviceConfig {
        realtime: true,
        ..DeviceConfig::default()
    };
    let mut host = Host::new(config, SpiFlash::blank(MIB).unwrap());
    host.start_v2_stub();
    host.send(&Command::EraseRegion {
        address: 0,
        size: 0x1000,
    });
    let ready = host.device.next_output_at().unwrap();
    assert_eq!(ready, Duration::from_millis(45));
    assert!(host.frames().is_empty());
    host.now = ready;
    assert_eq!(host.responses()[0].status, Status::Success);
    assert_eq!(host.device.next_output_at(), None);
}

#[test]
fn trace_has_one_line_per_packet_when_enabled() {
    let mut host = Host::blank();
    host.read_reg(0x4000_1000);
    assert!(host.device.take_trace().is_empty());
    host.device.set_trace(true);
    host.read_reg(0x4000_1000);
    let trace = host.device.take_trace();
    assert_eq!(trace.len(), 2, "{trace:?}");
    assert!(trace[0].contains("READ_REG") && trace[1].contains("0xfff0c101"));
}

#[test]
fn garbage_and_malformed_frames_never_panic() {
    let mut host = Host::blank();
    host.device.receive(
        host.now,
        b"hello\xC0\xDB\x01\xC0\xC0\x00\x08\xC0\xC0\x01\x0A\x04\x00\x00\x00\x00\x00\xC0",
    );
    assert!(host.output().is_empty());
    host.start_v2_stub();
    // A READ_REG with a short payload, a WRITE_REG that is not a multiple of 16, a READ_FLASH of 0-byte packets.
    host.send_packet(&[0x00, 0x0A, 0x02, 0x00, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        host.responses()[0].status,
        Status::stub_failure(ErrorCode::BadDataLength)
    );
    host.send_packet(&[0x00, 0x09, 0x04, 0x00, 0, 0, 0, 0, 1, 2, 3, 4]);
    assert_eq!(
        host.responses()[0].status,
        Status::stub_failure(ErrorCode::NotEnoughData)
    );
    let reply = host.command(&Command::ReadFlash {
        address: 0,
        size: 0x100,
        packet_size: 0,
        max_in_flight: 1,
    });
    assert_eq!(reply.status, Status::stub_failure(ErrorCode::BadDataLength));
    let reply = host.command(&Command::ReadFlash {
        address: 0xFFFF_F000,
        size: 0x2000,
        packet_size: 0x1000,
        max_in_flight: 1,
    });
    assert_eq!(reply.status, Status::stub_failure(ErrorCode::FailedSpiOp));
    let params = SpiParams {
        id: 0,
        total_size: 4 * MIB as u32,
        block_size: 0x10000,
        sector_size: 0x1000,
        page_size: 0x100,
        status_mask: 0xFFFF,
    };
    assert_eq!(
        host.command(&Command::SpiSetParams(params)).status,
        Status::Success
    );
}

#[test]
fn regression_sync_flood_grows_memory_without_limit() {
    let sync = slip::encode_to_vec(&Command::Sync.to_bytes().unwrap());
    let burst = sync.repeat(64);
    for stub in [false, true] {
        let mut host = Host::blank();
        if stub {
            host.start_v2_stub();
        }
        // 3 MB of SYNC that nobody reads the replies to: 6 MB of replies unbounded.
        for _ in 0..1000 {
            host.device.receive(host.now, &burst);
        }
        let pending = host.device.pending_output();
        let allocated: usize = host
            .device
            .output
            .iter()
            .map(|chunk| chunk.bytes.capacity())
            .sum();
        assert!(
            (MAX_PENDING_OUTPUT..MAX_PENDING_OUTPUT + 1024).contains(&pending),
            "stub {stub}: {pending} bytes pending"
        );
        assert!(allocated <= 2 * MAX_PENDING_OUTPUT, "{allocated} allocated");
        // Whole replies only, and once the host reads, the chip answers again.
        let replies = host.responses();
        assert_eq!(replies.len() % 8, 0);
        assert!(replies.iter().all(|reply| reply.opcode == 0x08));
        host.send(&Command::Sync);
        assert_eq!(host.responses().len(), 8, "stub {stub}");
    }
}

/// A READ_FLASH asking for an unbounded window, repeated without reading, took the model's
/// memory from 5.8 MB to 313 MB: it queued the whole flash each time.
#[test]
fn regression_read_flash_with_an_unbounded_window_queues_the_whole_flash() {
    let mut host = Host::blank();
    host.start_v2_stub();
    let read = Command::ReadFlash {
        address: 0,
        size: host.device.flash().size() as u32,
        packet_size: 0x1000,
        max_in_flight: u32::MAX,
    };
    host.device
        .receive(host.now, &slip::encode_to_vec(&read.to_bytes().unwrap()));
    let pending = host.device.pending_output();
    assert!(
        pending <= 64 * (2 * 0x1000 + 2) + 64,
        "{pending} bytes queued for a window nobody acknowledges"
    );
}

mod properties {
    use std::ops::Range;

    use esp_protocol::rom_erase::rom_erased_sectors;
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    fn flash_address() -> impl Strategy<Value = u32> {
        prop_oneof![
            (0u32..0x200).prop_map(|sector| sector * 0x1000),
            0u32..0x20_0000,
            Just(0xFFFF_F000)
        ]
    }

    fn length() -> impl Strategy<Value = u32> {
        prop_oneof![(0u32..8).prop_map(|sectors| sectors * 0x1000), 0u32..0x9000]
    }

    fn begin() -> impl Strategy<Value = BeginParams> {
        (
            flash_address(),
            length(),
            0u32..8,
            prop_oneof![Just(0x400u32), Just(0x4000), any::<u32>()],
            any::<Option<bool>>(),
        )
            .prop_map(
                |(offset, size, blocks, block_size, encrypted)| BeginParams {
                    size,
                    blocks,
                    block_size,
                    offset,
                    encrypted,
                },
            )
    }

    fn block() -> impl Strategy<Value = DataBlock> {
        (0u32..4, vec(any::<u8>(), 0..0x500))
            .prop_map(|(sequence, data)| DataBlock { sequence, data })
    }

    /// Any address but the SPI controller's, whose commands could erase flash on their own.
    fn register_address() -> impl Strategy<Value = u32> {
        prop_oneof![
            Just(0x4000_1000u32),
            0x3FF0_0050u32..0x3FF0_0060,
            0x3FFE_8000u32..0x4000_0000,
            0x4010_0000u32..0x4011_0000,
            any::<u32>().prop_filter("not the SPI controller", |a| !(0x6000_0200..0x6000_0300)
                .contains(a)),
        ]
    }

    fn command() -> impl Strategy<Value = Command> {
        prop_oneof![
            begin().prop_map(Command::FlashBegin),
            begin().prop_map(Command::FlashDeflBegin),
            block().prop_map(Command::FlashData),
            block().prop_map(Command::FlashDeflData),
            (0u32..2, vec(any::<u8>(), 0..0x3000)).prop_map(|(sequence, data)| {
                Command::FlashDeflData(DataBlock {
                    sequence,
                    data: deflate(&data),
                })
            }),
            any::<bool>().prop_map(|reboot| Command::FlashEnd { reboot }),
            any::<bool>().prop_map(|reboot| Command::FlashDeflEnd { reboot }),
            (flash_address(), length())
                .prop_map(|(address, size)| Command::EraseRegion { address, size }),
            (flash_address(), length())
                .prop_map(|(address, size)| Command::SpiFlashMd5 { address, size }),
            (flash_address(), length(), 0u32..0x1100, 0u32..4).prop_map(
                |(address, size, packet_size, max_in_flight)| {
                    Command::ReadFlash {
                        address,
                        size,
                        packet_size,
                        max_in_flight,
                    }
                }
            ),
            Just(Command::Sync),
            register_address().prop_map(|address| Command::ReadReg { address }),
            (register_address(), any::<u32>(), any::<u32>()).prop_map(|(address, value, mask)| {
                Command::WriteReg(vec![RegisterWrite {
                    address,
                    value,
                    mask,
                    delay_us: 0,
                }])
            }),
            (register_address(), 0u32..0x2000).prop_map(|(offset, size)| Command::MemBegin(
                BeginParams {
                    size,
                    blocks: 1,
                    block_size: 0x1800,
                    offset,
                    encrypted: None
                }
            )),
            block().prop_map(Command::MemData),
            (
                any::<bool>(),
                prop_oneof![Just(V2_ENTRY), Just(StubFlavor::LEGACY_ENTRY), any::<u32>()]
            )
                .prop_map(|(execute, entry)| Command::MemEnd { execute, entry }),
            (any::<u32>(), any::<u32>())
                .prop_map(|(new_baud, old_baud)| Command::ChangeBaudrate { new_baud, old_baud }),
            Just(Command::SpiAttach {
                config: 0,
                rom_form: false
            }),
        ]
    }

    /// Adds the flash bytes a command may change, under the ROM's or a stub's reading of it.
    /// The ESP8266 ROM refuses a FLASH_BEGIN that carries the encryption word (a stub takes
    /// it) and has no compressed writes at all: it erases nothing for them, and the
    /// FLASH_DATA after them still follows the earlier begin.
    fn add_addressed_ranges(
        command: &Command,
        in_rom: bool,
        last_begin: &mut Option<BeginParams>,
        allowed: &mut Vec<Range<u64>>,
    ) {
        let sector = u64::from(esp_protocol::rom_erase::SECTOR_SIZE);
        match command {
            Command::FlashBegin(params) if in_rom && params.encrypted.is_some() => {}
            Command::FlashDeflBegin(_) | Command::FlashDeflData(_) if in_rom => {}
            Command::FlashBegin(params) | Command::FlashDeflBegin(params) => {
                *last_begin = Some(*params);
                let rom = rom_erased_sectors(params.offset, params.size);
                allowed.push(u64::from(rom.start) * sector..u64::from(rom.end) * sector);
                let start = u64::from(params.offset);
                allowed.push(
                    start / sector * sector
                        ..(start + u64::from(params.size)).div_ceil(sector) * sector,
                );
            }
            Command::FlashData(block) | Command::FlashDeflData(block) => {
                if let Some(params) = last_begin {
                    let start = u64::from(params.offset)
                        + u64::from(block.sequence) * u64::from(params.block_size);
                    allowed.push(start..start + block.data.len() as u64);
                }
            }
            Command::EraseRegion { address, size } => {
                allowed.push(u64::from(*address)..u64::from(*address) + u64::from(*size));
            }
            _ => {}
        }
    }

    fn start_in(host: &mut Host, program: u8) {
        match program {
            0 => {}
            1 => host.start_v1_stub(),
            _ => host.start_v2_stub(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_bytes_never_panic(
            program in 0u8..3,
            chunks in vec(vec(any::<u8>(), 0..200), 0..16),
            packets in vec((any::<u8>(), vec(any::<u8>(), 0..64)), 0..16),
        ) {
            let mut host = Host::with_flash(SpiFlash::blank(MIB).unwrap());
            start_in(&mut host, program);
            for chunk in &chunks {
                host.device.receive(host.now, chunk);
                host.output();
            }
            // Well-framed requests with any opcode and any payload.
            for (opcode, payload) in &packets {
                let mut packet = vec![0x00, *opcode];
                packet.extend_from_slice(&(payload.len() as u16).to_le_bytes());
                packet.extend_from_slice(&[0; 4]);
                packet.extend_from_slice(payload);
                host.send_packet(&packet);
                host.output();
            }
        }

        #[test]
        fn commands_change_flash_only_where_they_address_it(
            program in 0u8..3,
            commands in vec(command(), 1..24),
        ) {
            let before = pseudo_random(MIB, 5);
            let mut host = Host::with_flash(SpiFlash::new(before.clone(), FlashOptions::default()).unwrap());
            start_in(&mut host, program);
            let mut allowed = Vec::new();
            let mut last_begin = None;
            for command in &commands {
                let in_rom = host.device.program() == Program::RomLoader;
                add_addressed_ranges(command, in_rom, &mut last_begin, &mut allowed);
                host.send(command);
                host.output();
            }
            let after = host.device.flash().as_bytes();
            for (index, (old, new)) in before.iter().zip(after).enumerate() {
                if old != new {
                    let index = index as u64;
                    prop_assert!(
                        allowed.iter().any(|range| range.contains(&index)),
                        "byte 0x{index:x} changed outside {allowed:x?}"
                    );
                }
            }
        }
    }
}

/// A board with `wiring` and GPIO0 held by `jumper` where the wiring leaves it.
fn wired(wiring: ResetWiring, jumper: BootMode) -> Host {
    let config = DeviceConfig {
        boot: jumper,
        reset_wiring: wiring,
        ..DeviceConfig::default()
    };
    Host::new(config, SpiFlash::blank(MIB).unwrap())
}

impl Host {
    /// Sets DTR and RTS at `millis` ms.
    fn lines_at(&mut self, millis: u64, dtr: bool, rts: bool) {
        self.now = Duration::from_millis(millis);
        self.device.set_control_lines(self.now, dtr, rts);
    }

    /// esptool's classic reset into the loader, from `start` ms: DTR and RTS one at a time,
    /// with the intermediate states a sequential write goes through.
    fn classic_reset(&mut self, start: u64) {
        self.lines_at(start, false, true);
        self.lines_at(start + 100, true, true);
        self.lines_at(start + 100, true, false);
        self.lines_at(start + 150, false, false);
    }

    fn answers_sync(&mut self) -> bool {
        self.send(&Command::Sync);
        !self.responses().is_empty()
    }
}

#[test]
fn nodemcu_wiring_classic_reset_enters_the_loader_from_a_flash_boot() {
    let mut host = wired(ResetWiring::NodeMcu, BootMode::Flash);
    assert_eq!(
        host.device.program(),
        Program::UserCode,
        "GPIO0 pulled high"
    );
    host.output();
    host.classic_reset(1_000);
    host.now = Duration::from_millis(1_100) + STRAP_WINDOW;
    assert!(host.answers_sync());
    assert_eq!(host.device.program(), Program::RomLoader);
}

#[test]
fn nodemcu_wiring_hard_reset_boots_the_flash_and_holds_the_chip_meanwhile() {
    let mut host = wired(ResetWiring::NodeMcu, BootMode::Flash);
    host.classic_reset(0);
    host.now = Duration::from_millis(100) + STRAP_WINDOW;
    assert!(host.answers_sync());
    // --after hard_reset: RTS pulses EN low with DTR off.
    host.lines_at(500, false, true);
    assert!(host.device.in_reset());
    assert!(!host.answers_sync(), "a chip held in reset says nothing");
    host.lines_at(600, false, false);
    host.now = Duration::from_millis(600) + STRAP_WINDOW;
    let log = String::from_utf8(host.output()).unwrap();
    assert!(log.contains("rst cause:2, boot mode:(3,6)"), "{log:?}");
    assert_eq!(host.device.program(), Program::UserCode);
}

#[test]
fn nodemcu_wiring_ignores_both_lines_asserted_as_a_terminal_opens_the_port() {
    let mut host = wired(ResetWiring::NodeMcu, BootMode::Download);
    host.lines_at(10, true, true);
    assert!(!host.device.in_reset());
    assert!(host.answers_sync());
}

#[test]
fn regression_rfc2217_classic_reset_booted_the_flash_instead_of_the_loader() {
    // Over RFC 2217 pyserial waits 50 ms or more for each line change: EN rises with
    // DTR=RTS=on (GPIO0 high) 60 ms before RTS drops and DTR alone pulls GPIO0 low, and
    // GPIO0 goes high again 100 ms after that.
    let mut host = wired(ResetWiring::NodeMcu, BootMode::Flash);
    host.lines_at(0, false, true);
    host.lines_at(100, true, true);
    assert!(!host.device.in_reset() || host.device.next_output_at().is_some());
    host.lines_at(160, true, false);
    host.lines_at(260, false, false);
    host.now = Duration::from_millis(100) + STRAP_WINDOW;
    assert!(host.answers_sync());
    assert_eq!(host.device.program(), Program::RomLoader);
}

#[test]
fn direct_wiring_holds_the_chip_in_reset_while_rts_is_asserted() {
    let mut host = wired(ResetWiring::Direct, BootMode::Flash);
    host.lines_at(0, true, true);
    assert!(host.device.in_reset());
    host.lines_at(100, true, false);
    host.now = Duration::from_millis(100) + STRAP_WINDOW;
    assert!(host.answers_sync(), "DTR held GPIO0 low as EN rose");
}

#[test]
fn without_wiring_the_lines_change_nothing_and_the_jumper_decides() {
    let mut host = wired(ResetWiring::None, BootMode::Flash);
    host.output();
    host.classic_reset(0);
    host.now = Duration::from_millis(300);
    assert!(!host.device.in_reset());
    assert!(
        !host.answers_sync(),
        "GPIO0 high: no loader, whatever esptool does"
    );
    let mut host = wired(ResetWiring::NodeMcu, BootMode::Download);
    host.lines_at(0, false, true);
    host.lines_at(100, false, false);
    host.now = Duration::from_millis(100) + STRAP_WINDOW;
    assert!(
        host.answers_sync(),
        "a jumper holding GPIO0 low wins over a hard reset"
    );
}
