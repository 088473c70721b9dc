//! Memory access through READ_REG/WRITE_REG (esptool's read_mem, write_mem, dump_mem).

use crate::error::Result;
use crate::flasher::Flasher;
use crate::transport::Transport;

impl<T: Transport> Flasher<T> {
    /// The word at `address`.
    pub fn read_mem(&mut self, address: u32) -> Result<u32> {
        self.read_reg(address)
    }

    /// Writes `value` (the bits in `mask`) to the word at `address`.
    pub fn write_mem(&mut self, address: u32, value: u32, mask: u32) -> Result<()> {
        self.write_reg(address, value, mask)
    }

    /// `size` bytes of memory from `address` (word aligned), read word by word.
    pub fn dump_mem(&mut self, address: u32, size: u32) -> Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(size as usize);
        for word_address in (address..address + size).step_by(4) {
            bytes.extend_from_slice(&self.read_reg(word_address)?.to_le_bytes());
        }
        bytes.truncate(size as usize);
        Ok(bytes)
    }
}
