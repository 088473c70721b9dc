//! A connected session: the chip identified, the flash found, a stub running
//! if one was given. The flash operations live in [`crate::ops`].

use std::time::Duration;

use esp_protocol::flash_params::{flash_size_from_jedec, FlashSize};
use esp_protocol::packet::{
    stub_baud_change, BeginParams, Command, RegisterWrite, SpiParams, ROM_BAUD,
};

use crate::chip::{ChipInfo, CHIP_DETECT_MAGIC_REG, EFUSE_REGS, ESP8266_MAGIC};
use crate::connection::{AfterReset, BeforeReset, Connection, Loader, DEFAULT_TIMEOUT};
use crate::error::{Error, Result};
use crate::progress::{Event, ProgressSink};
use crate::stub::{run_stub_in_two_stages, run_stub_retrying, StubImage, FIRST_STAGE_AUTO_BAUD};
use crate::transport::Transport;

/// Bytes per FLASH_DATA block the ESP8266 ROM takes.
pub const ROM_FLASH_BLOCK_SIZE: u32 = 0x400;

/// How to open a session.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Reset before syncing (`--before`).
    pub before: BeforeReset,
    /// Reset-and-sync attempts (esptool's `--connect-attempts`, default 7).
    pub attempts: u32,
    /// The stub to run; `None` works with the ROM loader alone.
    pub stub: Option<StubImage>,
    /// A first-stage loader that brings `stub` over at the session's rate (`baud`, or
    /// [`FIRST_STAGE_AUTO_BAUD`] with `auto_baud`) instead of the ROM's 115200; used only
    /// when that rate is above 115200.
    pub first_stage: Option<StubImage>,
    /// Baud rate to switch to once the stub runs (`--baud`); the ROM cannot switch.
    pub baud: Option<u32>,
    /// Flash size to assume instead of the one the JEDEC ID says.
    pub flash_size: Option<FlashSize>,
    /// `--baud auto`: once the stub runs, climb to the fastest of
    /// [`AUTO_BAUD_RATES`](crate::ops::baud::AUTO_BAUD_RATES) a probe read passes at, and step
    /// down whenever a read block arrives corrupt (overrides `baud`).
    pub auto_baud: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            before: BeforeReset::DefaultReset,
            attempts: 7,
            stub: None,
            first_stage: None,
            baud: None,
            flash_size: None,
            auto_baud: false,
        }
    }
}

/// The flash chip found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlashInfo {
    /// JEDEC ID as the chip sends it: manufacturer, memory type, capacity (0xEF4016).
    pub jedec_id: u32,
    /// Size in bytes: the one given, else the one the JEDEC ID says.
    pub size: Option<u32>,
}

/// A session with a connected ESP8266.
pub struct Flasher<T: Transport> {
    pub(crate) connection: Connection<T>,
    chip: ChipInfo,
    flash: FlashInfo,
    /// `--baud auto` is on: a corrupt read block steps the rate down.
    pub(crate) auto_baud: bool,
    /// Whether the stub answers SPI_FLASH_MD5_PIECES (flashlab's does); unknown until asked.
    pub(crate) md5_pieces: Option<bool>,
    /// Whether the stub answers FLASH_REAL_SIZE (flashlab's does); unknown until asked.
    pub(crate) real_size_on_chip: Option<bool>,
    /// Whether reads may use READ_FLASH_DEFLATE: `Some(false)` once the stub has said it lacks
    /// the command (flashlab's has it) or the user asked for plain reads; unknown until asked.
    pub(crate) deflate_reads: Option<bool>,
    /// Read blocks still to go as plain READ_FLASH because the last compressed one saved
    /// little (see `ops::read`).
    pub(crate) plain_blocks_ahead: u32,
}

