//! Real flash sessions against the emulator's device core, in memory and on
//! virtual time: no file descriptor, no sleeping, each session in milliseconds.

use std::path::Path;

use esp_emulator::device::{
    Chip, CodeExecution, CommandTimeout, Device, DeviceConfig, DeviceFaults, ShortRead, DEFAULT_MAC,
};
use esp_emulator::faults::LinkFaults;
use esp_emulator::flash::{FlashOptions, SpiFlash};
use esp_emulator::link::{Link, LinkConfig};
use esp_emulator::sample_firmware::firmware_image;
use esp_emulator::serial_port::{PortTime, VirtualPort};
use esp_flasher::backup::{self, record_path, BackupRecord, Mismatch, RestoreOptions};
use esp_flasher::connection::ResetObserved;
use esp_flasher::ops::baud::{lower_rate, AUTO_BAUD_RATES};
use esp_flasher::ops::size_probe::{real_size_limit, real_size_on_chip, wrap_size};
use esp_flasher::progress::{Operation, RetryReason};
use esp_flasher::{
    BeforeReset, ChipKind, ConnectOptions, EmulatorTransport, Error, Event, EventLog, Flasher,
    HeaderParams, HeaderSize, Loader, Region, StubImage, Warning, WriteOptions,
};
use esp_protocol::flash_params::{FlashMode, FlashSize};
use esp_protocol::image::{read_flash_params, FlashParamsPatch};
use esp_protocol::packet::Opcode;
use esp_protocol::status::ErrorCode;
use md5::Digest as _;

const MB: usize = 1024 * 1024;
const SECTOR: usize = 0x1000;

/// flashlab's own stub, which the virtual chip executes in these sessions.
fn stub_image() -> StubImage {
    StubImage::flashlab()
}

fn device(flash: SpiFlash, chip: Chip, faults: DeviceFaults) -> Device {
    Device::new(
        DeviceConfig {
            chip,
            faults,
            execution: CodeExecution::Run,
            ..DeviceConfig::default()
        },
        flash,
    )
}

fn blank(size: usize) -> SpiFlash {
    SpiFlash::blank(size).unwrap()
}

