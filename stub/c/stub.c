/* flashlab's flasher stub for the ESP8266.
 *
 * The ROM's serial loader places this program in RAM and jumps to stub_main.
 * It greets with "OHAI" and then speaks esptool's stub protocol over UART0:
 * SLIP frames, a request header (direction 0, opcode, length, checksum) and
 * replies (direction 1, opcode, length, value, data, two status bytes).
 *
 * Design choices, each for a board as much as for the virtual chip:
 * - UART0 is polled. A reply is sent only once a command's work is done, so
 *   the host never sends while the flash is busy and the 128-byte RX FIFO
 *   cannot overflow; while a reply or READ_FLASH data waits for room in the
 *   TX FIFO, the RX FIFO is drained into the frame decoder.
 * - Flash work goes through the ROM's SPI functions (SPIRead, SPIWrite,
 *   SPIEraseSector/Block/Chip, SPIParamCfg), so the ROM's flash descriptor
 *   bounds every access. Block protection is left as the chip has it.
 * - Errors are reported in the reply to the command that caused them, with
 *   the status codes esptool knows. */

#include <stdint.h>

#include "inflate.h"
#include "rom.h"

#define REG(address) (*(volatile uint32_t *)(address))

/* UART0 (ESP8266 technical reference). */
#define UART0_FIFO 0x60000000u
#define UART0_INT_ENA 0x6000000Cu
#define UART0_INT_CLR 0x60000010u
#define UART0_CLKDIV 0x60000014u
#define UART0_STATUS 0x6000001Cu
#define UART_RX_COUNT(status) ((status)&0xFFu)
#define UART_TX_COUNT(status) (((status) >> 16) & 0xFFu)
#define UART_FIFO_LEN 128u
#define UART_CLKDIV_MASK 0xFFFFFu

/* SLIP (RFC 1055). */
#define SLIP_END 0xC0u
#define SLIP_ESC 0xDBu
#define SLIP_ESC_END 0xDCu
#define SLIP_ESC_ESC 0xDDu

/* Opcodes. */
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
/* flashlab's own: the MD5 of each piece of a region in one reply. */
#define OP_SPI_FLASH_MD5_PIECES 0xE0u
#define MAX_MD5_PIECES 256u

/* Status codes esptool knows. */
#define STATUS_OK 0x00u
#define ERR_BAD_DATA_LEN 0xC0u
#define ERR_BAD_DATA_CHECKSUM 0xC1u
#define ERR_BAD_BLOCKSIZE 0xC2u
#define ERR_FAILED_SPI_OP 0xC4u
#define ERR_NOT_IN_FLASH_MODE 0xC6u
#define ERR_INFLATE_ERROR 0xC7u
#define ERR_NOT_ENOUGH_DATA 0xC8u
#define ERR_NOT_IMPLEMENTED 0xFFu

#define REQUEST_HEADER_LEN 8u
#define DATA_HEADER_LEN 16u
#define MAX_DATA_BLOCK 0x4000u
#define MAX_FRAME (REQUEST_HEADER_LEN + DATA_HEADER_LEN + MAX_DATA_BLOCK)
#define SECTOR_SIZE 0x1000u
#define BLOCK_SIZE 0x10000u
#define PAGE_SIZE 0x100u
#define MAX_READ_PACKET 0x1000u
#define MAX_READ_IN_FLIGHT 64u
#define CHECKSUM_SEED 0xEFu
#define SYNC_REPLIES 8
/* Where the ROM goes on with its loader (and so boots the firmware) when the stub returns. */
#define ROM_RETURN_TO_LOADER 0x400010A8u

/* The frame being received, and whether a whole one waits to be handled. */
static uint8_t frame[MAX_FRAME] __attribute__((aligned(4)));
static uint32_t frame_len;
static uint8_t frame_escaped;
static uint8_t frame_overflow;
static uint8_t frame_ready;

/* READ_FLASH in progress: the host's acknowledgements arrive as 4-byte frames. */
static uint8_t reading;
static uint32_t read_acked;
static uint8_t read_ack_broken;

/* The flash's size, as SPI_SET_PARAMS last said (16 MiB until then, as the ROM's default). */
static uint32_t flash_size = 16u << 20;

