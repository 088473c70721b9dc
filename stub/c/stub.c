/* flashlab's flasher stub for the ESP8266.
 *
 * The ROM's serial loader places this program in RAM and jumps to stub_main.
 * It greets with "OHAI" and then speaks esptool's stub protocol over UART0:
 * SLIP frames, a request header (direction 0, opcode, length, checksum) and
 * replies (direction 1, opcode, length, value, data, two status bytes).
 *
 * Design choices, each for a board as much as for the virtual chip:
 * - UART0's receive interrupt decodes SLIP into two frame buffers, so one
 *   frame arrives while the main loop works on the other and the 128-byte RX
 *   FIFO never overflows, however long the work takes. When both buffers
 *   are full the interrupt is masked and bytes wait in the FIFO; the host
 *   sends a request only after the reply to the one before, so that does
 *   not happen in the protocol's normal course.
 * - A write block is acknowledged as soon as its checksum is good, before
 *   it is inflated and programmed, so the next block crosses the line while
 *   this one goes into the flash (esptool's stubs do the same). A failure
 *   while programming is reported in the reply to the next block, to
 *   FLASH_END, and shows in the MD5 the host checks. Any other command
 *   waits until the flash has finished everything before it.
 * - Writes program the flash through the SPI controller's registers, 64
 *   bytes per page-program command, and do not wait for the chip to finish:
 *   the next block of data is inflated while it programs. Reads, digests
 *   and whole erases go through the ROM's functions (SPIRead, SPIErase*,
 *   SPIParamCfg). Block protection is left as the chip has it.
 * - Replies go into a ring buffer that UART0's TX-FIFO-empty interrupt (the
 *   same handler as the receive interrupt) moves into the 128-byte FIFO, so
 *   the next block of a read is read, hashed and deflated while the one
 *   before is on the line. Whatever must follow the last byte out (a rate
 *   change, a jump, a reset) waits until the ring and the FIFO are empty.
 * - Errors are reported with the status codes esptool knows.
 *
 * Built with STUB_FIRST_STAGE it is the first-stage loader: SYNC, READ_REG,
 * CHANGE_BAUDRATE and the MEM commands only, about a tenth of the size, so
 * that the ROM's 115200 baud carries little; the host then switches the rate
 * and sends the full stub through it, and it jumps to the full stub handing
 * over the UART clock it learned (see stub_main). */

#include <stdint.h>

#ifndef STUB_FIRST_STAGE
#include "deflate.h"
#include "inflate.h"
#endif
#include "protocol.h"
#include "rom.h"

#define REG(address) (*(volatile uint32_t *)(address))

/* UART0's receive interrupt: at a FIFO half full, or once the line has been idle for two
 * byte times with bytes in the FIFO. */
#define UART_RX_INTERRUPTS (UART_INT_RXFIFO_FULL | UART_INT_RXFIFO_OVF | UART_INT_RXFIFO_TOUT)
#define UART_RX_FULL_THRESHOLD 64u
#define UART_RX_TIMEOUT_BYTES 2u
/* UART0's TX-FIFO-empty interrupt: once the FIFO holds fewer bytes than this. At 3M baud
 * they last 200 µs, long enough for the interrupt to come. */
#define UART_TX_REFILL_LEVEL 64u
#define UART_RX_COUNT(status) ((status) & UART_STATUS_RX_COUNT_MASK)
#define UART_TX_COUNT(status) (((status) >> UART_STATUS_TX_COUNT_SHIFT) & UART_STATUS_TX_COUNT_MASK)

/* SPI0's built-in commands take the address in ADDR (SPI_ADDRESS_MASK) and a page program's
 * byte count above it (SPI_LENGTH_SHIFT), with the data in W0..W15; a command's CMD bit
 * clears when it has been sent. */

#define STATUS_OK 0x00u
#ifdef STUB_FIRST_STAGE
/* The first stage takes MEM_DATA blocks, nothing longer. */
#define MAX_FRAME (REQUEST_HEADER_LEN + DATA_HEADER_LEN + RAM_BLOCK_SIZE)
#define SYNC_VALUE FIRST_STAGE_SYNC_VALUE
#else
#define MAX_FRAME (REQUEST_HEADER_LEN + DATA_HEADER_LEN + MAX_DATA_BLOCK)
#define SYNC_VALUE 0u
#endif
/* What the first stage passes to the full stub's stub_main with the UART's clock and rate. */
#define HANDOFF_MAGIC 0x53544731u
/* Bytes of replies waiting for the UART (a power of two): more than a deflated 4 KiB block
 * usually takes, so the line stays busy while the next one is deflated. */