fn filled(contents: Vec<u8>) -> SpiFlash {
    SpiFlash::new(contents, FlashOptions::default()).unwrap()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

fn connect_to(transport: EmulatorTransport, stub: bool) -> (Flasher<EmulatorTransport>, EventLog) {
    let log = EventLog::new();
    let options = ConnectOptions {
        stub: stub.then(stub_image),
        ..ConnectOptions::default()
    };
    let flasher = Flasher::connect(transport, &options, Box::new(log.clone())).expect("connects");
    (flasher, log)
}

/// The chip with `flash` behind a link with `faults`, its randomness seeded with `seed`.
fn over_link(flash: SpiFlash, faults: LinkFaults, seed: u64) -> EmulatorTransport {
    let device = device(flash, Chip::Esp8266Ex, DeviceFaults::default());
    let config = LinkConfig {
        faults,
        seed,
        ..LinkConfig::default()
    };
    EmulatorTransport::with_link(Link::new(device, config))
}

fn connect(flash: SpiFlash, stub: bool) -> (Flasher<EmulatorTransport>, EventLog) {
    connect_to(
        EmulatorTransport::new(device(flash, Chip::Esp8266Ex, DeviceFaults::default())),
        stub,
    )
}

fn flash_contents(flasher: &Flasher<EmulatorTransport>) -> Vec<u8> {
    flasher.transport().flash_contents()
}

fn retries(log: &EventLog) -> Vec<RetryReason> {
    log.events()
        .into_iter()
        .filter_map(|event| match event {
            Event::Retrying { reason, .. } => Some(reason),
            _ => None,
        })
        .collect()
}

// --- connect and detect ---

#[test]
fn connects_to_the_rom_and_detects_a_1mb_flash() {
    let (flasher, log) = connect(blank(MB), false);
    assert_eq!(flasher.loader(), Loader::Rom);
    assert_eq!(flasher.chip().kind, ChipKind::Esp8266Ex);
    assert_eq!(flasher.chip().description, "ESP8266EX");
    assert_eq!(flasher.chip().mac, DEFAULT_MAC);
    assert_eq!(flasher.flash_size().unwrap(), MB as u32);
    assert_eq!(flasher.flash_info().jedec_id & 0xFF, 0x14);
    assert!(log
        .events()
        .iter()
        .any(|e| matches!(e, Event::Connected(_))));
    assert!(!log.events().contains(&Event::StubRunning));
}

#[test]
fn connects_with_a_stub_and_detects_a_4mb_flash() {
    let (flasher, log) = connect(blank(4 * MB), true);
    assert_eq!(flasher.loader(), Loader::Stub);
    assert_eq!(flasher.flash_size().unwrap(), 4 * MB as u32);
    assert!(log.events().contains(&Event::StubRunning));
}

#[test]
fn rom_only_on_4mb_and_stub_on_1mb() {
    assert_eq!(
        connect(blank(4 * MB), false).0.flash_size().unwrap(),
        4 * MB as u32
    );
    assert_eq!(connect(blank(MB), true).0.flash_size().unwrap(), MB as u32);
}

#[test]
fn tells_an_esp8285_from_its_efuses() {
    let transport =
        EmulatorTransport::new(device(blank(MB), Chip::Esp8285, DeviceFaults::default()));
    let (flasher, _) = connect_to(transport, false);
    assert_eq!(flasher.chip().kind, ChipKind::Esp8285);
    assert!(
        flasher.chip().description.starts_with("ESP8285"),
        "{}",
        flasher.chip().description
    );
}

#[test]
fn a_boot_log_before_the_loader_is_reported_and_skipped() {
    let faults = LinkFaults {
        boot_log: true,
        ..LinkFaults::default()
    };
    let link = Link::new(
        device(blank(MB), Chip::Esp8266Ex, DeviceFaults::default()),
        LinkConfig {
            faults,
            ..LinkConfig::default()
        },
    );
    let (flasher, log) = connect_to(EmulatorTransport::with_link(link), false);
    assert_eq!(flasher.flash_size().unwrap(), MB as u32);
    assert!(log
        .events()
        .iter()
        .any(|e| matches!(e, Event::Garbage { .. })));
}

#[test]
fn a_board_without_auto_reset_running_its_firmware_never_syncs_and_that_costs_no_real_time() {
    // GPIO0 on its pull-up and DTR/RTS wired to nothing: the reset pulses change nothing.
    let config = DeviceConfig {
        boot: esp_emulator::device::BootMode::Flash,
        reset_wiring: esp_emulator::device::ResetWiring::None,
        ..DeviceConfig::default()
    };
    let link = Link::new(Device::new(config, blank(MB)), LinkConfig::default());
    let transport = EmulatorTransport::on_port(VirtualPort::new(link, PortTime::Virtual));
    let started = std::time::Instant::now();
    let options = ConnectOptions {
        attempts: 2,
        ..ConnectOptions::default()
    };
    let error = Flasher::connect(transport, &options, Box::new(EventLog::new()))
        .err()
        .expect("no sync");
    // No boot message came back after the reset pulses: the chip did not restart.
    assert!(
        matches!(
            error,
            Error::NoSync {
                attempts: 2,
                reset: ResetObserved::Silent
            }
        ),
        "{error}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

/// A virtual board with NodeMCU's auto-reset circuit and GPIO0 pulled up (what the monitor's
/// `emu:` ports are): esptool's reset sequence still reaches the loader, because DTR pulls
/// GPIO0 low as EN rises, and the hard reset at the end starts the firmware in flash.
#[test]
fn a_nodemcu_wired_board_syncs_after_the_reset_and_boots_its_firmware_after_the_hard_reset() {
    use esp_emulator::device::{BootMode, Program, ResetWiring};
    let config = DeviceConfig {
        boot: BootMode::Flash,
        reset_wiring: ResetWiring::NodeMcu,
        ..DeviceConfig::default()
    };
    let transport = EmulatorTransport::new(Device::new(config, blank(MB)));
    let (flasher, _) = connect_to(transport, false);
    assert_eq!(flasher.loader(), Loader::Rom);
    assert_eq!(
        flasher
            .transport()
            .port()
            .with_link(|link| link.device().program()),
        Program::RomLoader
    );
    let mut transport = flasher.finish(esp_flasher::AfterReset::HardReset).unwrap();
    // The chip starts once the strapping window after EN rose has passed.
    let mut buffer = [0u8; 256];
    let _ = esp_flasher::Transport::read(
        &mut transport,
        &mut buffer,
        std::time::Duration::from_secs(1),
    );
    assert_eq!(
        transport.port().with_link(|link| link.device().program()),
        Program::UserCode
    );
}

#[test]
fn no_reset_syncs_with_a_chip_already_in_the_loader() {
    let transport =
        EmulatorTransport::new(device(blank(MB), Chip::Esp8266Ex, DeviceFaults::default()));
    let options = ConnectOptions {
        before: BeforeReset::NoReset,
        ..ConnectOptions::default()
    };
    let flasher = Flasher::connect(transport, &options, Box::new(EventLog::new())).unwrap();
    assert_eq!(flasher.loader(), Loader::Rom);
}

// --- write and read ---

#[test]
fn compressed_write_reads_back_equal() {
    let (mut flasher, log) = connect(blank(MB), true);
    let data = firmware_image(0x30000, 7);
    let report = flasher
        .write_flash(
            &[Region {
                address: 0x10000,
                data: data.clone(),
            }],
            &WriteOptions::default(),
        )
        .unwrap();
    let region = &report.regions[0];
    assert!(region.verified);
    assert!(
        region.compressed.unwrap() < data.len(),
        "firmware compresses"
    );
    assert_eq!(
        flasher.read_flash(0x10000, data.len() as u32).unwrap(),
        data
    );
    assert_eq!(&flash_contents(&flasher)[0x10000..0x40000], &data[..]);
    assert!(log.events().contains(&Event::Verified {
        address: 0x10000,
        size: data.len()
    }));
}

#[test]
fn uncompressed_stub_write_reads_back_equal() {
    let (mut flasher, _) = connect(blank(MB), true);
    let data = pattern(0x5123, 3);
    let options = WriteOptions {
        compress: false,
        ..WriteOptions::default()
    };
    flasher
        .write_flash(
            &[Region {
                address: 0x20000,
                data: data.clone(),
            }],
            &options,
        )
        .unwrap();
    assert_eq!(
        flasher.read_flash(0x20000, data.len() as u32).unwrap(),
        data
    );
}

#[test]
fn progress_reaches_the_total() {
    let (mut flasher, log) = connect(blank(MB), true);
    flasher
        .write_flash(
            &[Region {
                address: 0,
                data: pattern(0x9000, 1),
            }],
            &WriteOptions::default(),
        )
        .unwrap();
    let last_write = log.events().into_iter().rev().find_map(|e| match e {
        Event::Progress {
            operation: Operation::Write,
            done,
            total,
        } => Some((done, total)),
        _ => None,
    });
    assert_eq!(last_write, Some((0x9000, 0x9000)));
}

#[test]
fn skip_unchanged_writes_only_the_changed_sector() {
    let (mut flasher, log) = connect(blank(MB), true);
    let mut data = pattern(16 * SECTOR, 9);
    let options = WriteOptions {
        skip_unchanged: true,
        ..WriteOptions::default()
    };
    flasher
        .write_flash(
            &[Region {
                address: 0x40000,
                data: data.clone(),
            }],
            &options,
        )
        .unwrap();
    data[5 * SECTOR + 17] ^= 0xFF;
    let report = flasher
        .write_flash(
            &[Region {
                address: 0x40000,
                data: data.clone(),
            }],
            &options,
        )
        .unwrap();
    assert_eq!(
        (report.regions[0].written, report.regions[0].skipped),
        (SECTOR, 15 * SECTOR)
    );
    assert!(log.events().contains(&Event::Skipped {
        address: 0x40000,
        bytes: 15 * SECTOR,
        total: 16 * SECTOR
    }));
    assert_eq!(&flash_contents(&flasher)[0x40000..0x50000], &data[..]);
    let again = flasher
        .write_flash(
            &[Region {
                address: 0x40000,
                data,
            }],
            &options,
        )
        .unwrap();
    assert_eq!(again.regions[0].written, 0);
}

#[test]
fn header_patch_sets_size_and_mode_and_counts_as_unchanged_afterwards() {
    let (mut flasher, log) = connect(blank(4 * MB), true);
    let image = firmware_image(0x8000, 2);
    let header = HeaderParams {
        mode: Some(FlashMode::Dio),
        size: HeaderSize::Detect,
        freq: None,
    };
    let options = WriteOptions {
        skip_unchanged: true,
        header,
        ..WriteOptions::default()
    };
    flasher
        .write_flash(
            &[Region {
                address: 0,
                data: image.clone(),
            }],
            &options,
        )
        .unwrap();
    let params = read_flash_params(&flash_contents(&flasher)).unwrap();
    assert_eq!(
        (params.mode().unwrap(), params.size().unwrap()),
        (FlashMode::Dio, FlashSize::Size4M)
    );
    assert_eq!(&flash_contents(&flasher)[4..0x8000], &image[4..]);
    assert!(log
        .events()
        .iter()
        .any(|e| matches!(e, Event::HeaderPatched(FlashParamsPatch::Changed { .. }))));
    // The file differs from the flash only in the patched bytes: nothing to write.
    let report = flasher
        .write_flash(
            &[Region {
                address: 0,
                data: image,
            }],
            &options,
        )
        .unwrap();
    assert_eq!(report.regions[0].written, 0);
}

#[test]
fn keep_leaves_the_header_alone() {
    let (mut flasher, _) = connect(blank(MB), true);
    let image = firmware_image(0x4000, 5);
    flasher
        .write_flash(
            &[Region {
                address: 0,
                data: image.clone(),
            }],
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(&flash_contents(&flasher)[..0x4000], &image[..]);
}

#[test]
fn regions_past_the_end_or_sharing_a_sector_are_refused_before_writing() {
    let (mut flasher, _) = connect(blank(MB), true);
    let error = flasher.write_flash(
        &[Region {
            address: 0xFF000,
            data: vec![0; 0x2000],
        }],
        &WriteOptions::default(),
    );
    assert!(matches!(
        error,
        Err(Error::RegionPastEnd {
            address: 0xFF000,
            size: 0x2000,
            flash_size: 0x100000
        })
    ));
    let shared = [
        Region {
            address: 0,
            data: vec![1; 10],
        },
        Region {
            address: 0x800,
            data: vec![2; 10],
        },
    ];
    assert!(matches!(
        flasher.write_flash(&shared, &WriteOptions::default()),
        Err(Error::OverlappingRegions { .. })
    ));
    assert!(flash_contents(&flasher).iter().all(|&b| b == 0xFF));
}

// --- ROM only ---

#[test]
fn rom_only_write_leaves_neighbours_intact_where_the_erase_plan_is_exact() {
    let (mut flasher, log) = connect(filled(vec![0xAA; MB]), false);
    let data = pattern(0x2000, 4); // two sectors at a block start: the ROM erases exactly these
    flasher
        .write_flash(
            &[Region {
                address: 0x10000,
                data: data.clone(),
            }],
            &WriteOptions::rom_only(),
        )
        .unwrap();
    let flash = flash_contents(&flasher);
    assert_eq!(&flash[0x10000..0x12000], &data[..]);
    assert!(flash[..0x10000]
        .iter()
        .chain(&flash[0x12000..])
        .all(|&b| b == 0xAA));
    assert!(log.events().iter().all(|e| !matches!(e, Event::Warning(_))));
}

/// Three sectors at a block start cannot be asked of the ROM exactly: it erased the fourth
/// too, and esp-flasher only warned.
#[test]
fn regression_the_rom_erased_one_sector_more_than_the_file_with_only_a_warning() {
    let error = refused_rom_write(0x10000, 0x3000);
    assert!(
        matches!(&error, Error::RomWouldEraseOutside { lost, .. } if lost.len() == 1 && lost[0] == (0x13000..0x14000)),
        "{error}"
    );
}

/// The error of a ROM-loader write of `len` bytes at `address` over a flash of 0xAA, checked
/// to have left the flash as it was.
fn refused_rom_write(address: u32, len: usize) -> Error {
    let (mut flasher, _) = connect(filled(vec![0xAA; MB]), false);
    let error = flasher
        .write_flash(
            &[Region {
                address,
                data: pattern(len, 4),
            }],
            &WriteOptions::rom_only(),
        )
        .unwrap_err();
    assert!(
        flash_contents(&flasher).iter().all(|&b| b == 0xAA),
        "a refused write changed the flash"
    );
    error
}

/// `--no-stub write_flash 0x1004` of 256 bytes erased 0x1000..0x1004, the rest of the sector
/// and (the ROM's quirk) the next one, with a warning about the last only.
#[test]
fn regression_an_unaligned_rom_write_erased_the_rest_of_its_sector_silently() {
    let error = refused_rom_write(0x1004, 0x100);
    assert!(
        matches!(&error, Error::RomWouldEraseOutside { lost, .. } if *lost == [0x1000..0x1004, 0x1104..0x3000]),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("0x1000..0x1004 and 0x1104..0x3000 (7936 bytes outside the file)"),
        "{error}"
    );
}

#[test]
fn stub_only_operations_say_so_without_a_stub() {
    let (mut flasher, _) = connect(blank(MB), false);
    let needs_stub = |result: Result<(), Error>| matches!(result, Err(Error::StubRequired { .. }));
    assert!(needs_stub(flasher.read_flash(0, 16).map(drop)));
    assert!(needs_stub(flasher.flash_md5(0, 16).map(drop)));
    assert!(needs_stub(flasher.erase_flash()));
    assert!(needs_stub(flasher.erase_region(0, 0x1000)));
    assert!(needs_stub(
        flasher
            .write_flash(
                &[Region {
                    address: 0,
                    data: vec![1]
                }],
                &WriteOptions::default()
            )
            .map(drop)
    ));
    let message = flasher.read_flash(0, 16).unwrap_err().to_string();
    assert!(
        message.contains("--stub-file") && message.contains("ESP_FLASHER_STUB"),
        "{message}"
    );
}

#[test]
fn spi_registers_give_the_flash_id_and_status_on_the_rom() {
    let (mut flasher, _) = connect(blank(4 * MB), false);
    assert_eq!(
        flasher.read_jedec_id().unwrap(),
        flasher
            .transport()
            .port()
            .with_link(|link| link.device().flash().jedec_id())
    );
    let status = flasher.read_flash_status(2).unwrap();
    assert_eq!(status & 0x03, 0, "not busy, write latch clear");
}

#[test]
fn memory_reads_and_writes() {
    let (mut flasher, _) = connect(blank(MB), false);
    flasher
        .write_mem(0x3FFE_8000, 0x1234_5678, u32::MAX)
        .unwrap();
    assert_eq!(flasher.read_mem(0x3FFE_8000).unwrap(), 0x1234_5678);
    assert_eq!(
        flasher.dump_mem(0x3FFE_8000, 6).unwrap(),
        vec![0x78, 0x56, 0x34, 0x12, 0, 0]
    );
}

// --- erase ---

#[test]
fn erase_region_and_erase_flash_with_a_stub() {
    let (mut flasher, _) = connect(filled(vec![0x00; MB]), true);
    assert!(matches!(
        flasher.erase_region(0x1000, 0x800),
        Err(Error::Unaligned { .. })
    ));
    flasher.erase_region(0x2000, 0x2000).unwrap();
    let flash = flash_contents(&flasher);
    assert!(flash[0x2000..0x4000].iter().all(|&b| b == 0xFF));
    assert!(flash[0x1000..0x2000]
        .iter()
        .chain(&flash[0x4000..0x5000])
        .all(|&b| b == 0x00));
    flasher.erase_flash().unwrap();
    assert!(flash_contents(&flasher).iter().all(|&b| b == 0xFF));
}

// --- faults ---

#[test]
fn bad_md5_makes_a_write_fail_and_never_report_success() {
    let faults = DeviceFaults {
        bad_md5: true,
        ..DeviceFaults::default()
    };
    let (mut flasher, log) = connect_to(
        EmulatorTransport::new(device(blank(MB), Chip::Esp8266Ex, faults)),
        true,
    );
    let result = flasher.write_flash(
        &[Region {
            address: 0,
            data: pattern(0x2000, 1),
        }],
        &WriteOptions::default(),
    );
    assert!(
        matches!(
            result,
            Err(Error::VerifyFailed {
                address: 0,
                size: 0x2000,
                ..
            })
        ),
        "{result:?}"
    );
    assert!(!log
        .events()
        .iter()
        .any(|e| matches!(e, Event::Verified { .. })));
}

#[test]
fn change_baud_then_keep_working() {
    let (mut flasher, log) = connect(blank(MB), true);
    flasher.change_baud(921_600).unwrap();
    assert!(log.events().contains(&Event::BaudChanged { baud: 921_600 }));
    let data = pattern(0x1000, 8);
    flasher
        .write_flash(
            &[Region {
                address: 0,
                data: data.clone(),
            }],
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(flasher.read_flash(0, 0x1000).unwrap(), data);
}

/// A session with flashlab's stub brought over by its first stage at `baud`, on a line that
/// garbles mismatched rates and has `faults`.
fn connect_in_two_stages(
    flash: SpiFlash,
    baud: u32,
    faults: LinkFaults,
) -> (Flasher<EmulatorTransport>, EventLog) {
    let link = Link::new(
        device(flash, Chip::Esp8266Ex, DeviceFaults::default()),
        LinkConfig {
            faults,
            seed: 3,
            model_baud: true,
        },
    );
    let log = EventLog::new();
    let options = ConnectOptions {
        stub: Some(stub_image()),
        first_stage: Some(StubImage::flashlab_first_stage()),
        baud: Some(baud),
        ..ConnectOptions::default()
    };
    let flasher = Flasher::connect(
        EmulatorTransport::with_link(link),
        &options,
        Box::new(log.clone()),
    )
    .expect("connects");
    (flasher, log)
}

#[test]
fn the_first_stage_brings_the_stub_over_at_the_sessions_rate() {
    let contents = sample_flash(MB);
    let (mut flasher, log) =
        connect_in_two_stages(filled(contents.clone()), 921_600, LinkFaults::default());
    let events = log.events();
    let changed = events
        .iter()
        .position(|e| *e == Event::BaudChanged { baud: 921_600 })
        .expect("the first stage changed the rate");
    let running = events
        .iter()
        .position(|e| *e == Event::StubRunning)
        .expect("the stub runs");
    assert!(
        changed < running,
        "the stub came over at 921600: {events:?}"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::BaudChanged { .. }))
            .count(),
        1,
        "no second switch to the rate in force"
    );
    assert_eq!(flasher.loader(), Loader::Stub);
    assert_eq!(esp_flasher::Transport::baud(flasher.transport()), 921_600);
    assert!(warnings(&log).is_empty(), "{:?}", warnings(&log));
    // The stub learned the UART's clock from the first stage: its own rate changes stay exact.
    flasher.change_baud(460_800).unwrap();
    assert_eq!(
        flasher.read_flash(0, 0x20000).unwrap(),
        &contents[..0x20000]
    );
}

/// The virtual chip took the stub the first stage started for a RAM program (`load_ram`
/// through a stub), which keeps running when the port closes: the next session found it
/// at 921600 and could not sync at 115200.
#[test]
fn regression_a_stub_the_first_stage_started_was_not_reset_when_the_port_closed() {
    let (flasher, _) = connect_in_two_stages(blank(MB), 921_600, LinkFaults::default());
    assert!(flasher
        .transport()
        .port()
        .with_link(|link| link.device().resets_when_port_closes()));
}

#[test]
fn the_stub_goes_at_115200_when_the_first_stage_cannot_bring_it_over() {
    // The adapter loses bytes above 460800: the first stage's upload at 115200 goes through,
    // the stub's at 921600 does not.
    let contents = sample_flash(MB);
    let faults = LinkFaults {
        baud_limit: Some(460_800),
        baud_limit_rate: 2e-3,
        ..LinkFaults::default()
    };
    let (mut flasher, log) = connect_in_two_stages(filled(contents.clone()), 921_600, faults);
    assert!(
        warnings(&log)
            .iter()
            .any(|w| matches!(w, Warning::FirstStageFailed { baud: 921_600, .. })),
        "{:?}",
        warnings(&log)
    );
    assert_eq!(flasher.loader(), Loader::Stub);
    // The adapter settles; the stub that came at 115200 works at the rate asked for.
    flasher
        .transport()
        .port()
        .with_link(|link| link.faults_mut().baud_limit = None);
    assert_eq!(esp_flasher::Transport::baud(flasher.transport()), 921_600);
    assert_eq!(
        flasher.read_flash(0, 0x20000).unwrap(),
        &contents[..0x20000]
    );
}

/// What deflating costs the chip, counted on the executed stub: the cycles a backup of the
/// sample firmware's part of the flash takes per 4 KiB block it sends, compressed and plain.
/// With the replies going out of the TX ring while the next block is deflated, a compressed
/// read is as fast as the line (it sends a third fewer bytes) as long as those cycles take
/// less time at 80 MHz than a plain block takes on the line: `DEFLATE_READ_MAX_BAUD` must
/// stay below that rate. (ROM functions, the MD5 and SPIRead, are not counted: the chip's
/// own timing of those is not modelled.)
#[test]
fn compressed_reads_cost_the_chip_less_than_a_plain_block_takes_on_the_line_up_to_the_limit() {
    const CPU_HZ: f64 = 80e6;
    const FIRMWARE: u32 = 0x60000;
    let contents = sample_flash(MB);
    let blocks = f64::from(FIRMWARE) / SECTOR as f64;
    let mut per_block = Vec::new();
    for compressed in [true, false] {
        let (mut flasher, _) = connect(filled(contents.clone()), true);
        if !compressed {
            flasher.disable_compressed_reads();
        }
        let before = flasher
            .transport()
            .port()
            .with_link(|link| link.device().cpu_cycles())
            .unwrap();
        assert_eq!(
            flasher.read_flash(0, FIRMWARE).unwrap(),
            &contents[..FIRMWARE as usize]
        );
        let cycles = flasher
            .transport()
            .port()
            .with_link(|link| link.device().cpu_cycles())
            .unwrap()
            - before;
        per_block.push(cycles as f64 / blocks);
    }
    let (deflated, plain) = (per_block[0], per_block[1]);
    // The rate at which a plain block (4096 bytes of 10 bits) takes as long on the line as
    // deflating one takes the chip.
    let break_even = 10.0 * SECTOR as f64 * CPU_HZ / deflated;
    println!(
        "cycles per 4 KiB block: {deflated:.0} compressed ({:.2} ms at 80 MHz), {plain:.0} plain; \
         compressed reads are as fast as the line up to about {:.1} Mbaud",
        deflated / CPU_HZ * 1e3,
        break_even / 1e6
    );
    assert!(
        f64::from(esp_flasher::ops::read::DEFLATE_READ_MAX_BAUD) < break_even,
        "the chip deflates slower than a plain block crosses the line at DEFLATE_READ_MAX_BAUD"
    );
}

#[test]
fn a_host_at_the_wrong_baud_rate_gets_no_sense_out_of_the_chip() {
    let (mut flasher, _) = connect(blank(MB), false);
    esp_flasher::Transport::set_baud(flasher.transport_mut(), 230_400).unwrap();
    let error = flasher
        .read_reg(esp_protocol::chip::CHIP_DETECT_MAGIC_REG)
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Timeout {
                opcode: Opcode::ReadReg,
                ..
            }
        ),
        "{error}"
    );
}

// --- backup and restore ---

fn sample_flash(size: usize) -> Vec<u8> {
    esp_emulator::sample_firmware::sonoff_like_flash(size, 11)
}

fn files_in(directory: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(directory)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn backup_writes_the_image_and_its_record() {
    let contents = sample_flash(MB);
    let (mut flasher, _) = connect(filled(contents.clone()), true);
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("board.bin");
    let record = backup::backup(&mut flasher, &path, None).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), contents);
    let saved: BackupRecord =
        serde_json::from_str(&std::fs::read_to_string(record_path(&path)).unwrap()).unwrap();
    assert_eq!(saved, record);
    assert_eq!(
        (record.chip.as_str(), record.flash_size),
        ("ESP8266EX", MB as u32)
    );
    assert_eq!(record.mac, "18:fe:34:12:34:56");
    assert_eq!(record.date.len(), "2026-01-01T00:00:00Z".len());
}

