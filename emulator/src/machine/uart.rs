//! The ESP8266's UARTs (UART0 at 0x60000000, UART1 at 0x60000F00) as their
//! registers show them: 128-byte RX and TX FIFOs, the interrupt registers and
//! the configuration the interrupts depend on.
//!
//! Interrupt model: RXFIFO_FULL is raised while the RX FIFO holds at least
//! `rxfifo_full_thrhd` bytes (and at least one), TXFIFO_EMPTY while the TX FIFO
//! holds fewer than `txfifo_empty_thrhd`; both are re-raised at once by INT_CLR
//! when their condition still holds, as the chip's ISRs expect (they clear,
//! then drain). RXFIFO_OVF is raised when a byte arrives at a full RX FIFO,
//! RXFIFO_TOUT when the line has gone idle with bytes left in the FIFO and the
//! timeout is enabled (CONF1 bit 31); the line's timing is the caller's, who
//! reports idleness with [`Uart::line_idle`]. INT_ST is INT_RAW & INT_ENA.
//!
//! Not modelled: parity and framing errors, break, autobaud, hardware flow
//! control, loopback and signal inversion (their bits are stored and read
//! back).

use std::collections::VecDeque;

pub(super) use esp_protocol::uart::CLKDIV_MASK;
use esp_protocol::uart::{conf0, conf1, status};
pub use esp_protocol::uart::{int, reg, FIFO_LEN};

/// STATUS bit 31 (UART_TXD in Espressif's header) reads 0 once the transmitter is idle:
/// esptool 5's stub waits for it to clear before changing the rate, and does on real boards.
/// The wire takes each byte at once here, so it stays 0; RXD idles high.
const IDLE_STATUS: u32 = status::RXD;

/// Reset values from Espressif's register header.
const RESET_VALUES: [(u32, u32); 7] = [
    (reg::AUTOBAUD, 0x0000_0A00),
    (reg::CONF0, 0x0000_001C),
    (reg::CONF1, 0x0000_6060),
    (reg::LOWPULSE, 0x000F_FFFF),
    (reg::HIGHPULSE, 0x000F_FFFF),
    (reg::DATE, 0x0006_2000),
    (reg::ID, 0x0000_0500),
];

/// Words in a UART register block (0x100 bytes).
const BLOCK_WORDS: usize = 64;

/// One UART.
#[derive(Debug, Clone)]
pub(super) struct Uart {
    /// Plain registers (CLKDIV, CONF0, CONF1, INT_ENA and the ones not modelled).
    registers: [u32; BLOCK_WORDS],
    int_raw: u32,
    rx: VecDeque<u8>,
    tx: VecDeque<u8>,
    /// Bytes on the RX wire behind the FIFO, moved in as the program drains it.
    rx_line: VecDeque<u8>,
    /// Bytes the TX wire has carried off, until the device takes them.
    tx_line: Vec<u8>,
    /// How many more bytes the TX wire carries off now (the host's backlog decides).
    tx_line_room: usize,
    /// Bytes the program took from RX or gave to TX.
    bytes_moved: u64,
}

impl Uart {
    /// A UART after reset, dividing its clock by `clkdiv`.
    pub(super) fn new(clkdiv: u32) -> Uart {
        let mut registers = [0; BLOCK_WORDS];
        for (offset, value) in RESET_VALUES {
            registers[(offset / 4) as usize] = value;
        }
        registers[(reg::CLKDIV / 4) as usize] = clkdiv & CLKDIV_MASK;
        let mut uart = Uart {
            registers,
            int_raw: 0,
            rx: VecDeque::with_capacity(FIFO_LEN),
            tx: VecDeque::with_capacity(FIFO_LEN),
            rx_line: VecDeque::new(),
            tx_line: Vec::new(),
            tx_line_room: 0,
            bytes_moved: 0,
        };
        uart.raise_conditions();
        uart
    }

    fn register(&self, offset: u32) -> u32 {
        self.registers[(offset as usize / 4) % BLOCK_WORDS]
    }

    /// Reads the register at `offset` (0..0x100, word aligned); reading FIFO pops a byte.
    pub(super) fn read(&mut self, offset: u32) -> u32 {
        match offset {
            reg::FIFO => self.pop_rx().map_or(0, u32::from),
            reg::INT_RAW => self.int_raw,
            reg::INT_ST => self.int_status(),
            reg::INT_CLR => 0,
            reg::STATUS => self.status(),
            _ => self.register(offset),
        }
    }

    /// STATUS: the FIFO counts and the idle-high RXD line.
    fn status(&self) -> u32 {
        IDLE_STATUS | (self.tx.len() as u32) << status::TX_COUNT_SHIFT | self.rx.len() as u32
    }

    /// Writes the register at `offset`; writing FIFO queues a byte for sending.
    /// Returns false when that byte was lost to a full TX FIFO.
    pub(super) fn write(&mut self, offset: u32, value: u32) -> bool {
        let index = (offset as usize / 4) % BLOCK_WORDS;
        let mut accepted = true;
        match offset {
            reg::FIFO => accepted = self.push_tx(value as u8),
            reg::INT_RAW | reg::INT_ST | reg::STATUS => {}
            reg::INT_CLR => self.int_raw &= !value,
            reg::INT_ENA => self.registers[index] = value & int::ALL,
            reg::CLKDIV => self.registers[index] = value & CLKDIV_MASK,
            reg::CONF0 => {
                self.registers[index] = value;
                if value & conf0::RXFIFO_RST != 0 {
                    self.rx.clear();
                }
                if value & conf0::TXFIFO_RST != 0 {
                    self.tx.clear();
                }
            }
            _ => self.registers[index] = value,
        }
        self.raise_conditions();
        accepted
    }