#define TX_RING_LEN 4096u
/* esptool asks for 64 frames in flight; more would only risk the RX FIFO. */
#define MAX_READ_IN_FLIGHT 64u

/* Frames from the host. The receive interrupt decodes into frames[receiving]
 * and, once a frame is whole, marks it ready and moves to the other buffer;
 * the main loop handles frames[handling] and then frees it. Each flag has one
 * writer per direction (the interrupt sets ready, the main loop clears it),
 * so no lock is needed. */
static uint8_t frames[2][MAX_FRAME] __attribute__((aligned(4)));
static volatile uint32_t frame_lens[2];
static volatile uint8_t frame_ready[2];
static uint8_t receiving;
static uint8_t handling;
static uint32_t frame_len;
static uint8_t frame_escaped;
static uint8_t frame_overflow;

/* READ_FLASH in progress: the host's acknowledgements arrive as 4-byte frames,
 * which the interrupt takes at once. */
static volatile uint8_t reading;
static volatile uint32_t read_acked;
static volatile uint8_t read_ack_broken;

#ifndef STUB_FIRST_STAGE
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
    uint32_t page_done;    /* bytes of page_buffer already programmed (a multiple of 4) */
} write_state;
static uint8_t page_buffer[SECTOR_SIZE] __attribute__((aligned(4)));
/* A compressed write inflates and a compressed read deflates, never both at once (a read
 * ends a compressed write), so they share their working memory. */
static union {
    struct inflater inflater;
    struct {
        struct deflater deflater;
        uint8_t out[SECTOR_SIZE];
    } read;
} work;

#endif

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

/* Keeps the compiler from moving memory accesses across the hand-over of a frame. */
#define BARRIER() __asm__ volatile("" ::: "memory")

/* One complete frame from the host: acknowledgements during READ_FLASH are
 * taken at once, anything else is handed to the main loop. */
static void frame_complete(void) {
    if (frame_overflow) {
        frame_overflow = 0;
        frame_len = 0;
        return;
    }
    if (reading) {
        if (frame_len == 4) {
            read_acked = read_le32(frames[receiving]);
        } else {
            read_ack_broken = 1;
        }
        frame_len = 0;
        return;
    }
    frame_lens[receiving] = frame_len;
    BARRIER();
    frame_ready[receiving] = 1;
    receiving ^= 1;
    frame_len = 0;
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
        frames[receiving][frame_len++] = byte;
    } else {
        frame_overflow = 1;
    }
}

/* ---- Sending ---- */

/* Replies on their way out: the main loop appends at tx_head, the interrupt takes from
 * tx_tail (each index has one writer). */
static uint8_t tx_ring[TX_RING_LEN];
static volatile uint32_t tx_head;
static volatile uint32_t tx_tail;

/* INT_ENA is shared: the main loop only sets bits in it and the interrupt only clears them,
 * each after looking at the state that decides. A bit the main loop sets back right after
 * the interrupt cleared it costs one more interrupt, which finds nothing to do and clears
 * it again. */
static void int_enable(uint32_t bits) {
    REG(UART0_INT_ENA) |= bits;
}

/* Fills the TX FIFO from the ring; with the ring empty the TX interrupt is turned off
 * until the next byte is queued (tx_kick). */
static void tx_refill(void) {
    uint32_t tail = tx_tail;
    uint32_t room = UART_FIFO_LEN - 1 - UART_TX_COUNT(REG(UART0_STATUS));
    while (room > 0 && tail != tx_head) {
        REG(UART0_FIFO) = tx_ring[tail % TX_RING_LEN];
        tail++;
        room--;
    }
    tx_tail = tail;
    if (tail == tx_head) {
        REG(UART0_INT_ENA) &= ~UART_INT_TXFIFO_EMPTY;
    }
    REG(UART0_INT_CLR) = UART_INT_TXFIFO_EMPTY;
}

/* Lets the interrupt send what the ring holds. */
static void tx_kick(void) {
    int_enable(UART_INT_TXFIFO_EMPTY);
}

