//! The chip running code: the LX106 core on the [`Machine`], with the mask
//! ROM's functions done in Rust (`rom_functions`).
//!
//! Code runs after a MEM_END with an entry point (an esptool stub, a RAM
//! program from `esptool load_ram`), after a stub returns to the ROM loader
//! (which then boots the firmware), and after a boot from flash whose image
//! the ROM accepts.
//!
//! Time: with [`DeviceConfig::realtime`] the core's cycles follow the
//! device's clock at the CPU frequency the firmware set (80 or 160 MHz); time
//! spent inside a ROM function (a flash erase, `ets_delay_us`) is charged to
//! the core, so the program sees it. Without it the core runs as fast as it
//! can, up to [`CYCLES_PER_CALL`] per call into the device.
//!
//! Idle: a slice in which the program changes nothing (no memory or register
//! written, no UART byte moved, no flash touched) and after which its whole
//! register state comes round again at the same PC means it is only polling:
//! it waits for input. A loop that makes progress only in its registers (a
//! checksum, a delay counting down, a wait on CCOUNT) never repeats its state
//! and runs on, as on the chip. An idle core stops until bytes arrive, a timer
//! is due or the host reads output, so a chip that only waits never burns a
//! host core. In realtime mode its cycle count jumps with the clock, as the
//! real core's would have counted.

use std::time::Duration;

use xtensa_lx106::{Cpu, Stop};

use super::{Device, OutputChunk, Program};
use crate::boot::ResetCause;
use crate::machine::ROM;
use crate::rom_functions::{self, ResetKind, RomOutcome, RomState};

/// Most cycles run per call into the device when not in realtime mode (about 0.1 s of
/// host time at the interpreter's speed), so the caller stays responsive.
pub(super) const CYCLES_PER_CALL: u64 = 16_000_000;
/// Cycles run between looks at the UART: output is handed to the host after each slice.
/// Short, as a quiet slice is where polling is recognised (the wait it costs is this long).
const SLICE_CYCLES: u64 = 4_096;
/// Most instructions single-stepped to see a quiet loop's register state come round again.
const POLL_LOOP_STEPS: u32 = 2_048;
/// Host bytes kept on the wire while the RX FIFO is full; more are lost, as on a line
/// without flow control.
pub(super) const MAX_LINE_INPUT: usize = 1 << 20;
/// Chip output not yet taken by the host beyond which the UART's TX FIFO stops draining:
/// a program that prints with no reader then waits on the full FIFO, as on the chip.
pub(super) const MAX_PENDING_OUTPUT: usize = 256 * 1024;
/// Where the ROM leaves the stack pointer when it jumps to uploaded code or firmware.
pub(super) const ROM_STACK_TOP: u32 = 0x3FFF_FFF0;
/// PS as the ROM leaves it when it jumps to code: interrupts enabled (INTLEVEL 0), user
/// vector mode, EXCM clear.
const PS_AT_ENTRY: u32 = 0x20;
/// Realtime: how far the core may fall behind the clock (a client that stopped the
/// device's clock by going away) before the gap is skipped rather than run.
const MAX_CATCH_UP: Duration = Duration::from_millis(200);

/// What the core is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RunState {
    /// It has work to do.
    Runnable,
    /// It only polls (or waits in WAITI, or in a ROM function for the UART): run again on
    /// an event.
    Idle,
    /// It stopped for good (a crash, an unimplemented ROM function); only a reset helps.
    Halted(String),
}

/// The core and the ROM's state while the chip runs code.
#[derive(Debug)]
pub(super) struct Execution {
    pub(super) cpu: Cpu,
    pub(super) rom: RomState,
    pub(super) state: RunState,
    /// Realtime: the device time and cycle count the clock is counted from.
    origin: (Duration, u64),
    origin_hz: u64,
    /// The program was uploaded to RAM and has not greeted with OHAI: it is no flasher
    /// stub, and keeps running when the client closes the port (`esptool load_ram`). A
    /// stub, or firmware booted from flash, is reset then, as a board's auto-reset does.
    pub(super) survives_close: bool,
    greeted: bool,
    /// The last host bytes, to find a MEM_END request split across two reads.
    recent_input: Vec<u8>,
    /// Bytes seen on the TX line since the program started, to recognise OHAI.
    greeting_window: Vec<u8>,
    /// Where `uart_rx_one_char` is (looked up once: the table search is by name).
    rx_one_char: Option<u32>,
}

