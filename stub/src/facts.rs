//! The facts the C stub shares with esp-flasher and esp-emulator, rendered as a C header from
//! esp-protocol, where each is defined once: opcodes, status codes, packet sizes, SLIP bytes,
//! the UART0 and SPI0 registers, and where the ROM's loader goes on. `cargo run -p esp-stub
//! --example rebuild` writes it to `c/protocol.h`; the test `committed_image` fails while the
//! committed header is not what esp-protocol gives.
use std::fmt::Write as _;

use esp_protocol::packet::{self, Opcode};
use esp_protocol::rom_erase::{SECTORS_PER_BLOCK, SECTOR_SIZE};
use esp_protocol::rom_functions;
use esp_protocol::slip;
use esp_protocol::spi_flash::PAGE_SIZE;
use esp_protocol::spi_flash::{controller as spi, status as flash_status};
use esp_protocol::status::ErrorCode;
use esp_protocol::uart::{self, conf1, int, reg, status as uart_status};

/// Where the generated header lives, relative to this crate.
pub const HEADER_PATH: &str = "c/protocol.h";

/// The status codes the stub sends, by the names its C source uses.
const STATUS_NAMES: [(&str, ErrorCode); 10] = [
    ("ERR_BAD_DATA_LEN", ErrorCode::BadDataLength),
    ("ERR_BAD_DATA_CHECKSUM", ErrorCode::BadDataChecksum),
    ("ERR_BAD_BLOCKSIZE", ErrorCode::BadBlockSize),
    ("ERR_INVALID_COMMAND", ErrorCode::InvalidCommand),
    ("ERR_FAILED_SPI_OP", ErrorCode::FailedSpiOp),
    ("ERR_NOT_IN_FLASH_MODE", ErrorCode::NotInFlashMode),
    ("ERR_INFLATE_ERROR", ErrorCode::InflateError),
    ("ERR_NOT_ENOUGH_DATA", ErrorCode::NotEnoughData),
    ("ERR_TOO_MUCH_DATA", ErrorCode::TooMuchData),
    ("ERR_NOT_IMPLEMENTED", ErrorCode::CommandNotImplemented),
];