#[test]
fn backup_resumes_after_a_short_read() {
    let contents = sample_flash(MB);
    let faults = DeviceFaults {
        short_read: Some(ShortRead {
            frame: 20,
            drop: 100,
        }),
        ..DeviceFaults::default()
    };
    let transport =
        EmulatorTransport::new(device(filled(contents.clone()), Chip::Esp8266Ex, faults));
    let (mut flasher, log) = connect_to(transport, true);
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("board.bin");
    backup::backup(&mut flasher, &path, None).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), contents);
    assert!(
        matches!(retries(&log)[..], [RetryReason::ShortFrame { .. }]),
        "{:?}",
        retries(&log)
    );
}

#[test]
fn backup_resumes_after_a_timeout() {
    let contents = sample_flash(MB);
    // flashlab's stub answers the backup's reads with compressed blocks.
    let timeout = CommandTimeout {
        opcode: Opcode::ReadFlashDeflate as u8,
        nth: 3,
    };
    let faults = DeviceFaults {
        timeouts: vec![timeout],
        ..DeviceFaults::default()
    };
    let transport =
        EmulatorTransport::new(device(filled(contents.clone()), Chip::Esp8266Ex, faults));
    let (mut flasher, log) = connect_to(transport, true);
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("board.bin");
    backup::backup(&mut flasher, &path, None).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), contents);
    assert_eq!(retries(&log), vec![RetryReason::Timeout]);
}