impl<T: Transport> Flasher<T> {
    /// Resets and syncs as `options.before` says, identifies the chip, starts
    /// the stub if one is given, attaches the flash and reads its ID.
    pub fn connect(
        transport: T,
        options: &ConnectOptions,
        progress: Box<dyn ProgressSink>,
    ) -> Result<Flasher<T>> {
        let mut connection = Connection::new(transport, progress);
        connection.connect(options.before, options.attempts)?;
        let magic = read_reg(&mut connection, CHIP_DETECT_MAGIC_REG)?;
        if magic != ESP8266_MAGIC {
            return Err(Error::UnsupportedChip {
                expected: ESP8266_MAGIC,
                got: magic,
            });
        }
        let mut efuses = [0u32; 4];
        for (word, address) in efuses.iter_mut().zip(EFUSE_REGS) {
            *word = read_reg(&mut connection, address)?;
        }
        let chip = ChipInfo::from_efuses(efuses)?;
        connection.report(Event::Connected(chip.clone()));
        if let Some(stub) = &options.stub {
            if connection.loader() == Loader::Rom {
                let first_stage_baud = match options.auto_baud {
                    true => Some(FIRST_STAGE_AUTO_BAUD),
                    false => options.baud,
                }
                .filter(|&baud| baud > ROM_BAUD);
                match (&options.first_stage, first_stage_baud) {
                    (Some(first_stage), Some(baud)) => {
                        run_stub_in_two_stages(&mut connection, first_stage, stub, baud)?
                    }
                    _ => run_stub_retrying(&mut connection, stub)?,
                }
            } else {
                // SYNC was answered by a stub left running by an earlier session.
                connection.report(Event::StubRunning);
            }
        }
        let mut flasher = Flasher {
            connection,
            chip,
            flash: FlashInfo {
                jedec_id: 0,
                size: None,
            },
            auto_baud: false,
            md5_pieces: None,
            real_size_on_chip: None,
            deflate_reads: None,
            plain_blocks_ahead: 0,
        };
        flasher.attach_flash()?;
        let jedec_id = flasher.read_jedec_id()?;
        let detected = flash_size_from_jedec(jedec_id).map(FlashSize::bytes);
        flasher.connection.report(Event::FlashDetected {
            jedec_id,
            size: detected,
        });
        flasher.flash = FlashInfo {
            jedec_id,
            size: options.flash_size.map(FlashSize::bytes).or(detected),
        };
        if let Some(size) = flasher.flash.size {
            flasher.set_flash_params(size)?;
        }
        if options.auto_baud && flasher.loader() == Loader::Stub {
            flasher.auto_baud()?;
        } else if let Some(baud) = options.baud {
            // The first stage may have brought the stub over at this rate already.
            if flasher.connection.transport().baud() != baud {
                flasher.change_baud(baud)?;
            }
        }
        Ok(flasher)
    }

    /// The chip.
    pub fn chip(&self) -> &ChipInfo {
        &self.chip
    }

    /// The flash chip.
    pub fn flash_info(&self) -> FlashInfo {
        self.flash
    }

    /// The flash size, or an error when it is unknown.
    pub fn flash_size(&self) -> Result<u32> {
        self.flash.size.ok_or(Error::UnknownFlashSize {
            jedec_id: self.flash.jedec_id,
        })
    }

    /// Which loader answers.
    pub fn loader(&self) -> Loader {
        self.connection.loader()
    }

    /// Reports an event through the session's sink.
    pub fn report(&mut self, event: Event) {
        self.connection.report(event);
    }

    /// The error for an operation that needs the stub, if it is not running.
    pub(crate) fn require_stub(&self, operation: &'static str) -> Result<()> {
        match self.connection.loader() {
            Loader::Stub => Ok(()),
            Loader::Rom => Err(Error::StubRequired { operation }),
        }
    }

    /// FLASH_BEGIN of nothing: the ROM attaches the flash and erases nothing.
    fn rom_empty_flash_begin(&mut self) -> Result<()> {
        let begin = BeginParams {
            size: 0,
            blocks: 0,
            block_size: ROM_FLASH_BLOCK_SIZE,
            offset: 0,
            encrypted: None,
        };
        self.connection
            .command(&Command::FlashBegin(begin), DEFAULT_TIMEOUT)?;
        Ok(())
    }