impl Execution {
    fn new(entry: u32, reset_cause: ResetCause, now: Duration, uploaded: bool) -> Self {
        let mut cpu = Cpu::new();
        cpu.set_trap_range(ROM);
        cpu.set_pc(entry);
        cpu.set_ar(1, ROM_STACK_TOP);
        cpu.write_sr(xtensa_lx106::sr::PS, PS_AT_ENTRY);
        Execution {
            cpu,
            rom: RomState::new(reset_cause),
            state: RunState::Runnable,
            origin: (now, 0),
            origin_hz: 0,
            survives_close: uploaded,
            greeted: false,
            recent_input: Vec::new(),
            greeting_window: Vec::new(),
            rx_one_char: rom_functions::address_of("uart_rx_one_char"),
        }
    }
}

impl Device {
    /// Starts the core at `entry` on what RAM holds now: the ROM jumping to code uploaded
    /// through the loader (`uploaded`) or to firmware it loaded from flash.
    pub(super) fn start_execution(&mut self, entry: u32, now: Duration, uploaded: bool) {
        let cause = self.machine.reset_cause();
        let mut execution = Execution::new(entry, cause, now, uploaded);
        // The ROM's boot code has described the flash chip to its SPI functions.
        let params = rom_functions::FlashChipParams::for_flash(self.machine.flash());
        if params.store(&mut self.machine).is_err() {
            execution.state = RunState::Halted("the ROM's flash descriptor is not in DRAM".into());
        }
        execution.origin_hz = self.machine.cpu_clock_hz();
        self.machine.advance(0);
        self.program = Program::Running;
        self.trace_line(|| format!("chip: the CPU starts at 0x{entry:08x}"));
        self.execution = Some(Box::new(execution));
    }

    /// Host bytes for the running program: onto the wire, into the RX FIFO as it has room.
    pub(super) fn execution_receive(&mut self, bytes: &[u8]) {
        if self.execution.is_none() {
            return;
        }
        let mut passed = Vec::new();
        let bytes = match self.frame_tap.as_mut() {
            Some(tap) => {
                tap.host_bytes(bytes, &mut passed, &mut self.commands_seen);
                for note in tap.take_notes() {
                    self.trace_line(|| note);
                }
                &passed[..]
            }
            None => bytes,
        };
        // A MEM_END sent to a running stub makes it jump to another uploaded program
        // (`esptool load_ram` through a stub): that one, like any RAM program, keeps
        // running when the client goes, unless it greets as a stub too (the stub a
        // first-stage loader takes over and starts).
        let execution = self.execution.as_mut().expect("checked above");
        if execution.greeted && starts_mem_end_request(&execution.recent_input, bytes) {
            execution.survives_close = true;
            execution.greeted = false;
            execution.greeting_window.clear();
        }
        let keep = bytes.len().min(MEM_END_REQUEST_START.len() - 1);
        execution.recent_input = bytes[bytes.len() - keep..].to_vec();
        let room = MAX_LINE_INPUT.saturating_sub(self.machine.uart_rx_wire_len());
        let taken = bytes.len().min(room);
        self.machine.uart_receive_on_wire(&bytes[..taken]);
        if bytes.len() > taken {
            self.trace_buffer_overflow(bytes.len() - taken);
        }
        let execution = self.execution.as_mut().expect("checked above");
        if execution.state == RunState::Idle {
            execution.state = RunState::Runnable;
        }
    }

    fn trace_buffer_overflow(&mut self, lost: usize) {
        self.trace_line(|| format!("uart: {lost} host bytes lost: the chip is not reading"));
    }

    /// Output was taken: a program waiting on a full TX FIFO may go on. With the FIFO
    /// empty the program sees no change, so an idle one stays idle.
    pub(super) fn execution_output_taken(&mut self) {
        let tx_waiting = self.machine.uart_tx_queued() > 0;
        if let Some(execution) = self.execution.as_mut() {
            if execution.state == RunState::Idle && tx_waiting {
                execution.state = RunState::Runnable;
            }
        }
    }

    /// When the core next has something to do on its own, if it waits for time.
    pub(super) fn execution_due(&self) -> Option<Duration> {
        let execution = self.execution.as_ref()?;
        match execution.state {
            RunState::Halted(_) => None,
            RunState::Runnable if self.pending_output() < MAX_PENDING_OUTPUT => Some(self.last_now),
            RunState::Runnable => None,
            RunState::Idle => {
                let cycles = self.cycles_to_next_timer(execution)?;
                Some(if self.config.realtime {
                    self.last_now + cycles_to_duration(cycles, execution.origin_hz)
                } else {
                    self.last_now
                })
            }
        }
    }

