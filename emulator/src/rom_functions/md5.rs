//! `MD5Init(ctx)`, `MD5Update(ctx, data, len)` and `MD5Final(digest, ctx)` on a context in guest
//! memory with the layout the SDK and the esptool stubs declare (`struct MD5Context`, Colin
//! Plumb's public-domain layout): `u32 buf[4]` (the state) at 0, `u32 bits[2]` (the message
//! length in bits, low word first) at 16, `u8 in[64]` (the partial block) at 24; 88 bytes.
//! The partial block holds `(bits[0] >> 3) & 63` bytes. The block function is the md-5 crate's
//! `compress`; the padding is RFC 1321's. `MD5Final` clears the context afterwards, as that
//! implementation does.

use md5::block_api::compress;

use super::guest::{load32, read_bytes, store32, write_bytes, Fault};
use super::{Call, RomHost, RomOutcome};

const STATE: u32 = 0;
const BITS: u32 = 16;
const BLOCK: u32 = 24;
const CONTEXT_LEN: u32 = 88;
const BLOCK_LEN: usize = 64;
/// RFC 1321's initial state.
const INITIAL_STATE: [u32; 4] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476];
/// Bytes of data read from the guest per step.
const DATA_CHUNK: u32 = 4096;

/// A context loaded from guest memory.
struct Context {
    address: u32,
    state: [u32; 4],
    bits: [u32; 2],
    block: [u8; BLOCK_LEN],
}

impl Context {
    fn load<H: RomHost>(call: &mut Call<'_, H>, address: u32) -> Result<Self, Fault> {
        let mut state = [0; 4];
        for (index, word) in (0u32..).zip(state.iter_mut()) {
            *word = load32(call.host, address.wrapping_add(STATE + 4 * index))?;
        }
        let bits = [
            load32(call.host, address.wrapping_add(BITS))?,
            load32(call.host, address.wrapping_add(BITS + 4))?,
        ];
        let mut block = [0; BLOCK_LEN];
        block.copy_from_slice(&read_bytes(
            call.host,
            address.wrapping_add(BLOCK),
            BLOCK_LEN as u32,
        )?);
        Ok(Self {
            address,
            state,
            bits,
            block,
        })
    }

    fn store<H: RomHost>(&self, call: &mut Call<'_, H>) -> Result<(), Fault> {
        for (index, word) in (0u32..).zip(self.state) {
            store32(
                call.host,
                self.address.wrapping_add(STATE + 4 * index),
                word,
            )?;
        }
        for (index, word) in (0u32..).zip(self.bits) {
            store32(call.host, self.address.wrapping_add(BITS + 4 * index), word)?;
        }
        write_bytes(call.host, self.address.wrapping_add(BLOCK), &self.block)
    }

    /// Bytes waiting in the partial block.
    fn buffered(&self) -> usize {
        ((self.bits[0] >> 3) & 63) as usize
    }

    /// Adds `len` bytes to the length, as MD5Update does before it takes any data.
    fn count(&mut self, len: u32) {
        let (low, carry) = self.bits[0].overflowing_add(len << 3);
        self.bits[0] = low;
        self.bits[1] = self.bits[1]
            .wrapping_add(u32::from(carry))
            .wrapping_add(len >> 29);
    }

    /// Feeds bytes that start `filled` bytes into the partial block; returns the new fill.
    fn absorb(&mut self, mut filled: usize, mut data: &[u8]) -> usize {
        while !data.is_empty() {
            let take = (BLOCK_LEN - filled).min(data.len());
            self.block[filled..filled + take].copy_from_slice(&data[..take]);
            filled += take;
            data = &data[take..];
            if filled == BLOCK_LEN {
                compress(&mut self.state, &[self.block]);
                filled = 0;
            }
        }
        filled
    }
}

pub(super) fn init<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let address = call.arg(0);
    for (index, word) in (0u32..).zip(INITIAL_STATE) {
        store32(call.host, address.wrapping_add(STATE + 4 * index), word)?;
    }
    store32(call.host, address.wrapping_add(BITS), 0)?;
    store32(call.host, address.wrapping_add(BITS + 4), 0)?;
    call.return_void()
}

pub(super) fn update<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let (address, data, len) = (call.arg(0), call.arg(1), call.arg(2));
    let mut context = Context::load(call, address)?;
    let mut filled = context.buffered();
    context.count(len);
    let mut done = 0;
    while done < len {
        let step = DATA_CHUNK.min(len - done);
        let bytes = read_bytes(call.host, data.wrapping_add(done), step)?;
        filled = context.absorb(filled, &bytes);
        done += step;
    }
    context.store(call)?;
    call.return_void()
}