#[test]
fn bit_flips_at_1e_5_a_backup_still_completes_with_any_seed() {
    // At one flipped bit in 100 KB, a 64 KiB block fails about every other time: five
    // attempts at that size lost a 1MB backup for 7 of 16 seeds.
    let contents = sample_flash(MB);
    for seed in 1..=16 {
        let faults = LinkFaults {
            bitflip_rate: 1e-5,
            ..LinkFaults::default()
        };
        let (mut flasher, log) =
            connect_to(over_link(filled(contents.clone()), faults, seed), true);
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("board.bin");
        backup::backup(&mut flasher, &path, None)
            .unwrap_or_else(|error| panic!("seed {seed}: {error}"));
        assert!(std::fs::read(&path).unwrap() == contents, "seed {seed}");
        assert!(!retries(&log).is_empty(), "seed {seed}: no retry at all");
    }
}

#[test]
fn a_disconnect_mid_backup_leaves_no_file_under_the_final_name() {
    let faults = LinkFaults {
        disconnect_after: Some(300_000),
        ..LinkFaults::default()
    };
    let (mut flasher, _) = connect_to(over_link(filled(sample_flash(MB)), faults, 0), true);
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("board.bin");
    let error = backup::backup(&mut flasher, &path, None).unwrap_err();
    // The message names the block being read when the cable was pulled.
    let Error::ReadInterrupted {
        address,
        bytes_read,
        source,
    } = &error
    else {
        panic!("{error}");
    };
    assert!(matches!(**source, Error::Io(_)), "{error}");
    assert_eq!(*bytes_read, *address as usize);
    // Compressed blocks: the 300 KB on the wire carried more flash than that.
    assert!((0x30000..0xA0000).contains(address), "{error}");
    assert!(
        error
            .to_string()
            .contains(&format!("stopped at {address:#x}")),
        "{error}"
    );
    assert_eq!(files_in(directory.path()), Vec::<String>::new());
}

#[test]
fn a_read_whose_digests_keep_failing_stops_with_the_address_reached() {
    let faults = DeviceFaults {
        bad_md5: true,
        ..DeviceFaults::default()
    };
    let (mut flasher, _) = connect_to(
        EmulatorTransport::new(device(blank(MB), Chip::Esp8266Ex, faults)),
        true,
    );
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("part.bin");
    let error = flasher.read_flash_to_file(0, 0x2000, &path).unwrap_err();
    assert!(
        matches!(
            error,
            Error::ReadFailed {
                address: 0,
                bytes_read: 0,
                attempts: 5,
                reason: RetryReason::DigestMismatch
            }
        ),
        "{error}"
    );
    assert!(!path.exists());
}

#[test]
fn restore_writes_a_backup_back() {
    let contents = sample_flash(MB);
    let (mut flasher, _) = connect(filled(contents.clone()), true);
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("board.bin");
    backup::backup(&mut flasher, &path, None).unwrap();
    flasher.erase_flash().unwrap();
    backup::restore(&mut flasher, &path, &RestoreOptions::default()).unwrap();
    assert_eq!(flash_contents(&flasher), &contents[..]);
}

fn warnings(log: &EventLog) -> Vec<Warning> {
    log.events()
        .into_iter()
        .filter_map(|event| match event {
            Event::Warning(warning) => Some(warning),
            _ => None,
        })
        .collect()
}

/// An "ESP32-S3" record restored onto an ESP8266 with no word of warning.
#[test]
fn regression_a_record_of_another_chip_and_flash_restored_silently() {
    let contents = sample_flash(MB);
    let (mut flasher, log) = connect(filled(contents.clone()), true);
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("board.bin");
    let mut record = backup::backup(&mut flasher, &path, None).unwrap();
    record.chip = "ESP32-S3".into();
    record.flash_jedec_id = 0xC84017;
    std::fs::write(record_path(&path), serde_json::to_string(&record).unwrap()).unwrap();
    flasher.erase_flash().unwrap();
    let error = backup::restore(&mut flasher, &path, &RestoreOptions::default()).unwrap_err();
    let Error::RestoreMismatch { mismatches, .. } = &error else {
        panic!("{error}");
    };
    assert_eq!(mismatches.len(), 2, "{error}");
    assert!(
        error
            .to_string()
            .contains("read from an ESP32-S3, but this chip is an ESP8266EX"),
        "{error}"
    );
    assert!(error.to_string().contains("flash ID c84017"), "{error}");
    assert!(
        flash_contents(&flasher).iter().all(|&byte| byte == 0xFF),
        "written before refusing"
    );
    let forced = RestoreOptions {
        force: true,
        ..RestoreOptions::default()
    };
    backup::restore(&mut flasher, &path, &forced).unwrap();
    assert_eq!(flash_contents(&flasher), &contents[..]);
    let forced_warnings = warnings(&log)
        .into_iter()
        .filter(|warning| matches!(warning, Warning::Forced(_)))
        .count();
    assert_eq!(forced_warnings, 2);
}

#[test]
fn a_virtual_chips_backup_written_to_a_board_is_warned_about() {
    let (mut flasher, log) = connect(filled(sample_flash(MB)), true);
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("board.bin");
    let record = backup::backup(&mut flasher, &path, Some("emu:1MB")).unwrap();
    assert!(record.from_virtual_chip);
    assert_eq!(record.emu.as_deref(), Some("emu:1MB"));
    let to_virtual = RestoreOptions {
        to_virtual_chip: true,
        ..RestoreOptions::default()
    };
    backup::restore(&mut flasher, &path, &to_virtual).unwrap();
    assert!(!warnings(&log)
        .iter()
        .any(|w| matches!(w, Warning::VirtualBackup { .. })));
    backup::restore(&mut flasher, &path, &RestoreOptions::default()).unwrap();
    assert!(warnings(&log).contains(&Warning::VirtualBackup {
        emu: "emu:1MB".into()
    }));
}

/// A tutorial's plain image (no .json record): restored when its header fits the chip, and
/// refused, naming what does not fit, until --force or a matching -fs.
#[test]
fn a_foreign_image_is_checked_by_its_header_and_needs_force_only_where_it_does_not_fit() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("image1M.bin");
    let mut image = firmware_image(0x8000, 5);
    image[2] = FlashMode::Dout as u8;
    image[3] = 0x20; // 1MB, 40m
    std::fs::write(&path, &image).unwrap();
    let (mut flasher, _) = connect(blank(4 * MB), true);
    backup::restore(&mut flasher, &path, &RestoreOptions::default()).unwrap();
    assert_eq!(&flash_contents(&flasher)[..image.len()], &image[..]);

    // The header says 4MB, the chip has 1MB.
    image[3] = 0x40;
    std::fs::write(&path, &image).unwrap();
    let (mut flasher, _) = connect(blank(MB), true);
    let error = backup::restore(&mut flasher, &path, &RestoreOptions::default()).unwrap_err();
    assert!(
        matches!(&error, Error::RestoreMismatch { mismatches, .. }
            if mismatches == &[Mismatch::HeaderSizeTooLarge { header: 4 * MB as u32, flash: MB as u32 }]),
        "{error}"
    );
    assert!(error.to_string().contains("give -fs 1MB"), "{error}");
    let with_size = RestoreOptions {
        write: WriteOptions {
            header: HeaderParams {
                size: HeaderSize::Set(FlashSize::Size1M),
                ..HeaderParams::default()
            },
            ..WriteOptions::default()
        },
        ..RestoreOptions::default()
    };
    backup::restore(&mut flasher, &path, &with_size).unwrap();
    assert_eq!(flash_contents(&flasher)[3], 0x20);

    // Not an image at all: refused, then written with --force.
    std::fs::write(&path, [0u8; 0x2000]).unwrap();
    let (mut flasher, _) = connect(blank(MB), true);
    let error = backup::restore(&mut flasher, &path, &RestoreOptions::default()).unwrap_err();
    assert!(
        error.to_string().contains("first byte 0x00, not 0xe9"),
        "{error}"
    );
    assert_eq!(flash_contents(&flasher)[0], 0xFF);
    let forced = RestoreOptions {
        force: true,
        ..RestoreOptions::default()
    };
    backup::restore(&mut flasher, &path, &forced).unwrap();
    assert_eq!(&flash_contents(&flasher)[..0x2000], &[0u8; 0x2000][..]);
}

#[test]
fn a_foreign_qio_image_needs_force_or_dout_on_an_esp8285() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("fw.bin");
    let mut image = firmware_image(0x4000, 6);
    image[2] = FlashMode::Qio as u8;
    image[3] = 0x20;
    std::fs::write(&path, &image).unwrap();
    let transport =
        EmulatorTransport::new(device(blank(MB), Chip::Esp8285, DeviceFaults::default()));
    let (mut flasher, _) = connect_to(transport, true);
    let error = backup::restore(&mut flasher, &path, &RestoreOptions::default()).unwrap_err();
    assert!(
        error.to_string().contains("needs dout (give -fm dout)"),
        "{error}"
    );
    let dout = RestoreOptions {
        write: WriteOptions {
            header: HeaderParams {
                mode: Some(FlashMode::Dout),
                ..HeaderParams::default()
            },
            ..WriteOptions::default()
        },
        ..RestoreOptions::default()
    };
    backup::restore(&mut flasher, &path, &dout).unwrap();
    assert_eq!(flash_contents(&flasher)[2], FlashMode::Dout as u8);
}