/* UART0's interrupt. Receiving moves the RX FIFO into the frame decoder; with both
 * buffers full it masks the receive interrupts and leaves the bytes in the FIFO, until
 * the main loop frees a buffer (rx_resume). Sending refills the TX FIFO from the ring. */
static void uart_interrupt(void *arg, void *frame) {
    (void)arg;
    (void)frame;
    while (UART_RX_COUNT(REG(UART0_STATUS)) > 0) {
        if (frame_ready[receiving]) {
            REG(UART0_INT_ENA) &= ~UART_RX_INTERRUPTS;
            break;
        }
        receive_byte((uint8_t)REG(UART0_FIFO));
    }
    REG(UART0_INT_CLR) = UART_RX_INTERRUPTS;
    if (REG(UART0_INT_ENA) & UART_INT_TXFIFO_EMPTY) {
        tx_refill();
    }
}

static void rx_resume(void) {
    int_enable(UART_RX_INTERRUPTS);
}

static void uart_start(void) {
    REG(UART0_INT_ENA) = 0;
    REG(UART0_CONF1) = (UART_RX_FULL_THRESHOLD << UART_CONF1_RXFIFO_FULL_SHIFT) |
                       (UART_TX_REFILL_LEVEL << UART_CONF1_TXFIFO_EMPTY_SHIFT) |
                       (UART_RX_TIMEOUT_BYTES << UART_CONF1_RX_TIMEOUT_SHIFT) |
                       UART_CONF1_RX_TIMEOUT_ENABLE;
    REG(UART0_INT_CLR) = 0xFFFFFFFFu;
    ets_isr_attach(UART_INTERRUPT, uart_interrupt, 0);
    ets_isr_unmask(1u << UART_INTERRUPT);
    rx_resume();
}

/* Before control leaves the stub (a jump to loaded code, the ROM's loader, a reset), after
 * flush_tx: nothing of ours may stay attached to UART0. */
static void uart_stop(void) {
    REG(UART0_INT_ENA) = 0;
    ets_isr_mask(1u << UART_INTERRUPT);
    REG(UART0_INT_CLR) = 0xFFFFFFFFu;
}

/* Queues a byte; with the ring full, waits for the interrupt to make room. */
static void send_raw(uint8_t byte) {
    uint32_t head = tx_head;
    if (head - tx_tail >= TX_RING_LEN) {
        tx_kick();
        while (head - tx_tail >= TX_RING_LEN) {
        }
    }
    tx_ring[head % TX_RING_LEN] = byte;
    BARRIER();
    tx_head = head + 1;
}

/* The END byte that closes a frame; the frame goes out. */
static void send_end(void) {
    send_raw(SLIP_END);
    tx_kick();
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
    send_end();
}

/* A reply in parts, for data computed while it is sent: the header, then data_len bytes
 * through send_escaped, then reply_end. */
static void reply_start(uint8_t opcode, uint32_t value, uint32_t data_len) {
    uint8_t header[8];
    uint32_t length = data_len + 2;
    header[0] = DIRECTION_RESPONSE;
    header[1] = opcode;
    header[2] = (uint8_t)length;
    header[3] = (uint8_t)(length >> 8);
    write_le32(header + 4, value);
    send_raw(SLIP_END);
    send_escaped(header, sizeof header);
}

static void reply_end(uint8_t status) {
    uint8_t trailer[2] = {status, 0};
    send_escaped(trailer, sizeof trailer);
    send_end();
}

static void reply(uint8_t opcode, uint32_t value, const uint8_t *data, uint32_t data_len,
                  uint8_t status) {
    reply_start(opcode, value, data_len);
    send_escaped(data, data_len);
    reply_end(status);
}

/* Waits until the ring and the TX FIFO have sent everything (a rate change or a jump
 * follows). */
static void flush_tx(void) {
    tx_kick();
    while (tx_tail != tx_head) {
    }
    while (UART_TX_COUNT(REG(UART0_STATUS)) > 0) {
    }
    /* The last byte still shifts out of the transmitter: 10 bits at 9600 baud or faster. */
    ets_delay_us(1100);
}

#ifndef STUB_FIRST_STAGE
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

/* ---- Programming through the SPI controller ---- */

static void spi_command(uint32_t command) {
    REG(SPI0_CMD) = command;
    while (REG(SPI0_CMD) != 0) {
    }
}