/* FLASH_BEGIN / FLASH_DEFL_BEGIN in progress. */
static struct {
    uint8_t active;
    uint8_t compressed;
    uint8_t error;
    uint32_t next_sequence;
    uint32_t next_address; /* flash address of the next byte of data */
    uint32_t remaining;    /* bytes of data still to come */
    uint32_t erased_to;    /* everything below is erased, from the sector of the start */
    uint32_t erase_end;    /* the end of the last sector the write reaches */
    uint32_t page_start;   /* flash address of page_buffer[0] (a multiple of 4) */
    uint32_t page_fill;    /* bytes of page_buffer in use */
} write_state;
static uint8_t page_buffer[SECTOR_SIZE] __attribute__((aligned(4)));
static struct inflater inflater;

/* MEM_BEGIN / MEM_DATA in progress. */
static struct {
    uint8_t active;
    uint32_t next_address;
    uint32_t remaining;
} mem_state;

static uint32_t read_le32(const uint8_t *bytes) {
    return (uint32_t)bytes[0] | ((uint32_t)bytes[1] << 8) | ((uint32_t)bytes[2] << 16) |
           ((uint32_t)bytes[3] << 24);
}

static void write_le32(uint8_t *bytes, uint32_t value) {
    bytes[0] = (uint8_t)value;
    bytes[1] = (uint8_t)(value >> 8);
    bytes[2] = (uint8_t)(value >> 16);
    bytes[3] = (uint8_t)(value >> 24);
}

/* ---- Receiving ---- */

/* One complete frame from the host: acknowledgements during READ_FLASH are
 * taken at once, anything else waits in `frame` for the main loop. */
static void frame_complete(void) {
    if (frame_overflow) {
        frame_overflow = 0;
        frame_len = 0;
        return;
    }
    if (reading) {
        if (frame_len == 4) {
            read_acked = read_le32(frame);
        } else {
            read_ack_broken = 1;
        }
        frame_len = 0;
        return;
    }
    frame_ready = 1;
}

static void receive_byte(uint8_t byte) {
    if (byte == SLIP_END) {
        frame_escaped = 0;
        if (frame_len > 0 || frame_overflow) {
            frame_complete();
        }
        return;
    }
    if (frame_escaped) {
        frame_escaped = 0;
        byte = byte == SLIP_ESC_END ? SLIP_END : byte == SLIP_ESC_ESC ? SLIP_ESC : byte;
    } else if (byte == SLIP_ESC) {
        frame_escaped = 1;
        return;
    }
    if (frame_len < MAX_FRAME) {
        frame[frame_len++] = byte;
    } else {
        frame_overflow = 1;
    }
}

/* Moves what the RX FIFO holds into the decoder, stopping at a whole frame
 * the main loop has not taken yet. */
static void drain_rx(void) {
    while (!frame_ready && UART_RX_COUNT(REG(UART0_STATUS)) > 0) {
        receive_byte((uint8_t)REG(UART0_FIFO));
    }
}

/* ---- Sending ---- */

static void send_raw(uint8_t byte) {
    while (UART_TX_COUNT(REG(UART0_STATUS)) >= UART_FIFO_LEN - 2) {
        drain_rx();
    }
    REG(UART0_FIFO) = byte;
}

static void send_escaped(const uint8_t *bytes, uint32_t length) {
    for (uint32_t i = 0; i < length; i++) {
        uint8_t byte = bytes[i];
        if (byte == SLIP_END) {
            send_raw(SLIP_ESC);
            send_raw(SLIP_ESC_END);
        } else if (byte == SLIP_ESC) {
            send_raw(SLIP_ESC);
            send_raw(SLIP_ESC_ESC);
        } else {
            send_raw(byte);
        }
    }
}

/* A frame of raw bytes (READ_FLASH data, its digest, the greeting). */
static void send_frame(const uint8_t *bytes, uint32_t length) {
    send_raw(SLIP_END);
    send_escaped(bytes, length);
    send_raw(SLIP_END);
}

static void reply(uint8_t opcode, uint32_t value, const uint8_t *data, uint32_t data_len,
                  uint8_t status) {
    uint8_t header[8];
    uint8_t trailer[2] = {status, 0};
    uint32_t length = data_len + 2;
    header[0] = 1;
    header[1] = opcode;
    header[2] = (uint8_t)length;
    header[3] = (uint8_t)(length >> 8);
    write_le32(header + 4, value);
    send_raw(SLIP_END);
    send_escaped(header, sizeof header);
    send_escaped(data, data_len);
    send_escaped(trailer, sizeof trailer);
    send_raw(SLIP_END);
}