#[test]
fn restore_warns_about_a_bigger_flash_and_a_non_dout_image_on_an_esp8285() {
    let mut contents = sample_flash(MB);
    contents[2] = FlashMode::Qio as u8;
    let (mut source, _) = connect(filled(contents.clone()), true);
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("board.bin");
    backup::backup(&mut source, &path, None).unwrap();

    let transport = EmulatorTransport::new(device(
        blank(2 * MB),
        Chip::Esp8285,
        DeviceFaults::default(),
    ));
    let (mut target, log) = connect_to(transport, true);
    // Another chip and flash: restored only with --force, each mismatch then a warning.
    let forced = RestoreOptions {
        force: true,
        ..RestoreOptions::default()
    };
    backup::restore(&mut target, &path, &forced).unwrap();
    let warnings: Vec<Warning> = log
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Warning(w) => Some(w),
            _ => None,
        })
        .collect();
    assert!(warnings.iter().any(|w| matches!(w, Warning::FlashSizeMismatch { suggested_size_name, .. } if suggested_size_name == "1MB")));
    assert!(warnings.contains(&Warning::NotDoutOnEsp8285 { mode: "qio".into() }));
    assert!(warnings.iter().any(|w| w.to_string().contains("-fm dout")));
    assert_eq!(&flash_contents(&target)[..MB], &contents[..]);
}

// --- speed: skip-unchanged with a patched header, auto baud ---

#[test]
fn rewrite_after_a_header_patch_writes_only_the_changed_sector() {
    let (mut flasher, log) = connect(blank(MB), true);
    let mut image = firmware_image(0x40000, 4);
    let header = HeaderParams {
        mode: Some(FlashMode::Qio),
        size: HeaderSize::Set(FlashSize::Size4M),
        freq: None,
    };
    let options = WriteOptions {
        skip_unchanged: true,
        header,
        ..WriteOptions::default()
    };
    flasher
        .write_flash(
            &[Region {
                address: 0,
                data: image.clone(),
            }],
            &options,
        )
        .unwrap();
    // The flash now differs from the file in the patched header bytes; change one more sector.
    assert_ne!(&flash_contents(&flasher)[2..4], &image[2..4]);
    image[0x23456] ^= 0x5A;
    let report = flasher
        .write_flash(
            &[Region {
                address: 0,
                data: image.clone(),
            }],
            &options,
        )
        .unwrap();
    let region = &report.regions[0];
    assert_eq!((region.written, region.skipped), (SECTOR, 0x40000 - SECTOR));
    assert!(log.events().contains(&Event::Skipped {
        address: 0,
        bytes: 0x40000 - SECTOR,
        total: 0x40000
    }));
    let params = read_flash_params(&flash_contents(&flasher)).unwrap();
    assert_eq!(
        (params.mode().unwrap(), params.size().unwrap()),
        (FlashMode::Qio, FlashSize::Size4M)
    );
    let mut expected = image;
    expected[..4].copy_from_slice(&flash_contents(&flasher)[..4]);
    assert_eq!(
        &flash_contents(&flasher)[..0x40000],
        &expected[..],
        "the flash equals the patched file"
    );
    assert_eq!(expected[2], 0x00, "qio");
}

fn baud_warnings(log: &EventLog) -> Vec<(u32, u32)> {
    log.events()
        .into_iter()
        .filter_map(|event| match event {
            Event::Warning(Warning::BaudTooFast { baud, next }) => Some((baud, next)),
            _ => None,
        })
        .collect()
}

/// The fastest rate `--baud auto` tries: where it stays on a clean line.
const TOP_RATE: u32 = AUTO_BAUD_RATES[0];

/// The warnings auto baud gives stepping down the ladder from the top to `rate`.
fn ladder_down_to(rate: u32) -> Vec<(u32, u32)> {
    std::iter::successors(Some(TOP_RATE), |&from| lower_rate(from))
        .take_while(|&from| from > rate)
        .map(|from| {
            (
                from,
                lower_rate(from).expect("a rate above the floor has a next"),
            )
        })
        .collect()
}

fn connect_auto(flash: SpiFlash, faults: LinkFaults) -> (Flasher<EmulatorTransport>, EventLog) {
    connect_auto_with(flash, DeviceFaults::default(), faults)
}

fn connect_auto_with(
    flash: SpiFlash,
    device_faults: DeviceFaults,
    faults: LinkFaults,
) -> (Flasher<EmulatorTransport>, EventLog) {
    let link = Link::new(
        device(flash, Chip::Esp8266Ex, device_faults),
        LinkConfig {
            faults,
            seed: 5,
            model_baud: true,
        },
    );
    let log = EventLog::new();
    let options = ConnectOptions {
        stub: Some(stub_image()),
        auto_baud: true,
        ..ConnectOptions::default()
    };
    let flasher = Flasher::connect(
        EmulatorTransport::with_link(link),
        &options,
        Box::new(log.clone()),
    )
    .expect("connects");
    (flasher, log)
}

#[test]
fn auto_baud_takes_the_fastest_rate_on_a_clean_line() {
    let (flasher, log) = connect_auto(blank(MB), LinkFaults::default());
    assert_eq!(esp_flasher::Transport::baud(flasher.transport()), TOP_RATE);
    assert!(baud_warnings(&log).is_empty());
    assert!(log
        .events()
        .contains(&Event::BaudChanged { baud: TOP_RATE }));
}

#[test]
fn auto_baud_climbs_only_as_high_as_the_adapter_carries() {
    let contents = sample_flash(MB);
    let faults = LinkFaults {
        baud_limit: Some(230_400),
        baud_limit_rate: 1e-3,
        ..LinkFaults::default()
    };
    let (mut flasher, log) = connect_auto(filled(contents.clone()), faults);
    assert_eq!(esp_flasher::Transport::baud(flasher.transport()), 230_400);
    assert_eq!(baud_warnings(&log), ladder_down_to(230_400));
    assert_eq!(
        flasher.read_flash(0, 0x40000).unwrap(),
        &contents[..0x40000]
    );
    assert!(retries(&log).is_empty(), "the chosen rate is clean");
}

#[test]
fn a_corrupt_block_steps_the_rate_down_and_is_read_again_from_its_start() {
    let contents = sample_flash(MB);
    let (mut flasher, log) = connect_auto(filled(contents.clone()), LinkFaults::default());
    assert_eq!(
        flasher.read_flash(0, 0x20000).unwrap(),
        &contents[..0x20000]
    );
    // The adapter starts dropping bytes above 460800 (it warmed up, the cable was moved).
    flasher.transport().port().with_link(|link| {
        let faults = link.faults_mut();
        faults.baud_limit = Some(460_800);
        faults.baud_limit_rate = 1e-4;
    });
    let read = flasher.read_flash(0x20000, 0x40000).unwrap();
    assert_eq!(
        read,
        &contents[0x20000..0x60000],
        "verified data after the step-down"
    );
    assert_eq!(baud_warnings(&log), ladder_down_to(460_800));
    assert_eq!(esp_flasher::Transport::baud(flasher.transport()), 460_800);
    // Resumed from the failed block: the first progress after the retry is inside that block.
    let events = log.events();
    let retry = events
        .iter()
        .position(|e| matches!(e, Event::Retrying { .. }))
        .expect("a block was retried");
    let Event::Retrying { address, .. } = events[retry].clone() else {
        unreachable!()
    };
    assert!(address >= 0x20000 && address % 0x10000 == 0, "{address:#x}");
    let next_progress = events[retry..].iter().find_map(|e| match e {
        Event::Progress {
            operation: Operation::Read,
            done,
            ..
        } => Some(*done),
        _ => None,
    });
    assert_eq!(next_progress, Some((address - 0x20000) as usize + SECTOR));
}

/// `timeout:op=READ_FLASH,nth=N`: a lost reply is no sign the rate is too high, so auto baud
/// reads the block again at the same rate instead of blaming the adapter.
#[test]
fn regression_lost_read_reply_does_not_step_the_baud_down() {
    let contents = sample_flash(MB);
    // READ_FLASH is the probe at the top rate; the first READ_FLASH_DEFLATE is the backup's
    // first block (compressed: the chip deflates the next block while this one is sent).
    let timeout = CommandTimeout {
        opcode: Opcode::ReadFlashDeflate as u8,
        nth: 1,
    };
    let device_faults = DeviceFaults {
        timeouts: vec![timeout],
        ..DeviceFaults::default()
    };
    let (mut flasher, log) = connect_auto_with(
        filled(contents.clone()),
        device_faults,
        LinkFaults::default(),
    );
    assert_eq!(esp_flasher::Transport::baud(flasher.transport()), TOP_RATE);
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("board.bin");
    backup::backup(&mut flasher, &path, None).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), contents);
    assert_eq!(retries(&log), vec![RetryReason::Timeout]);
    assert_eq!(
        baud_warnings(&log),
        [],
        "no 'does not carry … baud cleanly'"
    );
    assert_eq!(esp_flasher::Transport::baud(flasher.transport()), TOP_RATE);
}

#[test]
fn regression_lost_probe_reply_does_not_step_the_baud_down() {
    let timeout = CommandTimeout {
        opcode: Opcode::ReadFlash as u8,
        nth: 1,
    };
    let device_faults = DeviceFaults {
        timeouts: vec![timeout],
        ..DeviceFaults::default()
    };
    let (flasher, log) = connect_auto_with(
        filled(sample_flash(MB)),
        device_faults,
        LinkFaults::default(),
    );
    assert_eq!(esp_flasher::Transport::baud(flasher.transport()), TOP_RATE);
    assert_eq!(baud_warnings(&log), []);
}

#[test]
fn auto_baud_ends_at_the_rom_rate_when_nothing_faster_is_clean() {
    let contents = sample_flash(MB);
    let faults = LinkFaults {
        baud_limit: Some(115_200),
        baud_limit_rate: 1e-3,
        ..LinkFaults::default()
    };
    let (mut flasher, log) = connect_auto(filled(contents.clone()), faults);
    assert_eq!(esp_flasher::Transport::baud(flasher.transport()), 115_200);
    assert_eq!(baud_warnings(&log), ladder_down_to(115_200));
    assert_eq!(
        flasher.read_flash(0x10000, 0x10000).unwrap(),
        &contents[0x10000..0x20000]
    );
}