/* Waits until the flash chip has finished its last program or erase. */
static void flash_wait_idle(void) {
    do {
        REG(SPI0_RD_STATUS) = 0;
        spi_command(SPI_CMD_RDSR);
    } while (REG(SPI0_RD_STATUS) & FLASH_STATUS_BUSY);
}

/* Starts erasing the sector or 64 KiB block at `address` and returns while the chip erases. */
static void flash_start_erase(uint32_t command, uint32_t address) {
    flash_wait_idle();
    spi_command(SPI_CMD_WREN);
    REG(SPI0_ADDR) = address & SPI_ADDRESS_MASK;
    spi_command(command);
}

/* Starts programming `length` bytes (a multiple of 4, at most 64, inside one flash page) and
 * returns while the chip programs. */
static void flash_start_program(uint32_t address, const uint8_t *data, uint32_t length) {
    const uint32_t *words = (const uint32_t *)data;
    flash_wait_idle();
    spi_command(SPI_CMD_WREN);
    REG(SPI0_ADDR) = (address & SPI_ADDRESS_MASK) | (length << SPI_LENGTH_SHIFT);
    for (uint32_t i = 0; i < length / 4; i++) {
        REG(SPI0_W0 + 4 * i) = words[i];
    }
    spi_command(SPI_CMD_PP);
}

/* Starts erasing the next unit of the write's range: the whole 64 KiB block when the write
 * covers it, else a sector. */
static void erase_next_unit(void) {
    uint32_t from = write_state.erased_to;
    if (from % BLOCK_SIZE == 0 && write_state.erase_end - from >= BLOCK_SIZE) {
        flash_start_erase(SPI_CMD_BE, from);
        write_state.erased_to = from + BLOCK_SIZE;
    } else {
        flash_start_erase(SPI_CMD_SE, from);
        write_state.erased_to = from + SECTOR_SIZE;
    }
}

/* Erases everything up to `end`, the end of the data about to be programmed. */
static void erase_ahead(uint32_t end) {
    while (write_state.erased_to < end) {
        erase_next_unit();
    }
}

/* Programs what page_buffer holds beyond page_done, in pieces that end on 64-byte boundaries
 * (so each stays inside a 256-byte flash page), as far as whole words go; with `all`, also
 * the last partial word, padded with 0xFF (which leaves those bytes erased). */
static void program_staged(int all) {
    uint32_t available = all ? (write_state.page_fill + 3u) & ~3u : write_state.page_fill & ~3u;
    for (uint32_t i = write_state.page_fill; i < available; i++) {
        page_buffer[i] = 0xFF;
    }
    while (write_state.page_done < available) {
        uint32_t address = write_state.page_start + write_state.page_done;
        uint32_t piece = SPI_DATA_BUFFER_LEN - address % SPI_DATA_BUFFER_LEN;
        if (piece > available - write_state.page_done) {
            if (!all) {
                return;
            }
            piece = available - write_state.page_done;
        }
        erase_ahead(address + piece);
        flash_start_program(address, page_buffer + write_state.page_done, piece);
        write_state.page_done += piece;
    }
}

/* Programs everything staged. A word only partly known was programmed with 0xFF for the rest:
 * it stays in page_buffer and is programmed again once the bytes that complete it arrive. */
static void flush_page_buffer(void) {
    uint32_t partial = write_state.page_fill & 3u;
    program_staged(1);
    if (partial != 0) {
        uint32_t last_word = write_state.page_fill & ~3u;
        ((uint32_t *)page_buffer)[0] = ((uint32_t *)page_buffer)[last_word / 4];
        write_state.page_start += last_word;
        write_state.page_fill = partial;
    } else {
        write_state.page_start += write_state.page_fill;
        write_state.page_fill = 0;
    }
    write_state.page_done = 0;
}

/* Data of the image being written, in order: staged in page_buffer and programmed in pieces
 * as it comes. */
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
        program_staged(0);
        if (write_state.page_fill == SECTOR_SIZE) {
            flush_page_buffer();
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
    write_state.page_done = 0;
    memset(page_buffer, 0xFF, 4);
    if (compressed) {
        inflate_init(&work.inflater);
    }
    return STATUS_OK;
}

