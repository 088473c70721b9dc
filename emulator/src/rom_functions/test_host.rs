//! A small chip for the ROM functions' tests: DRAM that takes any access width, IRAM that takes
//! only 32-bit accesses, a few peripheral registers as plain words, a flash chip, and UART0 as
//! two queues.

use std::collections::{BTreeMap, VecDeque};

use xtensa_lx106::{Bus, BusFault, Cpu};

use super::{address_of, call, RomHost, RomOutcome, RomState};
use crate::boot::ResetCause;
use crate::flash::SpiFlash;

pub(super) const DRAM: std::ops::Range<u32> = 0x3FFE_8000..0x4000_0000;
pub(super) const IRAM: std::ops::Range<u32> = 0x4010_0000..0x4011_0000;
/// Peripheral registers the tests look at (GPIO, UART1), kept as plain words.
const REGISTERS: std::ops::Range<u32> = 0x6000_0000..0x6000_1000;
/// Where tests put the stack pointer.
pub(super) const STACK_TOP: u32 = 0x3FFF_E000;
/// The return address tests pass in a0 (in IRAM, as a caller's code would be).
pub(super) const RETURN_ADDRESS: u32 = 0x4010_0400;
/// Bytes UART0's TX FIFO holds.
pub(super) const TX_FIFO_LEN: usize = 128;

pub(super) struct TestHost {
    dram: Vec<u8>,
    iram: Vec<u8>,
    pub(super) registers: BTreeMap<u32, u32>,
    pub(super) flash: SpiFlash,
    pub(super) tx_fifo: VecDeque<u8>,
    pub(super) rx_fifo: VecDeque<u8>,
    pub(super) uart_divider: Option<u32>,
    pub(super) flash_attached: bool,
    pub(super) flash_cache: Option<bool>,
    pub(super) trace: Vec<String>,
    /// External interrupt lines the core polls.
    pub(super) interrupt_lines: u32,
}

impl TestHost {
    pub(super) fn new() -> Self {
        Self::with_flash(SpiFlash::blank(1 << 20).expect("supported size"))
    }

    pub(super) fn with_flash(flash: SpiFlash) -> Self {
        Self {
            dram: vec![0; (DRAM.end - DRAM.start) as usize],
            iram: vec![0; (IRAM.end - IRAM.start) as usize],
            registers: BTreeMap::new(),
            flash,
            tx_fifo: VecDeque::new(),
            rx_fifo: VecDeque::new(),
            uart_divider: None,
            flash_attached: false,
            flash_cache: None,
            trace: Vec::new(),
            interrupt_lines: 0,
        }
    }

    /// Everything sent on UART0 so far, taken out of the FIFO.
    pub(super) fn take_tx(&mut self) -> Vec<u8> {
        self.tx_fifo.drain(..).collect()
    }

    pub(super) fn poke(&mut self, address: u32, bytes: &[u8]) {
        for (offset, &byte) in (0u32..).zip(bytes) {
            let word_address = (address + offset) & !3;
            let mut word = self.read32(word_address).expect("mapped").to_le_bytes();
            word[((address + offset) % 4) as usize] = byte;
            self.write32(word_address, u32::from_le_bytes(word))
                .expect("mapped");
        }
    }

    pub(super) fn peek(&mut self, address: u32, len: usize) -> Vec<u8> {
        (0u32..len as u32)
            .map(|offset| {
                let word = self.read32((address + offset) & !3).expect("mapped");
                word.to_le_bytes()[((address + offset) % 4) as usize]
            })
            .collect()
    }

    fn byte_slot(&mut self, address: u32, width: u32) -> Result<&mut [u8], BusFault> {
        let fault = BusFault { address };
        if DRAM.contains(&address) && address - DRAM.start + width <= DRAM.end - DRAM.start {
            let start = (address - DRAM.start) as usize;
            return Ok(&mut self.dram[start..start + width as usize]);
        }
        // IRAM: 32-bit accesses only.
        if IRAM.contains(&address) && width == 4 {
            let start = (address - IRAM.start) as usize;
            return Ok(&mut self.iram[start..start + 4]);
        }
        Err(fault)
    }

    fn load(&mut self, address: u32, width: u32) -> Result<u32, BusFault> {
        if REGISTERS.contains(&address) && width == 4 {
            return Ok(self.registers.get(&address).copied().unwrap_or(0));
        }
        let slot = self.byte_slot(address, width)?;
        let mut bytes = [0; 4];
        bytes[..slot.len()].copy_from_slice(slot);
        Ok(u32::from_le_bytes(bytes))
    }