fn pseudo_random(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

fn write_resumes(log: &EventLog) -> Vec<(u32, u32)> {
    log.events()
        .into_iter()
        .filter_map(|event| match event {
            Event::Warning(Warning::WriteBlockCorrupt { address, resume }) => {
                Some((address, resume))
            }
            _ => None,
        })
        .collect()
}

/// Replies garbled during a write at the auto-chosen top rate (bit errors on the chip→host
/// side): the block's reply does not decode, the rate steps down and the write goes on from
/// that block's sector with a new stream, verified by MD5 at the end.
fn write_with_garbled_replies_at_auto_baud(compress: bool, seed: u64) -> EventLog {
    let link = Link::new(
        device(blank(MB), Chip::Esp8266Ex, DeviceFaults::default()),
        LinkConfig {
            faults: LinkFaults::default(),
            seed,
            model_baud: true,
        },
    );
    let log = EventLog::new();
    let options = ConnectOptions {
        stub: Some(stub_image()),
        auto_baud: true,
        ..ConnectOptions::default()
    };
    let mut flasher = Flasher::connect(
        EmulatorTransport::with_link(link),
        &options,
        Box::new(log.clone()),
    )
    .expect("connects");
    assert_eq!(esp_flasher::Transport::baud(flasher.transport()), TOP_RATE);
    flasher
        .transport()
        .port()
        .with_link(|link| link.faults_mut().bitflip_rate = 1e-2);
    let data = pseudo_random(0x60000, 7);
    let address = 0x10000;
    let options = WriteOptions {
        compress,
        verify: false,
        ..WriteOptions::default()
    };
    flasher
        .write_flash(
            &[Region {
                address,
                data: data.clone(),
            }],
            &options,
        )
        .unwrap();
    flasher
        .transport()
        .port()
        .with_link(|link| link.faults_mut().bitflip_rate = 0.0);
    flasher.verify(address, &data).unwrap();
    assert_eq!(
        &flash_contents(&flasher)[address as usize..address as usize + data.len()],
        &data[..]
    );
    log
}

fn check_resumed_from_the_failed_block(log: &EventLog, address: u32) {
    let resumes = write_resumes(log);
    assert!(
        !resumes.is_empty(),
        "a block was garbled and the write resumed"
    );
    let (failed, resume) = resumes[0];
    assert!(
        resume % SECTOR as u32 == 0 && resume >= address && resume <= failed,
        "{failed:#x} {resume:#x}"
    );
    assert_eq!(baud_warnings(log)[0], (TOP_RATE, AUTO_BAUD_RATES[1]));
    let events = log.events();
    let warned = events
        .iter()
        .position(|e| matches!(e, Event::Warning(Warning::WriteBlockCorrupt { .. })))
        .unwrap();
    let next_progress = events[warned..].iter().find_map(|e| match e {
        Event::Progress {
            operation: Operation::Write,
            done,
            ..
        } => Some(*done),
        _ => None,
    });
    assert!(
        next_progress.unwrap() > (resume - address) as usize,
        "{next_progress:?}"
    );
}

/// What a write at a fixed --baud over an adapter that loses bytes above 460800 does: a
/// block that lost bytes goes unanswered and is sent again; when the line keeps damaging the
/// block, the write stops naming the address it reached, and a fixed rate is not stepped down.
#[test]
fn regression_write_over_an_adapter_losing_bytes_stops_naming_the_address() {
    let link = Link::new(
        device(blank(MB), Chip::Esp8266Ex, DeviceFaults::default()),
        LinkConfig {
            faults: LinkFaults::default(),
            seed: 5,
            model_baud: true,
        },
    );
    let (mut flasher, log) = connect_to(EmulatorTransport::with_link(link), true);
    flasher.change_baud(921_600).unwrap();
    flasher.transport().port().with_link(|link| {
        let faults = link.faults_mut();
        faults.baud_limit = Some(460_800);
        faults.baud_limit_rate = 1e-4;
    });
    let data = pseudo_random(0x60000, 7);
    let error = flasher
        .write_flash(
            &[Region {
                address: 0x10000,
                data,
            }],
            &WriteOptions::default(),
        )
        .unwrap_err();
    let reached = match error {
        Error::WriteInterrupted {
            address: 0x10000,
            reached,
            ..
        } => reached,
        Error::WriteCorrupted {
            address: 0x10000,
            at,
            ..
        } => at,
        other => panic!("{other}"),
    };
    assert!((0x10000..0x70000).contains(&reached), "{reached:#x}");
    assert!(
        retries(&log).contains(&RetryReason::Timeout),
        "a block was sent again"
    );
    // At a fixed rate the write resumes after a re-sync, a bounded number of times.
    assert!(baud_warnings(&log).is_empty());
    assert!(write_resumes(&log).len() <= esp_flasher::ops::write::RESUMES_AT_ONE_RATE as usize);
}

/// At a fixed baud rate a block the line corrupted past its resends stopped the write, which
/// had to be run again; now the write re-syncs and goes on from that block.
#[test]
fn regression_a_corrupted_write_block_at_a_fixed_baud_stopped_the_write() {
    let (mut resumed, mut completed) = (0, 0);
    for seed in 0..16 {
        let link = Link::new(
            device(blank(MB), Chip::Esp8266Ex, DeviceFaults::default()),
            LinkConfig {
                faults: LinkFaults::default(),
                seed,
                model_baud: true,
            },
        );
        let (mut flasher, log) = connect_to(EmulatorTransport::with_link(link), true);
        flasher
            .transport()
            .port()
            .with_link(|link| link.faults_mut().bitflip_rate = 5e-3);
        let data = pseudo_random(0x60000, 7);
        let options = WriteOptions {
            compress: false,
            verify: false,
            ..WriteOptions::default()
        };
        let region = Region {
            address: 0x10000,
            data: data.clone(),
        };
        let result = flasher.write_flash(&[region], &options);
        let resumes = write_resumes(&log);
        assert!(baud_warnings(&log).is_empty(), "the rate stays as given");
        for (failed, resume) in &resumes {
            assert!(
                resume % SECTOR as u32 == 0 && resume <= failed,
                "{failed:#x} {resume:#x}"
            );
        }
        match result {
            Ok(_) => {
                flasher
                    .transport()
                    .port()
                    .with_link(|link| link.faults_mut().bitflip_rate = 0.0);
                flasher.verify(0x10000, &data).unwrap();
                completed += 1;
            }
            // A line that keeps corrupting stops the write after a bounded number of resumes.
            Err(Error::WriteCorrupted { .. }) => assert_eq!(resumes.len(), 3, "seed {seed}"),
            Err(other) => panic!("seed {seed}: {other}"),
        }
        resumed += usize::from(!resumes.is_empty());
    }
    assert!(
        resumed > 0 && completed > 0,
        "resumed {resumed}, completed {completed}"
    );
}

/// Under `drop:rate=1e-5` no 1MB write succeeded: a block that lost a byte went unanswered
/// and the write stopped. Now such a block is sent again (5 attempts), and with bit flips on
/// top every one of 20 seeds verifies with the flash equal to the image.
#[test]
fn regression_no_1mb_write_survived_a_dropped_byte() {
    let mut resent = 0;
    for seed in 0..20u64 {
        // From the first SYNC on, the stub's upload through the ROM included.
        let faults = LinkFaults {
            drop_rate: 1e-5,
            bitflip_rate: 1e-5,
            ..LinkFaults::default()
        };
        let link = Link::new(
            device(blank(MB), Chip::Esp8266Ex, DeviceFaults::default()),
            LinkConfig {
                faults,
                seed,
                model_baud: true,
            },
        );
        let log = EventLog::new();
        let options = ConnectOptions {
            stub: Some(stub_image()),
            ..ConnectOptions::default()
        };
        let mut flasher = Flasher::connect(
            EmulatorTransport::with_link(link),
            &options,
            Box::new(log.clone()),
        )
        .unwrap_or_else(|error| panic!("seed {seed}: connect: {error}"));
        let data = pseudo_random(MB, seed as u32);
        let region = Region {
            address: 0,
            data: data.clone(),
        };
        if let Err(error) = flasher.write_flash(&[region], &WriteOptions::default()) {
            panic!("seed {seed}: {error}");
        }
        assert!(
            flash_contents(&flasher) == data,
            "seed {seed}: verified, yet the flash differs"
        );
        if retries(&log).contains(&RetryReason::Timeout) {
            resent += 1;
        }
    }
    assert!(resent > 0, "no seed lost a byte: the test proves nothing");
}

#[test]
fn regression_compressed_write_block_garbled_at_auto_baud_steps_down_and_resumes() {
    let log = write_with_garbled_replies_at_auto_baud(true, 5);
    check_resumed_from_the_failed_block(&log, 0x10000);
}

#[test]
fn regression_uncompressed_write_block_garbled_at_auto_baud_steps_down_and_resumes() {
    let log = write_with_garbled_replies_at_auto_baud(false, 5);
    check_resumed_from_the_failed_block(&log, 0x10000);
}

// --- property: in-memory pairing round trip ---

mod round_trip {
    use super::*;
    use proptest::prelude::*;

    /// Up to four regions, each in its own 64 KiB slot of a 1 MiB flash so they never share a sector.
    fn regions() -> impl Strategy<Value = Vec<Region>> {
        proptest::collection::btree_map(0u32..16, (0u32..0x8000, 1usize..0x3000, any::<u8>()), 1..4)
            .prop_map(|slots| {
                slots
                    .into_iter()
                    .map(|(slot, (offset, len, seed))| Region {
                        address: slot * 0x10000 + offset,
                        data: pattern(len, seed),
                    })
                    .collect()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]
        #[test]
        fn regions_written_read_back_equal(regions in regions(), compress in any::<bool>()) {
            let (mut flasher, _) = connect(blank(MB), true);
            let options = WriteOptions { compress, ..WriteOptions::default() };
            flasher.write_flash(&regions, &options).unwrap();
            for region in &regions {
                let read = flasher.read_flash(region.address, region.data.len() as u32).unwrap();
                prop_assert_eq!(&read, &region.data);
            }
        }
    }
}

// --- diagnoses of reported failures (emulator/scenarios) ---

fn flash_with(options: FlashOptions, contents: Vec<u8>) -> SpiFlash {
    SpiFlash::new(contents, options).unwrap()
}

#[test]
fn regression_write_protected_flash_names_the_protection_bits() {
    let flash = flash_with(
        FlashOptions {
            write_protected: true,
            ..FlashOptions::default()
        },
        sample_flash(MB),
    );
    let (mut flasher, _) = connect(flash, true);
    let error = flasher
        .write_flash(
            &[Region {
                address: 0,
                data: firmware_image(0x4000, 3),
            }],
            &WriteOptions::default(),
        )
        .unwrap_err();
    assert!(
        matches!(&error, Error::WriteProtected { address: 0, status: 0x1C, bits } if bits == "BP0 BP1 BP2"),
        "{error}"
    );
}

#[test]
fn regression_sector_that_will_not_erase_is_named_by_address() {
    let options = FlashOptions {
        stuck_sectors: [3].into(),
        ..FlashOptions::default()
    };
    let (mut flasher, _) = connect(flash_with(options, sample_flash(MB)), true);
    let error = flasher
        .write_flash(
            &[Region {
                address: 0,
                data: firmware_image(0x8000, 3),
            }],
            &WriteOptions::default(),
        )
        .unwrap_err();
    assert!(
        matches!(&error, Error::SectorsNotWritten { address: 0, size: 0x8000, sectors } if sectors == &[0x3000]),
        "{error}"
    );
}

#[test]
fn regression_fake_flash_size_is_detected_by_backup_without_writing() {
    let mut contents = vec![0xFF; 4 * MB];
    contents[..MB].copy_from_slice(&sample_flash(MB));
    let options = FlashOptions {
        physical_size: Some(MB),
        ..FlashOptions::default()
    };
    let (mut flasher, _) = connect(flash_with(options, contents), true);
    let before = flash_contents(&flasher).to_vec();
    let directory = tempfile::tempdir().unwrap();
    let error = backup::backup(&mut flasher, &directory.path().join("b.bin"), None).unwrap_err();
    assert!(
        matches!(
            error,
            Error::FlashWraps {
                claimed: 0x40_0000,
                real: 0x10_0000
            }
        ),
        "{error}"
    );
    assert_eq!(flash_contents(&flasher), &before[..], "nothing was written");
    assert!(files_in(directory.path()).is_empty());
}

#[test]
fn genuine_and_erased_flash_do_not_count_as_wrapping() {
    let (mut flasher, _) = connect(filled(sample_flash(4 * MB)), true);
    assert_eq!(wrap_size(&mut flasher, 4 * MB as u32).unwrap(), None);
    let (mut flasher, _) = connect(blank(4 * MB), true);
    assert_eq!(wrap_size(&mut flasher, 4 * MB as u32).unwrap(), None);
    // The marker the probe wrote into the erased flash is erased again.
    assert!(flash_contents(&flasher).iter().all(|&byte| byte == 0xFF));
}

/// A blank fake 4MB chip that holds 1MB: the wrap test was skipped because sector 0 was
/// erased, and a write at 0x100000 then landed on 0x0.
#[test]
fn regression_an_erased_fake_size_chip_was_not_probed_before_a_write_past_its_size() {
    let options = FlashOptions {
        physical_size: Some(MB),
        ..FlashOptions::default()
    };
    let (mut flasher, _) = connect(flash_with(options, vec![0xFF; 4 * MB]), true);
    assert_eq!(
        wrap_size(&mut flasher, 4 * MB as u32).unwrap(),
        Some(MB as u32)
    );
    let error = real_size_limit(&mut flasher, (MB + SECTOR) as u64).unwrap_err();
    assert!(
        matches!(
            error,
            Error::FlashWraps {
                claimed: 0x40_0000,
                real: 0x10_0000
            }
        ),
        "{error}"
    );
    assert!(
        error.to_string().contains("only 1MB is really there"),
        "{error}"
    );
    assert!(real_size_limit(&mut flasher, MB as u64).is_ok());
    assert!(
        flash_contents(&flasher).iter().all(|&byte| byte == 0xFF),
        "the probe left its marker"
    );
    let directory = tempfile::tempdir().unwrap();
    let error = backup::backup(&mut flasher, &directory.path().join("b.bin"), None).unwrap_err();
    assert!(matches!(error, Error::FlashWraps { .. }), "{error}");
    assert!(files_in(directory.path()).is_empty());
}

#[test]
fn regression_qio_image_written_to_an_esp8285_warns_before_writing() {
    let transport =
        EmulatorTransport::new(device(blank(MB), Chip::Esp8285, DeviceFaults::default()));
    let (mut flasher, log) = connect_to(transport, true);
    let mut image = firmware_image(0x4000, 5);
    image[2] = FlashMode::Qio.header_byte();
    flasher
        .write_flash(
            &[Region {
                address: 0,
                data: image,
            }],
            &WriteOptions::default(),
        )
        .unwrap();
    let warning = Event::Warning(Warning::NotDoutOnEsp8285 { mode: "qio".into() });
    assert_eq!(
        log.events()
            .iter()
            .filter(|event| **event == warning)
            .count(),
        1
    );
}

#[test]
fn regression_cable_pulled_during_write_names_the_address_reached() {
    // After the stub's upload, room for a few blocks: the last acknowledged one counts as
    // unwritten (a stub acknowledges before programming), so one block would reach nothing.
    let faults = LinkFaults {
        disconnect_after: Some(80_000),
        disconnect_counts_host: true,
        ..LinkFaults::default()
    };
    let (mut flasher, _) = connect_to(over_link(blank(MB), faults, 0), true);
    let data = pattern(0x20000, 4);
    let options = WriteOptions {
        compress: false,
        ..WriteOptions::default()
    };
    let error = flasher
        .write_flash(&[Region { address: 0, data }], &options)
        .unwrap_err();
    let Error::WriteInterrupted {
        address: 0,
        reached,
        written,
        total: 0x20000,
        ..
    } = error
    else {
        panic!("{error}");
    };
    assert!(
        reached > 0 && reached < 0x20000 && reached as usize <= written,
        "{reached:#x} {written}"
    );
}

// --- SPI_FLASH_MD5_PIECES, flashlab's stub only ---

#[test]
fn flashlab_stub_digests_every_sector_of_a_region_in_one_request() {
    let contents = pattern(MB, 3);
    let (mut flasher, _) = connect(filled(contents.clone()), true);
    let digests = flasher
        .flash_md5_pieces(0x10000, 0x11000, SECTOR as u32)
        .unwrap()
        .expect("flashlab's stub has the command");
    let expected: Vec<[u8; 16]> = contents[0x10000..0x21000]
        .chunks(SECTOR)
        .map(|sector| md5::Md5::digest(sector).into())
        .collect();
    assert_eq!(digests, expected);
    // More pieces than one reply carries: several requests, the same answer.
    let all = flasher
        .flash_md5_pieces(0, MB as u32, 0x800)
        .unwrap()
        .unwrap();
    assert_eq!(all.len(), MB / 0x800);
    assert_eq!(
        all[0x20],
        <[u8; 16]>::from(md5::Md5::digest(&contents[0x10000..0x10800]))
    );
}

#[test]
fn esptools_stubs_have_no_md5_pieces_and_the_flasher_falls_back() {
    // The stub model answers as esptool's stubs do: not a command they know.
    let device = Device::new(
        DeviceConfig {
            execution: CodeExecution::StubModel,
            ..DeviceConfig::default()
        },
        filled(pattern(MB, 4)),
    );
    let log = EventLog::new();
    let options = ConnectOptions {
        stub: Some(StubImage::virtual_device_model()),
        ..ConnectOptions::default()
    };
    let mut flasher = Flasher::connect(EmulatorTransport::new(device), &options, Box::new(log))
        .expect("connects");
    assert_eq!(
        flasher.flash_md5_pieces(0, 0x4000, SECTOR as u32).unwrap(),
        None
    );
    let regions = [Region {
        address: 0x3000,
        data: pattern(0x5000, 9),
    }];
    let options = WriteOptions {
        skip_unchanged: true,
        ..WriteOptions::default()
    };
    flasher.write_flash(&regions, &options).unwrap();
    assert_eq!(
        &flash_contents(&flasher)[0x3000..0x8000],
        &regions[0].data[..]
    );
}

#[test]
fn md5_pieces_past_the_end_of_the_flash_is_a_device_error_not_a_hang() {
    let (mut flasher, _) = connect(filled(pattern(MB, 5)), true);
    let error = flasher
        .flash_md5_pieces(MB as u32 - SECTOR as u32, 2 * SECTOR as u32, SECTOR as u32)
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Device {
                opcode: Opcode::SpiFlashMd5Pieces,
                code: ErrorCode::FailedSpiOp,
            }
        ),
        "{error}"
    );
    // The stub still answers afterwards.
    assert!(flasher
        .flash_md5_pieces(0, SECTOR as u32, SECTOR as u32)
        .unwrap()
        .is_some());
}