/* Checks a FLASH_DATA / FLASH_DEFL_DATA block. Returns the status to reply with (an error
 * from an earlier block if there was one) and sets *is_new when the block is the next one
 * and is to be written. */
static uint8_t flash_data_check(const uint8_t *payload, uint32_t length, uint32_t checksum,
                                int compressed, int *is_new) {
    uint32_t data_len, sequence, i;
    uint8_t sum = CHECKSUM_SEED;
    *is_new = 0;
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
    /* A block sent again because its reply was lost is already taken. */
    if (sequence + 1 == write_state.next_sequence) {
        return write_state.error;
    }
    if (sequence != write_state.next_sequence) {
        return ERR_BAD_DATA_LEN;
    }
    write_state.next_sequence++;
    *is_new = write_state.error == STATUS_OK;
    return write_state.error;
}

/* Writes a checked block's data (already acknowledged) and starts programming all of it. */
static void flash_data_write(const uint8_t *data, uint32_t length, int compressed) {
    if (compressed) {
        int status = inflate_feed(&work.inflater, data, length, inflated, 0);
        if (status == INFLATE_ERROR && write_state.error == STATUS_OK) {
            write_state.error = ERR_INFLATE_ERROR;
        }
    } else {
        write_data(data, length);
    }
    if (write_state.error == STATUS_OK) {
        flush_page_buffer();
        /* The chip erases what the next block will reach while that block is on the line. */
        if (write_state.erased_to < write_state.erase_end &&
            write_state.erased_to - write_state.next_address < BLOCK_SIZE) {
            erase_next_unit();
        }
    }
}