    fn store(&mut self, address: u32, width: u32, value: u32) -> Result<(), BusFault> {
        if REGISTERS.contains(&address) && width == 4 {
            self.registers.insert(address, value);
            return Ok(());
        }
        let slot = self.byte_slot(address, width)?;
        let len = slot.len();
        slot.copy_from_slice(&value.to_le_bytes()[..len]);
        Ok(())
    }
}

impl Bus for TestHost {
    fn read8(&mut self, address: u32) -> Result<u8, BusFault> {
        self.load(address, 1).map(|value| value as u8)
    }
    fn read16(&mut self, address: u32) -> Result<u16, BusFault> {
        self.load(address, 2).map(|value| value as u16)
    }
    fn read32(&mut self, address: u32) -> Result<u32, BusFault> {
        self.load(address, 4)
    }
    fn write8(&mut self, address: u32, value: u8) -> Result<(), BusFault> {
        self.store(address, 1, value.into())
    }
    fn write16(&mut self, address: u32, value: u16) -> Result<(), BusFault> {
        self.store(address, 2, value.into())
    }
    fn write32(&mut self, address: u32, value: u32) -> Result<(), BusFault> {
        self.store(address, 4, value)
    }
    fn interrupt_lines(&mut self) -> u32 {
        self.interrupt_lines
    }
}

impl RomHost for TestHost {
    fn uart_tx(&mut self, byte: u8) -> bool {
        if self.tx_fifo.len() >= TX_FIFO_LEN {
            return false;
        }
        self.tx_fifo.push_back(byte);
        true
    }
    fn uart_rx(&mut self) -> Option<u8> {
        self.rx_fifo.pop_front()
    }
    fn set_uart_divider(&mut self, divider: u32) {
        self.uart_divider = Some(divider);
    }
    fn flash(&mut self) -> &mut SpiFlash {
        &mut self.flash
    }
    fn attach_flash(&mut self) {
        self.flash_attached = true;
    }
    fn set_flash_cache(&mut self, enabled: bool) {
        self.flash_cache = Some(enabled);
    }
    fn trace(&mut self, line: String) {
        self.trace.push(line);
    }
}

/// A core, the test chip and the ROM's state, for calling ROM functions as guest code does.
pub(super) struct Rig {
    pub(super) cpu: Cpu,
    pub(super) host: TestHost,
    pub(super) state: RomState,
}

impl Rig {
    pub(super) fn new() -> Self {
        Self::with_host(TestHost::new())
    }

    pub(super) fn with_host(host: TestHost) -> Self {
        let mut cpu = Cpu::new();
        // As after the ROM's boot: user mode (UM), interrupts enabled, no exception in progress.
        cpu.write_sr(xtensa_lx106::sr::PS, 0x20);
        Self {
            cpu,
            host,
            state: RomState::new(ResetCause::PowerOn),
        }
    }

    /// Calls the ROM function `name` with `args`: the first six in a2..a7, the rest on the
    /// stack at a1 as the CALL0 ABI passes them; a0 = [`RETURN_ADDRESS`].
    pub(super) fn call(&mut self, name: &str, args: &[u32]) -> RomOutcome {
        let address = address_of(name).unwrap_or_else(|| panic!("no ROM function {name}"));
        self.call_at(address, args)
    }

    pub(super) fn call_at(&mut self, address: u32, args: &[u32]) -> RomOutcome {
        self.cpu.set_ar(0, RETURN_ADDRESS);
        self.cpu.set_ar(1, STACK_TOP);
        for (index, &arg) in args.iter().enumerate() {
            if index < 6 {
                self.cpu.set_ar(2 + index, arg);
            } else {
                let slot = STACK_TOP + 4 * (index as u32 - 6);
                self.host.write32(slot, arg).expect("stack in DRAM");
            }
        }
        self.cpu.set_pc(address);
        self.resume()
    }

    /// Runs the ROM code at the current PC (after a [`RomOutcome::Blocked`], or when guest code
    /// returned into the ROM).
    pub(super) fn resume(&mut self) -> RomOutcome {
        call(&mut self.cpu, &mut self.host, &mut self.state)
    }

    /// Calls `name` and expects it to return normally to [`RETURN_ADDRESS`]; gives a2.
    pub(super) fn call_ok(&mut self, name: &str, args: &[u32]) -> u32 {
        assert_eq!(self.call(name, args), RomOutcome::Returned, "{name}");
        assert_eq!(self.cpu.pc(), RETURN_ADDRESS, "{name} returns to a0");
        self.cpu.ar(2)
    }
}