/* Waits until the TX FIFO has sent everything (a rate change or a jump follows). */
static void flush_tx(void) {
    while (UART_TX_COUNT(REG(UART0_STATUS)) > 0) {
    }
    /* The last byte still shifts out of the transmitter: 10 bits at 9600 baud or faster. */
    ets_delay_us(1100);
}

/* ---- Flash ---- */

static int in_flash(uint32_t address, uint32_t length) {
    return address <= flash_size && length <= flash_size - address;
}

/* Erases [address, end) in 64 KiB blocks where aligned and whole, else sectors. */
static int erase_range(uint32_t address, uint32_t end) {
    while (address < end) {
        if (address % BLOCK_SIZE == 0 && end - address >= BLOCK_SIZE) {
            if (SPIEraseBlock(address / BLOCK_SIZE) != 0) {
                return -1;
            }
            address += BLOCK_SIZE;
        } else {
            if (SPIEraseSector(address / SECTOR_SIZE) != 0) {
                return -1;
            }
            address += SECTOR_SIZE;
        }
    }
    return 0;
}

/* Programs page_buffer (padded with 0xFF to whole words, which leaves erased flash as it
 * is), erasing ahead what the data reaches first. */
static int flush_page_buffer(void) {
    uint32_t filled = write_state.page_fill;
    uint32_t length = (filled + 3u) & ~3u;
    uint32_t end = write_state.page_start + length;
    uint32_t partial = filled & 3u;
    if (length == 0) {
        return 0;
    }
    for (uint32_t i = filled; i < length; i++) {
        page_buffer[i] = 0xFF;
    }
    if (write_state.erased_to < end) {
        uint32_t erase_to = (end + SECTOR_SIZE - 1) & ~(SECTOR_SIZE - 1);
        uint32_t from = write_state.erased_to;
        /* Whole blocks ahead are erased as blocks when the write covers them. */
        if (from % BLOCK_SIZE == 0 && write_state.erase_end - from >= BLOCK_SIZE) {
            erase_to = from + BLOCK_SIZE;
        }
        if (erase_to > write_state.erase_end) {
            erase_to = write_state.erase_end;
        }
        if (erase_range(from, erase_to) != 0) {
            return -1;
        }
        write_state.erased_to = erase_to;
    }
    if (SPIWrite(write_state.page_start, page_buffer, length) != 0) {
        return -1;
    }
    /* A word only partly known was programmed with 0xFF for the rest, which leaves those
     * bytes erased: it is programmed again once the bytes that complete it arrive. */
    if (partial != 0) {
        uint32_t word = (length - 4) / 4;
        ((uint32_t *)page_buffer)[0] = ((uint32_t *)page_buffer)[word];
        write_state.page_start = end - 4;
        write_state.page_fill = partial;
    } else {
        write_state.page_start = end;
        write_state.page_fill = 0;
    }
    return 0;
}

/* Data of the image being written, in order: staged a sector at a time. */
static void write_data(const uint8_t *data, uint32_t length) {
    if (write_state.error != STATUS_OK) {
        return;
    }
    if (length > write_state.remaining) {
        /* Past the announced size: the host's padding of the last block (or of the image
         * it compressed), which esptool's stubs drop too. */
        length = write_state.remaining;
    }
    write_state.remaining -= length;
    write_state.next_address += length;
    while (length > 0) {
        uint32_t room = SECTOR_SIZE - write_state.page_fill;
        uint32_t take = length < room ? length : room;
        memcpy(page_buffer + write_state.page_fill, data, take);
        write_state.page_fill += take;
        data += take;
        length -= take;
        if (write_state.page_fill == SECTOR_SIZE && flush_page_buffer() != 0) {
            write_state.error = ERR_FAILED_SPI_OP;
            return;
        }
    }
}

static void inflated(void *context, const uint8_t *data, uint32_t length) {
    (void)context;
    write_data(data, length);
}