    /// Cycles until a timer or the watchdog wants the core, CCOMPARE0 fires, or the flash
    /// chip finishes an erase or program the program may be polling for.
    fn cycles_to_next_timer(&self, execution: &Execution) -> Option<u64> {
        let flash_busy = self.machine.flash().remaining_busy_time();
        let flash_done = (!flash_busy.is_zero())
            .then(|| duration_to_cycles(flash_busy, self.machine.cpu_clock_hz()).max(1));
        [
            self.machine.cycles_until_next_event(),
            cycles_to_ccompare(&execution.cpu),
            flash_done,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the core up to `now` (realtime) or for a bounded burst, moving UART bytes.
    pub(super) fn run_execution(&mut self, now: Duration) {
        let Some(mut execution) = self.execution.take() else {
            return;
        };
        let hz = self.machine.cpu_clock_hz();
        if hz != execution.origin_hz {
            execution.origin = (now, execution.cpu.cycles());
            execution.origin_hz = hz;
        }
        let limit = if self.config.realtime {
            let behind = now.saturating_sub(execution.origin.0);
            let target = execution.origin.1 + duration_to_cycles(behind, hz);
            let catch_up_limit = duration_to_cycles(MAX_CATCH_UP, hz);
            if target > execution.cpu.cycles() + catch_up_limit {
                // Nobody drove the device for a while: that time passed with the core waiting.
                let skip = target - catch_up_limit - execution.cpu.cycles();
                execution.cpu.add_cycles(skip);
            }
            target
        } else {
            execution.cpu.cycles() + CYCLES_PER_CALL
        };
        self.drive(&mut execution, limit);
        self.execution = Some(execution);
    }

    /// The run loop: slices of the core, ROM calls, UART moves, until `limit` cycles,
    /// idleness or a halt.
    fn drive(&mut self, execution: &mut Execution, limit: u64) {
        loop {
            self.feed_uart(execution);
            if self.machine.take_watchdog_bite() {
                self.finish_execution(execution, PendingRestart::Reset(ResetCause::Watchdog));
                return;
            }
            match execution.state {
                RunState::Halted(_) => return,
                RunState::Idle => {
                    if !self.wake_on_timer(execution, limit) {
                        return;
                    }
                }
                RunState::Runnable => {}
            }
            let cycles = execution.cpu.cycles();
            if cycles >= limit {
                // In realtime the core meets the clock here all the time; otherwise it used
                // a whole burst without waiting, which is worth a line.
                if !self.config.realtime {
                    let busy_pcs = recent_pcs_text(&execution.cpu);
                    self.trace_line(|| format!("chip: the CPU is busy (last PCs {busy_pcs})"));
                }
                return;
            }
            let mut budget = (limit - cycles).min(SLICE_CYCLES);
            if let Some(event) = self.machine.cycles_until_next_event() {
                budget = budget.min(event.max(1));
            }
            let activity = self.machine.activity();
            let (stop, outcome, interpreted) = self.run_slice(execution, cycles + budget);
            let mut moved = self.collect_uart_output(execution);
            match stop {
                Stop::Budget => {}
                Stop::Waiting => execution.state = RunState::Idle,
                Stop::Trap { pc: trapped_at } => {
                    match outcome.expect("run_slice calls the ROM at a trap") {
                        RomOutcome::Returned => {
                            moved |= self.collect_uart_output(execution);
                            // uart_rx_one_char finding nothing, with nothing on the wire: the
                            // program polls for input (esptool 4's stub waiting for an ACK).
                            if Some(trapped_at) == execution.rx_one_char
                                && execution.cpu.ar(2) != 0
                                && self.machine.uart_rx_queued() == 0
                                && self.machine.uart_rx_wire_len() == 0
                            {
                                execution.state = RunState::Idle;
                            }
                        }
                        RomOutcome::Blocked => {
                            // Waiting for the UART: try once more after moving bytes.
                            self.feed_uart(execution);
                            let moved = self.collect_uart_output(execution);
                            if !moved {
                                execution.state = RunState::Idle;
                            }
                        }
                        RomOutcome::Reset(kind) => {
                            self.collect_uart_output(execution);
                            let restart = match kind {
                                ResetKind::ReturnToLoader => PendingRestart::BootFirmware,
                                ResetKind::Software => {
                                    PendingRestart::Reset(ResetCause::ExternalPin)
                                }
                                ResetKind::RomEntry => {
                                    PendingRestart::Reset(self.machine.reset_cause())
                                }
                            };
                            self.finish_execution(execution, restart);
                            return;
                        }
                        RomOutcome::Halted { reason } => {
                            self.collect_uart_output(execution);
                            self.halt(execution, reason);
                            return;
                        }
                    }
                }
            }
            // A slice spent in the ROM (a delay) is no polling; a quiet interpreted one may be.
            let quiet = !moved && self.machine.activity() == activity && interpreted > 0;
            if quiet && execution.state == RunState::Runnable && self.state_comes_round(execution) {
                execution.state = RunState::Idle;
                let loop_pcs = recent_pcs_text(&execution.cpu);
                self.trace_line(|| {
                    format!("chip: the CPU only polls (last PCs {loop_pcs}): idle until an event")
                });
            }
            self.take_machine_trace();
            if moved && execution.state == RunState::Runnable {
                // A reply is out: let the host have it now; the caller runs the core again.
                return;
            }
            if execution.state == RunState::Idle && !self.config.realtime {
                // Idle without realtime: nothing more happens until an event.
                if !self.wake_on_timer(execution, limit) {
                    return;
                }
            }
        }
    }

    /// Runs the core to `slice_end`, calling the ROM's functions it traps into and going
    /// on after those that return at once, as long as the UART rate stays (a reply sent
    /// before a rate change must be collected at the old rate) and the call is not
    /// `uart_rx_one_char` (the caller watches that one for polling). Returns the last stop,
    /// the ROM's outcome if that was a trap, and the cycles interpreted (ROM time excluded).
    fn run_slice(
        &mut self,
        execution: &mut Execution,
        slice_end: u64,
    ) -> (Stop, Option<RomOutcome>, u64) {
        let mut interpreted = 0;
        loop {
            let before = execution.cpu.cycles();
            let stop = execution
                .cpu
                .run(&mut self.machine, slice_end.saturating_sub(before).max(1));
            interpreted += execution.cpu.cycles() - before;
            self.machine.advance(execution.cpu.cycles());
            let Stop::Trap { pc } = stop else {
                return (stop, None, interpreted);
            };
            let baud = self.machine.uart_baud();
            let outcome =
                rom_functions::call(&mut execution.cpu, &mut self.machine, &mut execution.rom);
            let go_on = matches!(outcome, RomOutcome::Returned)
                && execution.cpu.cycles() < slice_end
                && Some(pc) != execution.rx_one_char
                && self.machine.uart_baud() == baud;
            if !go_on {
                return (stop, Some(outcome), interpreted);
            }
        }
    }

    /// After a quiet slice: single-steps the core until it is back at the PC it is at now,
    /// and tells whether it got there with every register as it was and nothing changed.
    /// Then only an outside event (input, a timer, an interrupt) can make the loop end: the
    /// program polls. A loop that makes progress (a counter, a pointer) never repeats its
    /// state; a ROM call ends the look (the run loop handles the call as usual).
    fn state_comes_round(&mut self, execution: &mut Execution) -> bool {
        let registers = |cpu: &Cpu| {
            let mut state = [0u32; 18];
            for (n, register) in state.iter_mut().take(16).enumerate() {
                *register = cpu.ar(n);
            }
            state[16] = cpu.read_sr(xtensa_lx106::sr::SAR).unwrap_or(0);
            state[17] = cpu.read_sr(xtensa_lx106::sr::PS).unwrap_or(0);
            state
        };
        let start_pc = execution.cpu.pc();
        let start = registers(&execution.cpu);
        let activity = self.machine.activity();
        for _ in 0..POLL_LOOP_STEPS {
            if execution.cpu.step(&mut self.machine) != Stop::Budget {
                return false;
            }
            if self.machine.activity() != activity || self.machine.uart_tx_queued() > 0 {
                return false;
            }
            if execution.cpu.pc() == start_pc {
                return registers(&execution.cpu) == start;
            }
        }
        false
    }

    /// An idle core whose timer is due before `limit` wakes (its cycles skip to it).
    fn wake_on_timer(&mut self, execution: &mut Execution, limit: u64) -> bool {
        let now_cycles = execution.cpu.cycles();
        let due = self.cycles_to_next_timer(execution);
        match due {
            Some(due) if self.config.realtime && now_cycles + due > limit => {
                execution.cpu.add_cycles(limit.saturating_sub(now_cycles));
                self.machine.advance(execution.cpu.cycles());
                false
            }
            Some(due) => {
                self.trace_line(|| {
                    format!("chip: the CPU wakes for a timer after {due} idle cycles")
                });
                execution.cpu.add_cycles(due);
                self.machine.advance(execution.cpu.cycles());
                execution.state = RunState::Runnable;
                true
            }
            None => {
                if self.config.realtime && limit > now_cycles {
                    // Waiting counts: CCOUNT goes on as the clock does.
                    execution.cpu.add_cycles(limit - now_cycles);
                    self.machine.advance(execution.cpu.cycles());
                }
                false
            }
        }
    }

    /// Between slices: the RX line is idle once its wire is empty (the RX timeout
    /// fires for bytes left in the FIFO), and the TX wire takes what the host's backlog
    /// has room for.
    fn feed_uart(&mut self, _execution: &mut Execution) {
        if self.machine.uart_rx_wire_len() == 0 && self.machine.uart_rx_queued() > 0 {
            self.machine.uart_line_idle();
        }
        let room = MAX_PENDING_OUTPUT.saturating_sub(self.pending_output());
        self.machine.set_uart_tx_wire_room(room);
    }

    /// Moves the TX FIFO onto the line (while the host keeps up); true if bytes moved.
    fn collect_uart_output(&mut self, execution: &mut Execution) -> bool {
        let room = MAX_PENDING_OUTPUT.saturating_sub(self.pending_output());
        if room == 0 || self.machine.uart_tx_queued() == 0 {
            self.follow_uart_rate();
            return false;
        }
        let mut bytes = Vec::new();
        self.machine.uart_take_tx(&mut bytes, room);
        let room = room.saturating_sub(bytes.len());
        self.machine.set_uart_tx_wire_room(room);
        if !execution.greeted {
            execution.greeting_window.extend_from_slice(&bytes);
            let window = &execution.greeting_window;
            if window
                .windows(esp_protocol::packet::STUB_GREETING.len())
                .any(|w| w == esp_protocol::packet::STUB_GREETING)
            {
                execution.greeted = true;
                execution.survives_close = false;
                execution.greeting_window = Vec::new();
            } else if window.len() > 64 {
                let keep = window.len() - 8;
                execution.greeting_window.drain(..keep);
            }
        }
        let bytes = match self.frame_tap.as_mut() {
            Some(tap) => {
                let mut out = Vec::with_capacity(bytes.len());
                tap.chip_bytes(&bytes, &mut out);
                for note in tap.take_notes() {
                    self.trace_line(|| note);
                }
                out
            }
            None => bytes,
        };
        if !bytes.is_empty() {
            let ready_at = self.busy_until.max(self.last_now);
            match self.output.back_mut() {
                Some(chunk) if chunk.ready_at == ready_at && chunk.baud_after.is_none() => {
                    chunk.bytes.extend_from_slice(&bytes);
                }
                _ => self.output.push_back(OutputChunk {
                    ready_at,
                    bytes,
                    baud_after: None,
                }),
            }
        }
        self.follow_uart_rate();
        true
    }

    /// The program changed UART0's divider: what is queued goes out at the old rate.
    fn follow_uart_rate(&mut self) {
        let baud = nominal_baud(self.machine.uart_baud());
        let queued_rate = self
            .output
            .iter()
            .rev()
            .find_map(|chunk| chunk.baud_after)
            .unwrap_or(self.uart_baud);
        if baud == queued_rate {
            return;
        }
        if self.output.is_empty() {
            self.uart_baud = baud;
        } else {
            self.switch_baud_after_output(baud);
        }
    }

    /// Output bytes queued and not yet polled.
    pub(super) fn pending_output(&self) -> usize {
        self.output.iter().map(|chunk| chunk.bytes.len()).sum()
    }

    fn take_machine_trace(&mut self) {
        let gpio = self.machine.take_gpio_events();
        if self.trace.is_some() {
            for line in self.machine.take_trace() {
                self.trace_line(|| line);
            }
            let hz = self.machine.cpu_clock_hz().max(1);
            for (cycle, out) in gpio {
                let millis = cycle as f64 * 1000.0 / hz as f64;
                self.trace_line(|| format!("gpio: at {millis:.3} ms the outputs are 0x{out:04x}"));
            }
        }
    }

    /// The core stops for good; the UART says nothing more.
    fn halt(&mut self, execution: &mut Execution, reason: String) {
        let recent = recent_pcs_text(&execution.cpu);
        self.trace_line(|| format!("chip: halted: {reason}; last PCs: {recent}"));
        execution.state = RunState::Halted(reason);
        self.take_machine_trace();
    }

    /// The program reset the chip, returned to the loader, or the watchdog bit: the
    /// restart happens once the run loop has let go of the core.
    fn finish_execution(&mut self, execution: &mut Execution, restart: PendingRestart) {
        self.take_machine_trace();
        self.trace_line(|| match restart {
            PendingRestart::BootFirmware => {
                "chip: the program returned to the ROM loader, which boots the firmware".into()
            }
            PendingRestart::Reset(cause) => format!("chip: reset ({cause:?})"),
        });
        execution.state = RunState::Halted(format!("{restart:?}"));
        self.pending_restart = Some(restart);
    }
}

/// A restart the run loop asked for, done once the loop has let go of the execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PendingRestart {
    /// Reboot with this cause.
    Reset(ResetCause),
    /// The ROM loader goes on to boot the firmware in flash.
    BootFirmware,
}

fn duration_to_cycles(duration: Duration, hz: u64) -> u64 {
    u64::try_from(duration.as_nanos() * u128::from(hz) / 1_000_000_000).unwrap_or(u64::MAX)
}

fn cycles_to_duration(cycles: u64, hz: u64) -> Duration {
    let nanos = u128::from(cycles) * 1_000_000_000 / u128::from(hz.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Cycles until CCOUNT reaches CCOMPARE0, when the timer interrupt is enabled.
fn cycles_to_ccompare(cpu: &Cpu) -> Option<u64> {
    use xtensa_lx106::sr;
    let enabled = cpu.read_sr(sr::INTENABLE)? & (1 << TIMER0_INTERRUPT) != 0;
    let count = cpu.read_sr(sr::CCOUNT)?;
    let compare = cpu.read_sr(sr::CCOMPARE0)?;
    enabled.then(|| u64::from(compare.wrapping_sub(count)).max(1))
}

/// The LX106's CCOMPARE0 interrupt (XCHAL_TIMER0_INTERRUPT).
const TIMER0_INTERRUPT: u32 = 6;

/// The core's last PCs, oldest first, for a trace line.
fn recent_pcs_text(cpu: &Cpu) -> String {
    let pcs = cpu.recent_pcs();
    let mut text = String::new();
    for pc in pcs.iter().skip(pcs.len().saturating_sub(12)) {
        text.push_str(&format!(" {pc:08x}"));
    }
    text.trim_start().to_string()
}

/// The standard rate a UART divider approximates (52 MHz / 451 is 115299 baud: a client
/// at 115200 reads it fine, as a UART tolerates a few percent), else the rate itself.
pub(crate) fn nominal_baud(actual: u32) -> u32 {
    const STANDARD: [u32; 14] = [
        9_600, 19_200, 38_400, 57_600, 74_880, 115_200, 230_400, 256_000, 460_800, 500_000,
        921_600, 1_000_000, 1_500_000, 2_000_000,
    ];
    STANDARD
        .into_iter()
        .find(|&rate| u64::from(actual.abs_diff(rate)) * 100 <= u64::from(rate) * 2)
        .unwrap_or(actual)
}

/// How a MEM_END request frame starts on the wire: 0xC0, direction 0, opcode 0x06.
const MEM_END_REQUEST_START: [u8; 3] = [
    esp_protocol::slip::END,
    esp_protocol::packet::DIRECTION_REQUEST,
    esp_protocol::packet::Opcode::MemEnd as u8,
];

/// True when `bytes`, after the tail `before` of what came earlier, holds a MEM_END request.
fn starts_mem_end_request(before: &[u8], bytes: &[u8]) -> bool {
    let mut joined = before.to_vec();
    joined.extend_from_slice(&bytes[..bytes.len().min(MEM_END_REQUEST_START.len())]);
    joined.windows(3).any(|w| w == MEM_END_REQUEST_START)
        || bytes.windows(3).any(|w| w == MEM_END_REQUEST_START)
}
