/* Generated from esp-protocol by `cargo run -p esp-stub --example rebuild`: do not
 * edit. The facts the stub shares with esp-flasher and esp-emulator, each defined
 * once, in Rust (stub/src/facts.rs renders them). */
#ifndef STUB_PROTOCOL_H
#define STUB_PROTOCOL_H

/* Opcodes */
#define OP_FLASH_BEGIN 0x02u
#define OP_FLASH_DATA 0x03u
#define OP_FLASH_END 0x04u
#define OP_MEM_BEGIN 0x05u
#define OP_MEM_END 0x06u
#define OP_MEM_DATA 0x07u
#define OP_SYNC 0x08u
#define OP_WRITE_REG 0x09u
#define OP_READ_REG 0x0Au
#define OP_SPI_SET_PARAMS 0x0Bu
#define OP_SPI_ATTACH 0x0Du
#define OP_CHANGE_BAUDRATE 0x0Fu
#define OP_FLASH_DEFL_BEGIN 0x10u
#define OP_FLASH_DEFL_DATA 0x11u
#define OP_FLASH_DEFL_END 0x12u
#define OP_SPI_FLASH_MD5 0x13u
#define OP_ERASE_FLASH 0xD0u
#define OP_ERASE_REGION 0xD1u
#define OP_READ_FLASH 0xD2u
#define OP_RUN_USER_CODE 0xD3u
#define OP_SPI_FLASH_MD5_PIECES 0xE0u
#define OP_READ_FLASH_DEFLATE 0xE1u
#define OP_FLASH_REAL_SIZE 0xE2u

/* Status codes (a stub replies [code, 0]; 0 is success) */
#define ERR_BAD_DATA_LEN 0xC0u
#define ERR_BAD_DATA_CHECKSUM 0xC1u
#define ERR_BAD_BLOCKSIZE 0xC2u
#define ERR_INVALID_COMMAND 0xC3u
#define ERR_FAILED_SPI_OP 0xC4u
#define ERR_NOT_IN_FLASH_MODE 0xC6u
#define ERR_INFLATE_ERROR 0xC7u
#define ERR_NOT_ENOUGH_DATA 0xC8u
#define ERR_TOO_MUCH_DATA 0xC9u
#define ERR_NOT_IMPLEMENTED 0xFFu

/* Packets */
#define DIRECTION_REQUEST 0x00u
#define DIRECTION_RESPONSE 0x01u
#define REQUEST_HEADER_LEN 0x08u
#define DATA_HEADER_LEN 0x10u
#define CHECKSUM_SEED 0xEFu
#define SYNC_PAYLOAD_LEN 0x24u
#define SYNC_REPLIES 0x08u
#define MAX_DATA_BLOCK 0x4000u
#define MAX_READ_PACKET 0x1000u
#define MAX_MD5_PIECES 0x100u
#define MAX_DEFLATE_READ_BLOCK 0x1000u
#define DEFLATE_READ_HEADER_LEN 0x11u
#define DEFLATE_READ_RAW 0x00u
#define DEFLATE_READ_DEFLATED 0x01u
#define SMALLEST_FLASH 0x40000u
#define RAM_BLOCK_SIZE 0x1800u
#define FIRST_STAGE_SYNC_VALUE 0x3152444Cu

/* SLIP (RFC 1055) */
#define SLIP_END 0xC0u
#define SLIP_ESC 0xDBu
#define SLIP_ESC_END 0xDCu
#define SLIP_ESC_ESC 0xDDu

/* UART0 */
#define UART0_FIFO 0x60000000u
#define UART0_INT_ENA 0x6000000Cu
#define UART0_INT_CLR 0x60000010u
#define UART0_CLKDIV 0x60000014u
#define UART0_STATUS 0x6000001Cu
#define UART0_CONF1 0x60000024u
#define UART_INTERRUPT 0x05u
#define UART_FIFO_LEN 0x80u
#define UART_CLKDIV_MASK 0xFFFFFu
#define UART_INT_RXFIFO_FULL 0x01u
#define UART_INT_TXFIFO_EMPTY 0x02u
#define UART_INT_RXFIFO_OVF 0x10u
#define UART_INT_RXFIFO_TOUT 0x100u
#define UART_STATUS_RX_COUNT_MASK 0xFFu
#define UART_STATUS_TX_COUNT_SHIFT 0x10u
#define UART_STATUS_TX_COUNT_MASK 0xFFu
#define UART_CONF1_RXFIFO_FULL_SHIFT 0x00u
#define UART_CONF1_TXFIFO_EMPTY_SHIFT 0x08u
#define UART_CONF1_RX_TIMEOUT_SHIFT 0x18u
#define UART_CONF1_RX_TIMEOUT_ENABLE 0x80000000u

/* Flash geometry */
#define SECTOR_SIZE 0x1000u
#define BLOCK_SIZE 0x10000u
#define PAGE_SIZE 0x100u

/* SPI0, wired to the flash */
#define SPI0_CMD 0x60000200u
#define SPI0_ADDR 0x60000204u
#define SPI0_RD_STATUS 0x60000210u
#define SPI0_W0 0x60000240u
#define SPI_ADDRESS_MASK 0xFFFFFFu
#define SPI_LENGTH_SHIFT 0x18u
#define SPI_DATA_BUFFER_LEN 0x40u
#define SPI_CMD_WREN 0x40000000u
#define SPI_CMD_RDSR 0x8000000u
#define SPI_CMD_PP 0x2000000u
#define SPI_CMD_SE 0x1000000u
#define SPI_CMD_BE 0x800000u
#define FLASH_STATUS_BUSY 0x01u

/* Mask ROM */
#define ROM_RETURN_TO_LOADER 0x400010A8u

#endif