static uint8_t flash_begin(const uint8_t *payload, uint32_t length, int compressed) {
    uint32_t size, offset, block_size;
    if (length != 16 && length != 20) {
        return ERR_BAD_DATA_LEN;
    }
    size = read_le32(payload);
    block_size = read_le32(payload + 8);
    offset = read_le32(payload + 12);
    if (block_size > MAX_DATA_BLOCK) {
        return ERR_BAD_BLOCKSIZE;
    }
    if (!in_flash(offset, size)) {
        return ERR_FAILED_SPI_OP;
    }
    write_state.active = 1;
    write_state.compressed = (uint8_t)compressed;
    write_state.error = STATUS_OK;
    write_state.next_sequence = 0;
    write_state.next_address = offset;
    write_state.remaining = size;
    write_state.erased_to = offset & ~(SECTOR_SIZE - 1);
    write_state.erase_end = (offset + size + SECTOR_SIZE - 1) & ~(SECTOR_SIZE - 1);
    write_state.page_start = offset & ~3u;
    write_state.page_fill = offset & 3u;
    memset(page_buffer, 0xFF, 4);
    if (compressed) {
        inflate_init(&inflater);
    }
    return STATUS_OK;
}

static uint8_t flash_data(const uint8_t *payload, uint32_t length, uint32_t checksum,
                          int compressed) {
    uint32_t data_len, sequence, i;
    uint8_t sum = CHECKSUM_SEED;
    if (!write_state.active || write_state.compressed != compressed) {
        return ERR_NOT_IN_FLASH_MODE;
    }
    if (length < DATA_HEADER_LEN) {
        return ERR_BAD_DATA_LEN;
    }
    data_len = read_le32(payload);
    sequence = read_le32(payload + 4);
    if (data_len != length - DATA_HEADER_LEN) {
        return ERR_BAD_DATA_LEN;
    }
    payload += DATA_HEADER_LEN;
    for (i = 0; i < data_len; i++) {
        sum ^= payload[i];
    }
    if (sum != (uint8_t)checksum) {
        return ERR_BAD_DATA_CHECKSUM;
    }
    /* A block sent again because its reply was lost is already written. */
    if (sequence + 1 == write_state.next_sequence) {
        return write_state.error;
    }
    if (sequence != write_state.next_sequence) {
        return ERR_BAD_DATA_LEN;
    }
    write_state.next_sequence++;
    if (write_state.error == STATUS_OK) {
        if (compressed) {
            int status = inflate_feed(&inflater, payload, data_len, inflated, 0);
            if (status == INFLATE_ERROR && write_state.error == STATUS_OK) {
                write_state.error = ERR_INFLATE_ERROR;
            }
        } else {
            write_data(payload, data_len);
        }
    }
    /* Everything received is in the flash before the reply: esptool checks the digest
     * after the last block without a FLASH_END. */
    if (write_state.error == STATUS_OK && flush_page_buffer() != 0) {
        write_state.error = ERR_FAILED_SPI_OP;
    }
    return write_state.error;
}

static uint8_t flash_end(const uint8_t *payload, uint32_t length, int *reboot) {
    uint8_t status;
    *reboot = 0;
    if (!write_state.active) {
        return ERR_NOT_IN_FLASH_MODE;
    }
    write_state.active = 0;
    if (write_state.error == STATUS_OK && flush_page_buffer() != 0) {
        write_state.error = ERR_FAILED_SPI_OP;
    }
    status = write_state.error;
    if (status == STATUS_OK && write_state.remaining > 0) {
        status = ERR_NOT_ENOUGH_DATA;
    }
    *reboot = status == STATUS_OK && length >= 4 && read_le32(payload) == 0;
    return status;
}

/* Buffer for reads: a sector and the word around each end of an unaligned range. */
static uint8_t read_buffer[SECTOR_SIZE + 8] __attribute__((aligned(4)));

/* Reads up to a sector from `address` (any alignment) and returns where the bytes start in
 * read_buffer, or 0 when the ROM refuses. SPIRead moves whole words, so the read is
 * widened to the words around the range: inside the chip, whose size is a multiple of 4. */
static const uint8_t *read_flash_bytes(uint32_t address, uint32_t length) {
    uint32_t start = address & ~3u;
    uint32_t end = (address + length + 3u) & ~3u;
    if (SPIRead(start, read_buffer, end - start) != 0) {
        return 0;
    }
    return read_buffer + (address - start);
}