/// The header's text.
pub fn protocol_header() -> String {
    let mut out = String::from(
        "/* Generated from esp-protocol by `cargo run -p esp-stub --example rebuild`: do not\n \
         * edit. The facts the stub shares with esp-flasher and esp-emulator, each defined\n \
         * once, in Rust (stub/src/facts.rs renders them). */\n\
         #ifndef STUB_PROTOCOL_H\n#define STUB_PROTOCOL_H\n",
    );
    let mut section = |title: &str, defines: &[(String, u32)]| {
        let _ = write!(out, "\n/* {title} */\n");
        for (name, value) in defines {
            let _ = writeln!(out, "#define {name} 0x{value:02X}u");
        }
    };
    let named = |name: &str, value: u32| (name.to_owned(), value);

    let opcodes: Vec<_> = Opcode::ALL
        .iter()
        .map(|&opcode| (format!("OP_{}", opcode.name()), opcode as u32))
        .collect();
    section("Opcodes", &opcodes);
    let statuses: Vec<_> = STATUS_NAMES
        .iter()
        .map(|&(name, code)| named(name, u32::from(code.code())))
        .collect();
    section(
        "Status codes (a stub replies [code, 0]; 0 is success)",
        &statuses,
    );
    section(
        "Packets",
        &[
            named("DIRECTION_REQUEST", u32::from(packet::DIRECTION_REQUEST)),
            named("DIRECTION_RESPONSE", u32::from(packet::DIRECTION_RESPONSE)),
            named("REQUEST_HEADER_LEN", packet::HEADER_LEN as u32),
            named("DATA_HEADER_LEN", packet::DATA_HEADER_LEN as u32),
            named("CHECKSUM_SEED", u32::from(packet::CHECKSUM_SEED)),
            named("SYNC_PAYLOAD_LEN", packet::SYNC_PAYLOAD.len() as u32),
            named("SYNC_REPLIES", packet::SYNC_REPLIES as u32),
            named("MAX_DATA_BLOCK", packet::STUB_FLASH_BLOCK_SIZE),
            named("MAX_READ_PACKET", packet::STUB_READ_PACKET_SIZE),
            named("MAX_MD5_PIECES", packet::MAX_MD5_PIECES),
            named("MAX_DEFLATE_READ_BLOCK", packet::MAX_DEFLATE_READ_BLOCK),
            named(
                "DEFLATE_READ_HEADER_LEN",
                packet::DEFLATE_READ_HEADER_LEN as u32,
            ),
            named("DEFLATE_READ_RAW", u32::from(packet::DEFLATE_READ_RAW)),
            named(
                "DEFLATE_READ_DEFLATED",
                u32::from(packet::DEFLATE_READ_DEFLATED),
            ),
            named("SMALLEST_FLASH", packet::SMALLEST_FLASH),
            named("RAM_BLOCK_SIZE", packet::RAM_BLOCK_SIZE),
            named("FIRST_STAGE_SYNC_VALUE", packet::FIRST_STAGE_SYNC_VALUE),
        ],
    );
    section(
        "SLIP (RFC 1055)",
        &[
            named("SLIP_END", u32::from(slip::END)),
            named("SLIP_ESC", u32::from(slip::ESC)),
            named("SLIP_ESC_END", u32::from(slip::ESC_END)),
            named("SLIP_ESC_ESC", u32::from(slip::ESC_ESC)),
        ],
    );
    let uart0 = |offset: u32| uart::UART0_BASE + offset;
    section(
        "UART0",
        &[
            named("UART0_FIFO", uart0(reg::FIFO)),
            named("UART0_INT_ENA", uart0(reg::INT_ENA)),
            named("UART0_INT_CLR", uart0(reg::INT_CLR)),
            named("UART0_CLKDIV", uart0(reg::CLKDIV)),
            named("UART0_STATUS", uart0(reg::STATUS)),
            named("UART0_CONF1", uart0(reg::CONF1)),
            named("UART_INTERRUPT", uart::UART_INTERRUPT),
            named("UART_FIFO_LEN", uart::FIFO_LEN as u32),
            named("UART_CLKDIV_MASK", uart::CLKDIV_MASK),
            named("UART_INT_RXFIFO_FULL", int::RXFIFO_FULL),
            named("UART_INT_TXFIFO_EMPTY", int::TXFIFO_EMPTY),
            named("UART_INT_RXFIFO_OVF", int::RXFIFO_OVF),
            named("UART_INT_RXFIFO_TOUT", int::RXFIFO_TOUT),
            named("UART_STATUS_RX_COUNT_MASK", uart_status::RX_COUNT_MASK),
            named("UART_STATUS_TX_COUNT_SHIFT", uart_status::TX_COUNT_SHIFT),
            named("UART_STATUS_TX_COUNT_MASK", uart_status::TX_COUNT_MASK),
            named(
                "UART_CONF1_RXFIFO_FULL_SHIFT",
                conf1::RXFIFO_FULL_THRESHOLD_SHIFT,
            ),
            named(
                "UART_CONF1_TXFIFO_EMPTY_SHIFT",
                conf1::TXFIFO_EMPTY_THRESHOLD_SHIFT,
            ),
            named(
                "UART_CONF1_RX_TIMEOUT_SHIFT",
                conf1::RX_TIMEOUT_THRESHOLD_SHIFT,
            ),
            named("UART_CONF1_RX_TIMEOUT_ENABLE", conf1::RX_TIMEOUT_ENABLE),
        ],
    );
    section(
        "Flash geometry",
        &[
            named("SECTOR_SIZE", SECTOR_SIZE),
            named("BLOCK_SIZE", SECTOR_SIZE * SECTORS_PER_BLOCK),
            named("PAGE_SIZE", PAGE_SIZE as u32),
        ],
    );
    let spi0 = |offset: u32| spi::SPI0_BASE + offset;
    section(
        "SPI0, wired to the flash",
        &[
            named("SPI0_CMD", spi0(spi::CMD)),
            named("SPI0_ADDR", spi0(spi::ADDR)),
            named("SPI0_RD_STATUS", spi0(spi::RD_STATUS)),
            named("SPI0_W0", spi0(spi::W0)),
            named("SPI_ADDRESS_MASK", spi::ADDR_ADDRESS_MASK),
            named("SPI_LENGTH_SHIFT", spi::ADDR_LENGTH_SHIFT),
            named("SPI_DATA_BUFFER_LEN", spi::DATA_BUFFER_LEN as u32),
            named("SPI_CMD_WREN", spi::CMD_WREN),
            named("SPI_CMD_RDSR", spi::CMD_RDSR),
            named("SPI_CMD_PP", spi::CMD_PP),
            named("SPI_CMD_SE", spi::CMD_SE),
            named("SPI_CMD_BE", spi::CMD_BE),
            named("FLASH_STATUS_BUSY", u32::from(flash_status::BUSY)),
        ],
    );
    section(
        "Mask ROM",
        &[named("ROM_RETURN_TO_LOADER", rom_functions::LOADER_RETURN)],
    );
    out.push_str("\n#endif\n");
    out
}