// --- compressed and sparse reads (READ_FLASH_DEFLATE, erased sectors skipped) ---

/// A backup of the 1 MiB Sonoff-like flash gets through a cable pulled after 60% of the
/// flash's size in chip→host bytes: erased sectors are not sent and the firmware's are
/// deflated, so the line carries far fewer bytes than the backup holds.
#[test]
fn a_backup_moves_fewer_bytes_than_the_flash_holds() {
    let contents = sample_flash(MB);
    let faults = LinkFaults {
        disconnect_after: Some((MB as u64) * 6 / 10),
        ..LinkFaults::default()
    };
    let (mut flasher, log) = connect_to(over_link(filled(contents.clone()), faults, 0), true);
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("board.bin");
    let started = flasher.transport().now();
    backup::backup(&mut flasher, &path, None).unwrap();
    let took = flasher.transport().now() - started;
    assert!(std::fs::read(&path).unwrap() == contents);
    assert_eq!(retries(&log), []);
    // The target for the whole backup at 115200, connect included, is 35 s; the
    // plain read of the whole flash alone needs 91 s on the wire.
    assert!(
        took.as_secs_f64() < 33.0,
        "the backup took {took:?} of virtual time"
    );
}

/// Incompressible flash comes back as raw blocks of READ_FLASH_DEFLATE, equal to the flash.
#[test]
fn random_flash_reads_back_equal_through_raw_blocks() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let contents: Vec<u8> = (0..MB)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let (mut flasher, _) = connect(filled(contents.clone()), true);
    let read = flasher.read_flash(0x1234, 0x2_0000).unwrap();
    assert!(read[..] == contents[0x1234..0x2_1234]);
}