/* MD5 of [address, address + length) into digest, read a sector at a time. */
static int flash_md5(uint32_t address, uint32_t length, uint8_t digest[16]) {
    static struct rom_md5 context;
    MD5Init(&context);
    while (length > 0) {
        uint32_t chunk = length < SECTOR_SIZE ? length : SECTOR_SIZE;
        const uint8_t *bytes = read_flash_bytes(address, chunk);
        if (bytes == 0) {
            return -1;
        }
        MD5Update(&context, bytes, chunk);
        address += chunk;
        length -= chunk;
    }
    MD5Final(digest, &context);
    return 0;
}

/* READ_FLASH: frames of packet_size, at most max_in_flight ahead of the host's
 * acknowledgements, then the MD5 of everything sent. */
static void read_flash(uint32_t address, uint32_t length, uint32_t packet_size,
                       uint32_t max_in_flight) {
    static struct rom_md5 context;
    uint32_t sent = 0;
    uint8_t digest[16];
    MD5Init(&context);
    reading = 1;
    read_acked = 0;
    read_ack_broken = 0;
    while (!read_ack_broken && read_acked < length) {
        drain_rx();
        if (sent < length && sent - read_acked < packet_size * max_in_flight) {
            uint32_t chunk = length - sent < packet_size ? length - sent : packet_size;
            const uint8_t *bytes = read_flash_bytes(address + sent, chunk);
            if (bytes == 0) {
                break;
            }
            MD5Update(&context, bytes, chunk);
            send_frame(bytes, chunk);
            sent += chunk;
        }
        if (read_acked > sent) {
            break;
        }
    }
    reading = 0;
    MD5Final(digest, &context);
    send_frame(digest, sizeof digest);
}

/* ---- Commands ---- */

/* True when [address, address + length) reaches the stub's own code, data or buffers. */
static int overlaps_stub(uint32_t address, uint32_t length) {
    extern uint8_t _stub_text_start[], _stub_text_end[], _stub_ram_start[], _stub_ram_end[];
    uint32_t end = address + length;
    if (end < address) {
        return 1;
    }
    return (address < (uint32_t)_stub_text_end && end > (uint32_t)_stub_text_start) ||
           (address < (uint32_t)_stub_ram_end && end > (uint32_t)_stub_ram_start);
}

static void write_registers(const uint8_t *payload, uint32_t length) {
    for (uint32_t at = 0; at + 16 <= length; at += 16) {
        uint32_t address = read_le32(payload + at);
        uint32_t value = read_le32(payload + at + 4);
        uint32_t mask = read_le32(payload + at + 8);
        uint32_t delay = read_le32(payload + at + 12);
        if (mask != 0xFFFFFFFFu) {
            value = (REG(address) & ~mask) | (value & mask);
        }
        REG(address) = value;
        if (delay != 0) {
            ets_delay_us(delay);
        }
    }
}

static void change_baudrate(uint32_t new_baud, uint32_t old_baud) {
    uint32_t divider = REG(UART0_CLKDIV) & UART_CLKDIV_MASK;
    if (new_baud == 0 || old_baud == 0) {
        return;
    }
    /* The clock is what the divider in force gives at the rate the host uses now. */
    divider = (uint32_t)(((uint64_t)divider * old_baud) / new_baud);
    flush_tx();
    uart_div_modify(0, divider);
    ets_delay_us(1000);
}