/// `MD5Final(digest, ctx)`: note the digest comes first.
pub(super) fn finish<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let (digest_address, address) = (call.arg(0), call.arg(1));
    let mut context = Context::load(call, address)?;
    let filled = context.buffered();
    let bits = [context.bits[0], context.bits[1]];
    // 0x80, zeros up to 56 bytes into a block, then the length in bits, little-endian.
    let padding_len = if filled < 56 {
        56 - filled
    } else {
        120 - filled
    };
    let mut padding = vec![0u8; padding_len];
    padding[0] = 0x80;
    let filled = context.absorb(filled, &padding);
    let mut length = [0u8; 8];
    length[..4].copy_from_slice(&bits[0].to_le_bytes());
    length[4..].copy_from_slice(&bits[1].to_le_bytes());
    context.absorb(filled, &length);
    let digest: Vec<u8> = context
        .state
        .iter()
        .flat_map(|word| word.to_le_bytes())
        .collect();
    write_bytes(call.host, digest_address, &digest)?;
    write_bytes(call.host, address, &[0; CONTEXT_LEN as usize])?;
    call.return_void()
}

#[cfg(test)]
mod tests {
    use md5::{Digest, Md5};
    use proptest::prelude::*;

    use super::super::test_host::Rig;
    use super::CONTEXT_LEN;

    const DATA: u32 = 0x3FFE_8000;
    const CONTEXT: u32 = 0x3FFF_D000;
    const DIGEST: u32 = 0x3FFF_D100;

    /// The digest of `data` fed to the ROM functions in pieces of the given lengths.
    fn guest_md5(rig: &mut Rig, data: &[u8], pieces: &[usize]) -> Vec<u8> {
        rig.host.poke(DATA, data);
        rig.call_ok("MD5Init", &[CONTEXT]);
        let mut offset = 0;
        for &piece in pieces {
            let piece = piece.min(data.len() - offset);
            rig.call_ok("MD5Update", &[CONTEXT, DATA + offset as u32, piece as u32]);
            offset += piece;
        }
        rig.call_ok(
            "MD5Update",
            &[CONTEXT, DATA + offset as u32, (data.len() - offset) as u32],
        );
        rig.call_ok("MD5Final", &[DIGEST, CONTEXT]);
        rig.host.peek(DIGEST, 16)
    }

    #[test]
    fn rfc_1321_test_vectors() {
        let vectors: [(&[u8], &str); 4] = [
            (b"", "d41d8cd98f00b204e9800998ecf8427e"),
            (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
            (b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        let mut rig = Rig::new();
        for (data, expected) in vectors {
            let digest = guest_md5(&mut rig, data, &[]);
            assert_eq!(hex::encode(digest), expected);
        }
    }

    #[test]
    fn context_layout_and_final_clear() {
        let mut rig = Rig::new();
        rig.call_ok("MD5Init", &[CONTEXT]);
        assert_eq!(rig.host.peek(CONTEXT, 4), 0x6745_2301u32.to_le_bytes());
        rig.host.poke(DATA, b"0123456789");
        rig.call_ok("MD5Update", &[CONTEXT, DATA, 10]);
        assert_eq!(
            rig.host.peek(CONTEXT + 16, 8),
            [80, 0, 0, 0, 0, 0, 0, 0],
            "bits"
        );
        assert_eq!(
            rig.host.peek(CONTEXT + 24, 10),
            b"0123456789",
            "partial block"
        );
        rig.call_ok("MD5Final", &[DIGEST, CONTEXT]);
        assert_eq!(
            rig.host.peek(CONTEXT, CONTEXT_LEN as usize),
            vec![0; CONTEXT_LEN as usize]
        );
    }

    #[test]
    fn a_large_update_matches_the_crate() {
        let data: Vec<u8> = (0..70_000u32)
            .map(|index| (index * 31 % 256) as u8)
            .collect();
        const { assert!(DATA + 70_000 < CONTEXT) };
        let mut rig = Rig::new();
        assert_eq!(guest_md5(&mut rig, &data, &[]), Md5::digest(&data).to_vec());
    }

    proptest! {
        #[test]
        fn chunking_does_not_change_the_digest(
            data in prop::collection::vec(any::<u8>(), 0..1000),
            pieces in prop::collection::vec(0usize..130, 0..20),
        ) {
            let mut rig = Rig::new();
            prop_assert_eq!(guest_md5(&mut rig, &data, &pieces), Md5::digest(&data).to_vec());
        }
    }
}