    /// Makes the SPI flash usable: the ROM attaches it on FLASH_BEGIN, a stub has SPI_ATTACH.
    fn attach_flash(&mut self) -> Result<()> {
        match self.connection.loader() {
            Loader::Rom => {
                self.rom_empty_flash_begin()?;
            }
            Loader::Stub => {
                self.connection.command(
                    &Command::SpiAttach {
                        config: 0,
                        rom_form: false,
                    },
                    DEFAULT_TIMEOUT,
                )?;
            }
        }
        Ok(())
    }

    /// Tells the stub the flash geometry (the ROM has no such command and needs none).
    fn set_flash_params(&mut self, size: u32) -> Result<()> {
        if self.connection.loader() == Loader::Stub {
            let params = SpiParams {
                id: 0,
                total_size: size,
                block_size: 64 * 1024,
                sector_size: 4 * 1024,
                page_size: 256,
                status_mask: 0xFFFF,
            };
            self.connection
                .command(&Command::SpiSetParams(params), DEFAULT_TIMEOUT)?;
        }
        Ok(())
    }

    /// Reads plain READ_FLASH blocks from now on, never READ_FLASH_DEFLATE (erased sectors are
    /// still skipped): `read_flash -u` and `backup -u`, and the baseline compressed reads are
    /// measured against.
    pub fn disable_compressed_reads(&mut self) {
        self.deflate_reads = Some(false);
    }

    /// Switches the UART to `baud` (stub only; the ESP8266 ROM cannot).
    pub fn change_baud(&mut self, baud: u32) -> Result<()> {
        self.require_stub("changing the baud rate")?;
        let current = self.connection.transport().baud();
        self.connection
            .command(&stub_baud_change(current, baud), DEFAULT_TIMEOUT)?;
        let transport = self.connection.transport_mut();
        transport.set_baud(baud)?;
        // Let the UART settle, then drop whatever arrived during the switch.
        transport.sleep(Duration::from_millis(50));
        transport.discard_input()?;
        self.connection.report(Event::BaudChanged { baud });
        Ok(())
    }

    /// Reads a 32-bit register or memory word.
    pub fn read_reg(&mut self, address: u32) -> Result<u32> {
        read_reg(&mut self.connection, address)
    }

    /// Writes the bits of `value` selected by `mask` to a register or memory word.
    pub fn write_reg(&mut self, address: u32, value: u32, mask: u32) -> Result<()> {
        let write = RegisterWrite {
            address,
            value,
            mask,
            delay_us: 0,
        };
        self.connection
            .command(&Command::WriteReg(vec![write]), DEFAULT_TIMEOUT)?;
        Ok(())
    }

    /// Leaves the loader as `after` says and hands back the transport.
    pub fn finish(mut self, after: AfterReset) -> Result<T> {
        match after {
            AfterReset::HardReset => self.connection.hard_reset()?,
            AfterReset::SoftReset => self.run()?,
            AfterReset::NoReset => {}
        }
        Ok(self.connection.into_transport())
    }

    /// Starts the firmware: the stub has RUN_USER_CODE (no answer); to the ROM
    /// esptool's `run` sends FLASH_BEGIN 0,0 and FLASH_END with flag 1, on
    /// which the ROM answers and jumps to the user code (flag 0 would reboot
    /// without a reliable answer).
    pub fn run(&mut self) -> Result<()> {
        match self.connection.loader() {
            Loader::Stub => self.connection.send(&Command::RunUserCode)?,
            Loader::Rom => {
                self.rom_empty_flash_begin()?;
                // No reboot: the ROM leaves the download loop for the user code.
                self.connection
                    .command(&Command::FlashEnd { reboot: false }, DEFAULT_TIMEOUT)?;
            }
        }
        self.connection.set_loader(Loader::Rom);
        Ok(())
    }

    /// The underlying transport (the emulator's flash, in tests).
    pub fn transport(&self) -> &T {
        self.connection.transport()
    }

    /// The underlying transport, mutable (to inject faults in tests).
    pub fn transport_mut(&mut self) -> &mut T {
        self.connection.transport_mut()
    }
}

pub(crate) fn read_reg<T: Transport>(connection: &mut Connection<T>, address: u32) -> Result<u32> {
    Ok(connection
        .command(&Command::ReadReg { address }, DEFAULT_TIMEOUT)?
        .value)
}