static uint8_t flash_end(const uint8_t *payload, uint32_t length, int *reboot) {
    uint8_t status;
    *reboot = 0;
    if (!write_state.active) {
        return ERR_NOT_IN_FLASH_MODE;
    }
    write_state.active = 0;
    if (write_state.error == STATUS_OK) {
        flush_page_buffer();
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

/* READ_FLASH_DEFLATE: blocks of block_size, each one frame of its kind, its MD5 and its
 * bytes, deflated when that is shorter; at most max_in_flight blocks ahead of the host's
 * acknowledgements (bytes of blocks received, as for READ_FLASH); then the range's MD5. */
static void read_flash_deflate(uint32_t address, uint32_t length, uint32_t block_size,
                               uint32_t max_in_flight) {
    static struct rom_md5 range_md5, block_md5;
    uint8_t header[DEFLATE_READ_HEADER_LEN];
    uint32_t sent = 0;
    MD5Init(&range_md5);
    reading = 1;
    read_acked = 0;
    read_ack_broken = 0;
    while (!read_ack_broken && read_acked < length) {
        if (sent < length && sent - read_acked < block_size * max_in_flight) {
            uint32_t chunk = length - sent < block_size ? length - sent : block_size;
            const uint8_t *bytes = read_flash_bytes(address + sent, chunk);
            uint32_t packed;
            if (bytes == 0) {
                break;
            }
            MD5Update(&range_md5, bytes, chunk);
            MD5Init(&block_md5);
            MD5Update(&block_md5, bytes, chunk);
            MD5Final(header + 1, &block_md5);
            packed = deflate_block(&work.read.deflater, bytes, chunk, work.read.out, chunk - 1);
            header[0] = packed != 0 ? DEFLATE_READ_DEFLATED : DEFLATE_READ_RAW;
            send_raw(SLIP_END);
            send_escaped(header, sizeof header);
            send_escaped(packed != 0 ? work.read.out : bytes, packed != 0 ? packed : chunk);
            send_end();
            sent += chunk;
        }
        if (read_acked > sent) {
            break;
        }
    }
    reading = 0;
    MD5Final(header + 1, &range_md5);
    send_frame(header + 1, 16);
}

/* ---- FLASH_REAL_SIZE: where a fake chip's addresses wrap ---- */

/* 1 when [a, a + length) and [b, b + length) hold the same bytes (sector by sector, by
 * their MD5s, so one read buffer serves), 0 when not, -1 when the ROM cannot read. */
static int same_bytes(uint32_t a, uint32_t b, uint32_t length) {
    uint8_t first[16], second[16];
    for (uint32_t at = 0; at < length; at += SECTOR_SIZE) {
        if (flash_md5(a + at, SECTOR_SIZE, first) != 0 ||
            flash_md5(b + at, SECTOR_SIZE, second) != 0) {
            return -1;
        }
        if (memcmp(first, second, sizeof first) != 0) {
            return 0;
        }
    }
    return 1;
}

/* The probe's marker: a word pattern no firmware or erased flash holds by chance. */
static uint32_t marker_word(uint32_t index) {
    return 0xF1A5B10Bu ^ (index * 0x9E3779B9u);
}

/* 1 when the sector at `address` is erased (all 0xFF). */
static int sector_erased(uint32_t address) {
    const uint32_t *words = (const uint32_t *)read_flash_bytes(address, SECTOR_SIZE);
    if (words == 0) {
        return 0;
    }
    for (uint32_t i = 0; i < SECTOR_SIZE / 4; i++) {
        if (words[i] != 0xFFFFFFFFu) {
            return 0;
        }
    }
    return 1;
}

/* Programs the marker into the erased sector at `address`, reports whether it shows one
 * window on (1) or not (0), and erases the sector again. */
static int marker_seen_one_window_on(uint32_t address, uint32_t window) {
    uint32_t words[SPI_DATA_BUFFER_LEN / 4];
    const uint32_t *seen;
    int wraps = 1;
    for (uint32_t at = 0; at < SECTOR_SIZE; at += SPI_DATA_BUFFER_LEN) {
        for (uint32_t i = 0; i < SPI_DATA_BUFFER_LEN / 4; i++) {
            words[i] = marker_word(at / 4 + i);
        }
        flash_start_program(address + at, (const uint8_t *)words, SPI_DATA_BUFFER_LEN);
    }
    flash_wait_idle();
    seen = (const uint32_t *)read_flash_bytes(address + window, SECTOR_SIZE);
    for (uint32_t i = 0; i < SECTOR_SIZE / 4; i++) {
        if (seen == 0 || seen[i] != marker_word(i)) {
            wraps = 0;
            break;
        }
    }
    flash_start_erase(SPI_CMD_SE, address);
    flash_wait_idle();
    return wraps;
}

/* 1 when the flash reads the same at a and a + window, as a chip of `window` bytes does;
 * -1 when the ROM cannot read. Both halves alike (a blank chip) cannot tell by reading: a
 * marker in an erased sector must show one window on. */
static int wraps_every(uint32_t window) {
    const uint32_t candidates[3] = {0, window - SECTOR_SIZE, window / 2};
    int same = same_bytes(0, window, window);
    if (same != 1) {
        return same;
    }
    for (uint32_t i = 0; i < 3; i++) {
        if (sector_erased(candidates[i])) {
            return marker_seen_one_window_on(candidates[i], window);
        }
    }
    /* Both halves alike and no erased sector to mark: nothing past the window differs from
     * what the first half holds, so it is treated as wrapping. */
    return 1;
}

/* The size at which the flash's addresses wrap, `claimed` when they do not wrap below it,
 * 0 when the ROM cannot read. */
static uint32_t flash_real_size(uint32_t claimed) {
    uint32_t real = claimed;
    for (uint32_t window = claimed / 2; window >= SMALLEST_FLASH; window /= 2) {
        int wraps = wraps_every(window);
        if (wraps < 0) {
            return 0;
        }
        if (!wraps) {
            break;
        }
        real = window;
    }
    return real;
}

#endif

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

#ifndef STUB_FIRST_STAGE
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
#endif

/* CHANGE_BAUDRATE(new, old): the UART's clock is learned once, from the divider the ROM's
 * loader set for the rate the host used then; every divider after that is the clock over the
 * rate asked for, rounded. Scaling the divider in force instead would carry each step's
 * rounding into the next: 3M, 2M, 1.5M, then 921600 ends 6% off. The requested rate is
 * new * current / old, which covers both conventions hosts use: esptool's (new, current)
 * and esp-flasher's (new * 115200 / current, 115200), the one esptool 5's stub expects. */
static uint32_t uart_clock;
static uint32_t current_baud;

static void change_baudrate(uint32_t new_baud, uint32_t old_baud) {
    uint32_t target;
    if (new_baud == 0 || old_baud == 0) {
        return;
    }
    if (uart_clock == 0) {
        uart_clock = (REG(UART0_CLKDIV) & UART_CLKDIV_MASK) * old_baud;
        current_baud = old_baud;
    }
    target = (uint32_t)(((uint64_t)new_baud * current_baud) / old_baud);
    if (target == 0) {
        return;
    }
    flush_tx();
    uart_div_modify(0, (uart_clock + target / 2) / target);
    current_baud = target;
    ets_delay_us(1000);
}

#ifndef STUB_FIRST_STAGE
/* The frames a read may send ahead of the host's acknowledgements: what the host asked for,
 * at least one and at most MAX_READ_IN_FLIGHT. */
static uint32_t read_window(uint32_t in_flight) {
    if (in_flight == 0) {
        return 1;
    }
    return in_flight > MAX_READ_IN_FLIGHT ? MAX_READ_IN_FLIGHT : in_flight;
}
#endif

static void handle(const uint8_t *request, uint32_t request_len) {
    uint8_t opcode = request[1];
    uint32_t length = request[2] | ((uint32_t)request[3] << 8);
    uint32_t checksum = read_le32(request + 4);
    const uint8_t *payload = request + REQUEST_HEADER_LEN;
    uint8_t status = STATUS_OK;
    uint32_t value = 0;
#ifndef STUB_FIRST_STAGE
    uint8_t digest[16];
    int reboot = 0;
#endif

    /* A frame whose length disagrees with its header lost or gained bytes on the line: its
     * opcode may be as wrong as its length, so it gets no reply (the host times out and
     * sends it again), as the ROM loader does. */
    if (request_len < REQUEST_HEADER_LEN || request[0] != DIRECTION_REQUEST ||
        length != request_len - REQUEST_HEADER_LEN) {
        return;
    }
#ifndef STUB_FIRST_STAGE
    /* Only a data block may find the flash still programming the one before. */
    if (opcode != OP_FLASH_DATA && opcode != OP_FLASH_DEFL_DATA) {
        flash_wait_idle();
    }
#endif
    switch (opcode) {
    case OP_SYNC:
        if (length != SYNC_PAYLOAD_LEN) {
            status = ERR_BAD_DATA_LEN;
            break;
        }
        for (uint32_t i = 0; i < SYNC_REPLIES; i++) {
            reply(opcode, SYNC_VALUE, 0, 0, STATUS_OK);
        }
        return;
    case OP_READ_REG:
        if (length != 4) {
            status = ERR_BAD_DATA_LEN;
            break;
        }
        value = REG(read_le32(payload));
        break;
    case OP_CHANGE_BAUDRATE:
        if (length != 8) {
            status = ERR_BAD_DATA_LEN;
            break;
        }
        reply(opcode, 0, 0, 0, STATUS_OK);
        change_baudrate(read_le32(payload), read_le32(payload + 4));
        return;
#ifndef STUB_FIRST_STAGE
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
    case OP_FLASH_BEGIN:
    case OP_FLASH_DEFL_BEGIN:
        status = flash_begin(payload, length, opcode == OP_FLASH_DEFL_BEGIN);
        break;
    case OP_FLASH_DATA:
    case OP_FLASH_DEFL_DATA: {
        int compressed = opcode == OP_FLASH_DEFL_DATA;
        int is_new;
        status = flash_data_check(payload, length, checksum, compressed, &is_new);
        /* Acknowledged before it is written, so the next block arrives meanwhile. */
        reply(opcode, 0, 0, 0, status);
        if (is_new) {
            flash_data_write(payload + DATA_HEADER_LEN, read_le32(payload), compressed);
        }
        return;
    }
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
        uint32_t address = read_le32(payload);
        uint32_t size = read_le32(payload + 4);
        uint32_t unit = read_le32(payload + 8);
        uint32_t count;
        /* A unit of at most 1 MiB keeps unit * MAX_MD5_PIECES within 32 bits. */
        if (length != 12 || unit == 0 || unit > (1u << 20) || size > unit * MAX_MD5_PIECES) {
            status = ERR_BAD_DATA_LEN;
            break;
        }
        if (!in_flash(address, size)) {
            status = ERR_FAILED_SPI_OP;
            break;
        }
        /* Each digest goes out as it is computed; after a failed read the rest are zeros
         * and the status says so. */
        count = size / unit + (size % unit != 0);
        reply_start(opcode, 0, 16 * count);
        while (count-- > 0) {
            uint32_t piece = size < unit ? size : unit;
            if (status != STATUS_OK || flash_md5(address, piece, digest) != 0) {
                status = ERR_FAILED_SPI_OP;
                memset(digest, 0, sizeof digest);
            }
            send_escaped(digest, sizeof digest);
            address += piece;
            size -= piece;
        }
        reply_end(status);
        return;
    }
    case OP_FLASH_REAL_SIZE: {
        uint32_t claimed = read_le32(payload);
        /* A power of two, as JEDEC capacities are, inside what SPI_SET_PARAMS set. */
        if (length != 4 || claimed < SMALLEST_FLASH || (claimed & (claimed - 1)) != 0 ||
            claimed > flash_size) {
            status = ERR_BAD_DATA_LEN;
        } else if (write_state.active) {
            status = ERR_INVALID_COMMAND;
        } else {
            value = flash_real_size(claimed);
            if (value == 0) {
                status = ERR_FAILED_SPI_OP;
            }
        }
        break;
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
            in_flight = read_window(in_flight);
            read_flash(address, size, packet_size, in_flight);
            return;
        }
        break;
    }
    case OP_READ_FLASH_DEFLATE: {
        uint32_t address = read_le32(payload);
        uint32_t size = read_le32(payload + 4);
        uint32_t block_size = read_le32(payload + 8);
        uint32_t in_flight = read_le32(payload + 12);
        if (length != 16 || block_size == 0 || block_size > MAX_DEFLATE_READ_BLOCK) {
            status = ERR_BAD_DATA_LEN;
        } else if (!in_flash(address, size)) {
            status = ERR_FAILED_SPI_OP;
        } else {
            reply(opcode, 0, 0, 0, STATUS_OK);
            in_flight = read_window(in_flight);
            /* The compressor takes the inflater's memory: a compressed write must begin again. */
            if (write_state.compressed) {
                write_state.active = 0;
            }
            read_flash_deflate(address, size, block_size, in_flight);
            return;
        }
        break;
    }
    case OP_RUN_USER_CODE:
        flush_tx();
        uart_stop();
        /* The ROM goes on with its loader, and so boots the firmware. */
        ((void (*)(void))ROM_RETURN_TO_LOADER)();
        return;
#endif
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
            uart_stop();
            /* The UART's clock and rate go along for the full stub (stub_main); any other
             * program ignores them. */
            ((void (*)(uint32_t, uint32_t, uint32_t))read_le32(payload + 4))(
                HANDOFF_MAGIC, uart_clock, current_baud);
        }
        return;
    default:
        status = ERR_NOT_IMPLEMENTED;
        break;
    }
    reply(opcode, value, 0, 0, status);