static void handle(const uint8_t *request, uint32_t request_len) {
    uint8_t opcode = request[1];
    uint32_t length = request[2] | ((uint32_t)request[3] << 8);
    uint32_t checksum = read_le32(request + 4);
    const uint8_t *payload = request + REQUEST_HEADER_LEN;
    uint8_t status = STATUS_OK;
    uint32_t value = 0;
    uint8_t digest[16];
    int reboot = 0;

    /* A frame whose length disagrees with its header lost or gained bytes on the line: its
     * opcode may be as wrong as its length, so it gets no reply (the host times out and
     * sends it again), as the ROM loader does. */
    if (request_len < REQUEST_HEADER_LEN || request[0] != 0 ||
        length != request_len - REQUEST_HEADER_LEN) {
        return;
    }
    switch (opcode) {
    case OP_SYNC:
        if (length != 36) {
            status = ERR_BAD_DATA_LEN;
            break;
        }
        for (int i = 0; i < SYNC_REPLIES; i++) {
            reply(opcode, 0, 0, 0, STATUS_OK);
        }
        return;
    case OP_READ_REG:
        if (length != 4) {
            status = ERR_BAD_DATA_LEN;
            break;
        }
        value = REG(read_le32(payload));
        break;
    case OP_WRITE_REG:
        if (length % 16 != 0) {
            status = ERR_BAD_DATA_LEN;
            break;
        }
        write_registers(payload, length);
        break;
    case OP_SPI_SET_PARAMS:
        if (length != 24) {
            status = ERR_BAD_DATA_LEN;
            break;
        }
        flash_size = read_le32(payload + 4);
        SPIParamCfg(read_le32(payload), flash_size, read_le32(payload + 8),
                    read_le32(payload + 12), read_le32(payload + 16), read_le32(payload + 20));
        break;
    case OP_SPI_ATTACH:
        if (length != 4 && length != 8) {
            status = ERR_BAD_DATA_LEN;
        }
        break;
    case OP_CHANGE_BAUDRATE:
        if (length != 8) {
            status = ERR_BAD_DATA_LEN;
            break;
        }
        reply(opcode, 0, 0, 0, STATUS_OK);
        change_baudrate(read_le32(payload), read_le32(payload + 4));
        return;
    case OP_FLASH_BEGIN:
    case OP_FLASH_DEFL_BEGIN:
        status = flash_begin(payload, length, opcode == OP_FLASH_DEFL_BEGIN);
        break;
    case OP_FLASH_DATA:
    case OP_FLASH_DEFL_DATA:
        status = flash_data(payload, length, checksum, opcode == OP_FLASH_DEFL_DATA);
        break;
    case OP_FLASH_END:
    case OP_FLASH_DEFL_END:
        status = flash_end(payload, length, &reboot);
        break;
    case OP_SPI_FLASH_MD5:
        if (length != 16) {
            status = ERR_BAD_DATA_LEN;
            break;
        }
        if (!in_flash(read_le32(payload), read_le32(payload + 4))) {
            status = ERR_FAILED_SPI_OP;
            break;
        }
        if (flash_md5(read_le32(payload), read_le32(payload + 4), digest) != 0) {
            status = ERR_FAILED_SPI_OP;
            break;
        }
        reply(opcode, 0, digest, sizeof digest, STATUS_OK);
        return;
    case OP_SPI_FLASH_MD5_PIECES: {
        static uint8_t digests[MAX_MD5_PIECES * 16];
        uint32_t address = read_le32(payload);
        uint32_t size = read_le32(payload + 4);
        uint32_t unit = read_le32(payload + 8);
        uint32_t count = 0;
        /* A unit of at most 1 MiB keeps unit * MAX_MD5_PIECES within 32 bits. */
        if (length != 12 || unit == 0 || unit > (1u << 20) || size > unit * MAX_MD5_PIECES) {
            status = ERR_BAD_DATA_LEN;
            break;
        }
        if (!in_flash(address, size)) {
            status = ERR_FAILED_SPI_OP;
            break;
        }
        while (size > 0) {
            uint32_t piece = size < unit ? size : unit;
            if (flash_md5(address, piece, digests + 16 * count) != 0) {
                status = ERR_FAILED_SPI_OP;
                break;
            }
            address += piece;
            size -= piece;
            count++;
        }
        if (status != STATUS_OK) {
            break;
        }
        reply(opcode, 0, digests, 16 * count, STATUS_OK);
        return;
    }
    case OP_ERASE_FLASH:
        if (SPIEraseChip() != 0) {
            status = ERR_FAILED_SPI_OP;
        }
        break;
    case OP_ERASE_REGION: {
        uint32_t address = read_le32(payload);
        uint32_t size = read_le32(payload + 4);
        if (length != 8 || address % SECTOR_SIZE != 0 || size % SECTOR_SIZE != 0) {
            status = ERR_BAD_DATA_LEN;
        } else if (!in_flash(address, size) || erase_range(address, address + size) != 0) {
            status = ERR_FAILED_SPI_OP;
        }
        break;
    }
    case OP_READ_FLASH: {
        uint32_t address = read_le32(payload);
        uint32_t size = read_le32(payload + 4);
        uint32_t packet_size = read_le32(payload + 8);
        uint32_t in_flight = read_le32(payload + 12);
        if (length != 16 || packet_size == 0 || packet_size > MAX_READ_PACKET) {
            status = ERR_BAD_DATA_LEN;
        } else if (!in_flash(address, size)) {
            status = ERR_FAILED_SPI_OP;
        } else {
            reply(opcode, 0, 0, 0, STATUS_OK);
            /* esptool asks for 64 frames in flight; more would only risk the RX FIFO. */
            if (in_flight == 0) {
                in_flight = 1;
            } else if (in_flight > MAX_READ_IN_FLIGHT) {
                in_flight = MAX_READ_IN_FLIGHT;
            }
            /* The request is taken: the decoder's buffer now receives acknowledgements. */
            frame_len = 0;
            frame_ready = 0;
            read_flash(address, size, packet_size, in_flight);
            return;
        }
        break;
    }
    case OP_MEM_BEGIN:
        if (length != 16) {
            status = ERR_BAD_DATA_LEN;
            break;
        }
        mem_state.active = 1;
        mem_state.remaining = read_le32(payload);
        mem_state.next_address = read_le32(payload + 12);
        break;
    case OP_MEM_DATA: {
        uint32_t data_len = length >= DATA_HEADER_LEN ? read_le32(payload) : 0;
        uint8_t sum = CHECKSUM_SEED;
        if (!mem_state.active) {
            status = ERR_NOT_IN_FLASH_MODE;
            break;
        }
        if (length < DATA_HEADER_LEN || data_len != length - DATA_HEADER_LEN ||
            data_len > mem_state.remaining) {
            status = ERR_BAD_DATA_LEN;
            break;
        }
        for (uint32_t i = 0; i < data_len; i++) {
            sum ^= payload[DATA_HEADER_LEN + i];
        }
        if (sum != (uint8_t)checksum) {
            status = ERR_BAD_DATA_CHECKSUM;
            break;
        }
        if (overlaps_stub(mem_state.next_address, data_len)) {
            status = ERR_BAD_DATA_LEN;
            break;
        }
        memcpy((void *)mem_state.next_address, payload + DATA_HEADER_LEN, data_len);
        mem_state.next_address += data_len;
        mem_state.remaining -= data_len;
        break;
    }
    case OP_MEM_END:
        if (length != 8) {
            status = ERR_BAD_DATA_LEN;
            break;
        }
        if (!mem_state.active) {
            status = ERR_NOT_IN_FLASH_MODE;
            break;
        }
        mem_state.active = 0;
        if (mem_state.remaining > 0) {
            status = ERR_NOT_ENOUGH_DATA;
            break;
        }
        reply(opcode, 0, 0, 0, STATUS_OK);
        if (read_le32(payload) == 0) {
            flush_tx();
            ((void (*)(void))read_le32(payload + 4))();
        }
        return;
    case OP_RUN_USER_CODE:
        flush_tx();
        ((void (*)(void))ROM_RETURN_TO_LOADER)();
        return;
    default:
        status = ERR_NOT_IMPLEMENTED;
        break;
    }
    reply(opcode, value, 0, 0, status);
    if (reboot) {
        flush_tx();
        software_reset();
    }
}

void stub_main(void) {
    extern uint32_t _bss_start[];
    extern uint32_t _bss_end[];
    static const uint8_t greeting[4] = {'O', 'H', 'A', 'I'};
    for (uint32_t *word = _bss_start; word < _bss_end; word++) {
        *word = 0;
    }
    flash_size = 16u << 20;
    /* Polled: nothing of the ROM's may take UART0's bytes. */
    REG(UART0_INT_ENA) = 0;
    REG(UART0_INT_CLR) = 0xFFFFFFFFu;
    SelectSpiFunction(0);
    spi_flash_attach(0, 0);
    SPIParamCfg(0, flash_size, BLOCK_SIZE, SECTOR_SIZE, PAGE_SIZE, 0xFFFF);
    send_frame(greeting, sizeof greeting);
    for (;;) {
        drain_rx();
        if (frame_ready) {
            handle(frame, frame_len);
            frame_len = 0;
            frame_ready = 0;
        }
    }
}