    /// INT_RAW & INT_ENA: what asserts the interrupt line.
    pub(super) fn int_status(&self) -> u32 {
        self.int_raw & self.register(reg::INT_ENA)
    }

    /// The clock divider.
    pub(super) fn clkdiv(&self) -> u32 {
        self.register(reg::CLKDIV)
    }

    /// Sets the clock divider, as the ROM's `uart_div_modify` does.
    pub(super) fn set_clkdiv(&mut self, divider: u32) {
        self.registers[(reg::CLKDIV / 4) as usize] = divider & CLKDIV_MASK;
    }

    /// Takes bytes from the line into the RX FIFO while there is room; returns how many.
    pub(super) fn receive(&mut self, bytes: &[u8]) -> usize {
        let taken = bytes.len().min(FIFO_LEN - self.rx.len());
        self.rx.extend(&bytes[..taken]);
        self.raise_conditions();
        taken
    }

    /// Bytes arriving regardless of room: those that do not fit are lost and raise
    /// RXFIFO_OVF. Returns how many were lost.
    pub(super) fn receive_lossy(&mut self, bytes: &[u8]) -> usize {
        let lost = bytes.len() - self.receive(bytes);
        if lost > 0 {
            self.int_raw |= int::RXFIFO_OVF;
        }
        lost
    }

    /// The line has been idle for the timeout: RXFIFO_TOUT if enabled and bytes wait.
    pub(super) fn line_idle(&mut self) {
        if self.register(reg::CONF1) & conf1::RX_TIMEOUT_ENABLE != 0 && !self.rx.is_empty() {
            self.int_raw |= int::RXFIFO_TOUT;
        }
    }

    /// The RX timeout in byte times (CONF1 bits 30:24).
    pub(super) fn rx_timeout_threshold(&self) -> u32 {
        (self.register(reg::CONF1) >> conf1::RX_TIMEOUT_THRESHOLD_SHIFT) & conf1::THRESHOLD_MASK
    }

    /// Pops the oldest received byte.
    pub(super) fn pop_rx(&mut self) -> Option<u8> {
        let byte = self.rx.pop_front();
        if byte.is_some() {
            self.bytes_moved += 1;
            if let Some(next) = self.rx_line.pop_front() {
                self.rx.push_back(next);
            }
        }
        self.raise_conditions();
        byte
    }

    /// Queues a byte for sending; false when the TX FIFO is full. With the FIFO empty and
    /// room on the wire, the byte goes straight onto the wire.
    pub(super) fn push_tx(&mut self, byte: u8) -> bool {
        if self.tx.is_empty() && self.tx_line_room > 0 {
            self.tx_line.push(byte);
            self.tx_line_room -= 1;
        } else if self.tx.len() < FIFO_LEN {
            self.tx.push_back(byte);
        } else {
            return false;
        }
        self.bytes_moved += 1;
        self.raise_conditions();
        true
    }

    /// Moves up to `max` sent bytes onto the line (`out`), the wire's first; returns how many.
    pub(super) fn take_tx(&mut self, out: &mut Vec<u8>, max: usize) -> usize {
        let from_wire = max.min(self.tx_line.len());
        out.extend(self.tx_line.drain(..from_wire));
        let count = (max - from_wire).min(self.tx.len());
        out.extend(self.tx.drain(..count));
        self.raise_conditions();
        from_wire + count
    }

    /// Bytes arriving on the RX wire: into the FIFO while it has room, the rest behind it,
    /// moved in as the program reads.
    pub(super) fn receive_on_wire(&mut self, bytes: &[u8]) {
        let taken = self.receive(bytes);
        self.rx_line.extend(&bytes[taken..]);
    }

    /// Bytes on the RX wire not yet in the FIFO.
    pub(super) fn rx_wire_len(&self) -> usize {
        self.rx_line.len()
    }

    /// Lets the TX wire carry off `room` more bytes as the program sends them (what the
    /// FIFO holds goes at once), so a program that sends fast never waits on the FIFO
    /// while the host keeps up.
    pub(super) fn set_tx_wire_room(&mut self, room: usize) {
        let from_fifo = room.min(self.tx.len());
        self.tx_line.extend(self.tx.drain(..from_fifo));
        self.tx_line_room = room - from_fifo;
        self.raise_conditions();
    }

    /// Bytes the program took from RX or gave to TX since reset.
    pub(super) fn bytes_moved(&self) -> u64 {
        self.bytes_moved
    }

    /// Bytes waiting in the RX / TX FIFO.
    pub(super) fn rx_len(&self) -> usize {
        self.rx.len()
    }

    pub(super) fn tx_len(&self) -> usize {
        self.tx.len() + self.tx_line.len()
    }

    /// Raises the FIFO-level interrupts whose condition holds.
    fn raise_conditions(&mut self) {
        let config = self.register(reg::CONF1);
        let full_threshold =
            ((config >> conf1::RXFIFO_FULL_THRESHOLD_SHIFT) & conf1::THRESHOLD_MASK) as usize;
        let empty_threshold =
            ((config >> conf1::TXFIFO_EMPTY_THRESHOLD_SHIFT) & conf1::THRESHOLD_MASK) as usize;
        if !self.rx.is_empty() && self.rx.len() >= full_threshold {
            self.int_raw |= int::RXFIFO_FULL;
        }
        if self.tx.len() < empty_threshold {
            self.int_raw |= int::TXFIFO_EMPTY;
        }
    }
}