#ifndef STUB_FIRST_STAGE
    if (reboot) {
        flush_tx();
        uart_stop();
        software_reset();
    }
#endif
}

/* The entry. The ROM's loader calls it with nothing in particular in its arguments; the
 * first stage (MEM_END) with HANDOFF_MAGIC, the UART's clock and the rate in force once it
 * changed the rate (clock 0 if it did not). That pair is taken when it describes the
 * divider the UART has, so CHANGE_BAUDRATE goes on from the rate in force. */
void stub_main(uint32_t magic, uint32_t clock, uint32_t baud) {
    extern uint32_t _bss_start[];
    extern uint32_t _bss_end[];
    static const uint8_t greeting[4] = {'O', 'H', 'A', 'I'};
    for (uint32_t *word = _bss_start; word < _bss_end; word++) {
        *word = 0;
    }
    if (magic == HANDOFF_MAGIC && clock != 0 && baud != 0 &&
        (clock + baud / 2) / baud == (REG(UART0_CLKDIV) & UART_CLKDIV_MASK)) {
        uart_clock = clock;
        current_baud = baud;
    }
#ifndef STUB_FIRST_STAGE
    flash_size = 16u << 20;
    SelectSpiFunction(0);
    spi_flash_attach(0, 0);
    SPIParamCfg(0, flash_size, BLOCK_SIZE, SECTOR_SIZE, PAGE_SIZE, 0xFFFF);
#endif
    uart_start();
    send_frame(greeting, sizeof greeting);
    for (;;) {
        if (frame_ready[handling]) {
            BARRIER();
            handle(frames[handling], frame_lens[handling]);
            frame_ready[handling] = 0;
            handling ^= 1;
            rx_resume();
        }
    }
}