#[test]
fn esptools_stubs_have_no_read_flash_deflate_and_the_flasher_falls_back() {
    let contents = sample_flash(MB);
    let device = Device::new(
        DeviceConfig {
            execution: CodeExecution::StubModel,
            ..DeviceConfig::default()
        },
        filled(contents.clone()),
    );
    let options = ConnectOptions {
        stub: Some(StubImage::virtual_device_model()),
        ..ConnectOptions::default()
    };
    let log = EventLog::new();
    let mut flasher = Flasher::connect(
        EmulatorTransport::new(device),
        &options,
        Box::new(log.clone()),
    )
    .expect("connects");
    assert_eq!(
        flasher.read_flash(0, 0x3_0000).unwrap(),
        contents[..0x3_0000]
    );
    assert_eq!(retries(&log), []);
}

#[test]
fn lost_bytes_at_1e_5_a_compressed_sparse_backup_still_completes() {
    let contents = sample_flash(MB);
    for seed in 1..=4 {
        let (mut flasher, _) = connect_to(
            over_link(filled(contents.clone()), LinkFaults::default(), seed),
            true,
        );
        // Bytes are lost from the backup's first command on, not during the stub's upload.
        flasher
            .transport()
            .port()
            .with_link(|link| link.faults_mut().drop_rate = 1e-5);
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("board.bin");
        backup::backup(&mut flasher, &path, None)
            .unwrap_or_else(|error| panic!("seed {seed}: {error}"));
        assert!(std::fs::read(&path).unwrap() == contents, "seed {seed}");
    }
}

/// A compressed block cut short on the line is read again; so is a sparse read's.
#[test]
fn a_short_compressed_frame_is_read_again() {
    let contents = sample_flash(MB);
    let faults = DeviceFaults {
        short_read: Some(ShortRead { frame: 3, drop: 40 }),
        ..DeviceFaults::default()
    };
    let transport =
        EmulatorTransport::new(device(filled(contents.clone()), Chip::Esp8266Ex, faults));
    let (mut flasher, log) = connect_to(transport, true);
    let read = flasher.read_flash(0, 0x4_0000).unwrap();
    assert!(read[..] == contents[..0x4_0000]);
    assert!(
        matches!(retries(&log)[..], [RetryReason::ShortFrame { .. }]),
        "{:?}",
        retries(&log)
    );
}

mod compressed_backup {
    use super::*;
    use proptest::prelude::*;

    /// A 1 MiB flash of 64 KiB regions, each erased, firmware-like, zeroed or random.
    fn flash_contents() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec((0u8..4, any::<u64>()), 16).prop_map(|regions| {
            let mut flash = Vec::with_capacity(MB);
            for (kind, seed) in regions {
                let region: Vec<u8> = match kind {
                    0 => vec![0xFF; 0x10000],
                    1 => firmware_image(0x10000, seed),
                    2 => vec![0; 0x10000],
                    _ => {
                        let mut state = seed | 1;
                        (0..0x10000)
                            .map(|_| {
                                state ^= state << 13;
                                state ^= state >> 7;
                                state ^= state << 17;
                                state as u8
                            })
                            .collect()
                    }
                };
                flash.extend(region);
            }
            flash
        })
    }

    /// No fault, flipped bits, lost bytes, or a pulled cable, at rates that make a retry likely.
    fn link_faults() -> impl Strategy<Value = LinkFaults> {
        prop_oneof![
            Just(LinkFaults::default()),
            (1e-6f64..3e-5).prop_map(|rate| LinkFaults {
                bitflip_rate: rate,
                ..LinkFaults::default()
            }),
            (1e-6f64..3e-5).prop_map(|rate| LinkFaults {
                drop_rate: rate,
                ..LinkFaults::default()
            }),
            (10_000u64..600_000).prop_map(|after| LinkFaults {
                disconnect_after: Some(after),
                ..LinkFaults::default()
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]
        /// Any flash contents and any fault seed: the backup equals the flash, or the backup
        /// stops with an error that says why, and no file is left under the backup's name.
        #[test]
        fn a_backup_equals_the_flash_or_fails_clearly(
            contents in flash_contents(),
            faults in link_faults(),
            seed in any::<u64>(),
        ) {
            let (mut flasher, _) = connect_to(over_link(filled(contents.clone()), LinkFaults::default(), seed), true);
            // The faults start with the backup: connecting is not what this is about.
            flasher.transport().port().with_link(|link| *link.faults_mut() = faults);
            let directory = tempfile::tempdir().unwrap();
            let path = directory.path().join("board.bin");
            match backup::backup(&mut flasher, &path, None) {
                Ok(_) => prop_assert!(std::fs::read(&path).unwrap() == contents),
                Err(error) => {
                    prop_assert!(
                        matches!(
                            error,
                            Error::ReadFailed { .. }
                                | Error::ReadInterrupted { .. }
                                | Error::ReadDisagrees { .. }
                                | Error::VerifyFailed { .. }
                                | Error::Io(_)
                                | Error::Timeout { .. }
                        ),
                        "{error}"
                    );
                    prop_assert!(!path.exists());
                }
            }
        }
    }
}

// --- FLASH_REAL_SIZE, flashlab's stub only ---

mod real_size {
    use super::*;
    use proptest::prelude::*;

    /// A flash whose ID claims `claimed` bytes but whose addresses wrap at `physical`.
    fn fake_chip(claimed: usize, physical: usize, contents: &[u8]) -> SpiFlash {
        let mut claimed_contents = vec![0xFF; claimed];
        claimed_contents[..physical].copy_from_slice(&contents[..physical]);
        let options = FlashOptions {
            physical_size: (physical < claimed).then_some(physical),
            ..FlashOptions::default()
        };
        flash_with(options, claimed_contents)
    }

    /// What a physical flash may hold: erased, firmware-like, firmware with erased sectors
    /// scattered through it, or one pattern repeated so both halves of every window agree.
    fn contents(kind: u8, physical: usize, seed: u8) -> Vec<u8> {
        match kind % 4 {
            0 => vec![0xFF; physical],
            1 => sample_flash(physical),
            2 => {
                let mut bytes = sample_flash(physical);
                for sector in bytes.chunks_mut(SECTOR).step_by(3 + seed as usize % 5) {
                    sector.fill(0xFF);
                }
                bytes
            }
            _ => pattern(SECTOR, seed).repeat(physical / SECTOR),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Two implementations of one probe: the chip's (FLASH_REAL_SIZE, executed on the
        /// virtual CPU) and the host's (MD5s and a marker write through the stub) must find
        /// the same size, and neither may leave anything behind on the flash.
        #[test]
        fn the_chip_and_the_host_find_the_same_real_size(
            claimed_log in 19u32..23,
            physical_shift in 0u32..4,
            kind in any::<u8>(),
            seed in any::<u8>(),
        ) {
            let claimed = 1usize << claimed_log;
            let physical = (claimed >> physical_shift).max(256 * 1024);
            let contents = contents(kind, physical, seed);
            let (mut flasher, _) = connect(fake_chip(claimed, physical, &contents), true);
            let before = flash_contents(&flasher).to_vec();
            let on_chip = real_size_on_chip(&mut flasher, claimed as u32).unwrap();
            prop_assert!(flash_contents(&flasher) == before, "the chip's probe changed the flash");
            let from_host = wrap_size(&mut flasher, claimed as u32).unwrap();
            prop_assert!(flash_contents(&flasher) == before, "the host's probe changed the flash");
            let from_host = from_host.unwrap_or(claimed as u32);
            prop_assert_eq!(on_chip, Some(from_host));
            // The repeated pattern has no erased sector to mark: both probes call it wrapping
            // at the smallest window, whatever is really there; otherwise they are right.
            if kind % 4 != 3 {
                prop_assert_eq!(from_host, physical as u32);
            }
        }
    }

    #[test]
    fn esptools_stubs_have_no_real_size_command_and_the_host_probes() {
        let options = FlashOptions {
            physical_size: Some(MB),
            ..FlashOptions::default()
        };
        let device = Device::new(
            DeviceConfig {
                execution: CodeExecution::StubModel,
                ..DeviceConfig::default()
            },
            flash_with(options, vec![0xFF; 4 * MB]),
        );
        let options = ConnectOptions {
            stub: Some(StubImage::virtual_device_model()),
            ..ConnectOptions::default()
        };
        let mut flasher = Flasher::connect(
            EmulatorTransport::new(device),
            &options,
            Box::new(EventLog::new()),
        )
        .expect("connects");
        assert_eq!(
            real_size_on_chip(&mut flasher, 4 * MB as u32).unwrap(),
            None
        );
        let error = real_size_limit(&mut flasher, 2 * MB as u64).unwrap_err();
        assert!(
            matches!(
                error,
                Error::FlashWraps {
                    claimed: 0x40_0000,
                    real: 0x10_0000
                }
            ),
            "{error}"
        );
        assert!(flash_contents(&flasher).iter().all(|&byte| byte == 0xFF));
    }
}
