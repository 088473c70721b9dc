//! The C library's memory and string functions in the ROM (newlib's and the `ets_` copies, which
//! behave the same): copies move whole aligned words with 32-bit accesses and the rest byte by
//! byte; comparisons and string scans read bytes, so a string in IRAM faults as on the chip.
//! Long operations go in chunks, so a wild length ends at the first faulting address instead of
//! needing gigabytes of buffer.

use super::guest::{load8, read_bytes, store8, write_bytes, Fault};
use super::{Call, RomHost, RomOutcome};

/// Bytes moved per step of a long copy or fill.
const CHUNK: u32 = 4096;

/// Copies `len` bytes from `source` to `destination`, going backwards when the destination
/// overlaps the source from above (memmove).
fn copy<H: RomHost>(host: &mut H, destination: u32, source: u32, len: u32) -> Result<(), Fault> {
    let backwards = destination > source && destination - source < len;
    let mut done = 0;
    while done < len {
        let step = CHUNK.min(len - done);
        let offset = if backwards { len - done - step } else { done };
        let bytes = read_bytes(host, source.wrapping_add(offset), step)?;
        write_bytes(host, destination.wrapping_add(offset), &bytes)?;
        done += step;
    }
    Ok(())
}

fn fill<H: RomHost>(host: &mut H, destination: u32, value: u8, len: u32) -> Result<(), Fault> {
    let chunk = vec![value; CHUNK.min(len) as usize];
    let mut done = 0;
    while done < len {
        let step = CHUNK.min(len - done);
        write_bytes(
            host,
            destination.wrapping_add(done),
            &chunk[..step as usize],
        )?;
        done += step;
    }
    Ok(())
}

/// memcpy(dst, src, n), ets_memcpy, xthal_memcpy: returns dst.
pub(super) fn memcpy<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let (destination, source, len) = (call.arg(0), call.arg(1), call.arg(2));
    copy(call.host, destination, source, len)?;
    call.return_u32(destination)
}

/// memmove(dst, src, n), ets_memmove: returns dst; overlapping ranges copy correctly.
pub(super) fn memmove<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    memcpy(call)
}

/// xthal_bcopy(src, dst, n): the BSD order of arguments, nothing returned.
pub(super) fn bcopy<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let (source, destination, len) = (call.arg(0), call.arg(1), call.arg(2));
    copy(call.host, destination, source, len)?;
    call.return_void()
}

/// memset(dst, c, n), ets_memset: returns dst.
pub(super) fn memset<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let (destination, value, len) = (call.arg(0), call.arg(1) as u8, call.arg(2));
    fill(call.host, destination, value, len)?;
    call.return_u32(destination)
}

/// bzero(dst, n), ets_bzero.
pub(super) fn bzero<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let (destination, len) = (call.arg(0), call.arg(1));
    fill(call.host, destination, 0, len)?;
    call.return_void()
}

/// The sign of a comparison as the C functions give it: the difference of the first differing
/// bytes, compared as unsigned chars.
fn byte_difference(left: u8, right: u8) -> u32 {
    (i32::from(left) - i32::from(right)) as u32
}

/// memcmp(a, b, n), ets_memcmp.
pub(super) fn memcmp<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let (left, right, len) = (call.arg(0), call.arg(1), call.arg(2));
    for offset in 0..len {
        let a = load8(call.host, left.wrapping_add(offset))?;
        let b = load8(call.host, right.wrapping_add(offset))?;
        if a != b {
            return call.return_u32(byte_difference(a, b));
        }
    }
    call.return_u32(0)
}

/// strlen(s), ets_strlen.
pub(super) fn strlen<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let start = call.arg(0);
    let mut len = 0u32;
    while load8(call.host, start.wrapping_add(len))? != 0 {
        len = len.wrapping_add(1);
    }
    call.return_u32(len)
}

/// Compares at most `limit` bytes of two strings.
fn compare_strings<H: RomHost>(
    host: &mut H,
    left: u32,
    right: u32,
    limit: Option<u32>,
) -> Result<u32, Fault> {
    let mut offset = 0u32;
    while limit.is_none_or(|limit| offset < limit) {
        let a = load8(host, left.wrapping_add(offset))?;
        let b = load8(host, right.wrapping_add(offset))?;
        if a != b || a == 0 {
            return Ok(byte_difference(a, b));
        }
        offset = offset.wrapping_add(1);
    }
    Ok(0)
}

/// strcmp(a, b), ets_strcmp.
pub(super) fn strcmp<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let result = compare_strings(call.host, call.arg(0), call.arg(1), None)?;
    call.return_u32(result)
}

/// strncmp(a, b, n), ets_strncmp.
pub(super) fn strncmp<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let result = compare_strings(call.host, call.arg(0), call.arg(1), Some(call.arg(2)))?;
    call.return_u32(result)
}

/// strcpy(dst, src), ets_strcpy: returns dst.
pub(super) fn strcpy<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let (destination, source) = (call.arg(0), call.arg(1));
    let mut offset = 0u32;
    loop {
        let byte = load8(call.host, source.wrapping_add(offset))?;
        store8(call.host, destination.wrapping_add(offset), byte)?;
        if byte == 0 {
            return call.return_u32(destination);
        }
        offset = offset.wrapping_add(1);
    }
}

/// strncpy(dst, src, n), ets_strncpy: copies at most n bytes and pads with NULs up to n;
/// returns dst.
pub(super) fn strncpy<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let (destination, source, len) = (call.arg(0), call.arg(1), call.arg(2));
    let mut offset = 0u32;
    while offset < len {
        let byte = load8(call.host, source.wrapping_add(offset))?;
        store8(call.host, destination.wrapping_add(offset), byte)?;
        offset += 1;
        if byte == 0 {
            break;
        }
    }
    fill(call.host, destination.wrapping_add(offset), 0, len - offset)?;
    call.return_u32(destination)
}

/// strstr(haystack, needle): the first occurrence, or 0 (NULL); an empty needle matches at once.
pub(super) fn strstr<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let (haystack, needle_address) = (call.arg(0), call.arg(1));
    let needle = super::guest::read_c_string(call.host, needle_address)?;
    let mut start = haystack;
    loop {
        let mut matched = 0;
        while matched < needle.len() {
            let byte = load8(call.host, start.wrapping_add(matched as u32))?;
            if byte != needle[matched] {
                break;
            }
            matched += 1;
        }
        if matched == needle.len() {
            return call.return_u32(start);
        }
        if load8(call.host, start)? == 0 {
            return call.return_u32(0);
        }
        start = start.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::test_host::{Rig, DRAM, IRAM};
    use super::super::RomOutcome;

    const A: u32 = 0x3FFF_0000;
    const B: u32 = 0x3FFF_1000;

    fn string_at(rig: &mut Rig, address: u32, text: &str) {
        let mut bytes = text.as_bytes().to_vec();
        bytes.push(0);
        rig.host.poke(address, &bytes);
    }

    #[test]
    fn memcpy_and_memset_return_the_destination() {
        let mut rig = Rig::new();
        rig.host.poke(A, b"hello, world");
        assert_eq!(rig.call_ok("memcpy", &[B + 1, A, 12]), B + 1);
        assert_eq!(rig.host.peek(B + 1, 12), b"hello, world");
        assert_eq!(rig.call_ok("ets_memset", &[B + 3, 0x1AA, 4]), B + 3);
        assert_eq!(rig.host.peek(B, 14), b"\0he\xAA\xAA\xAA\xAA world\0");
        assert_eq!(rig.call_ok("ets_memcpy", &[B, A, 0]), B, "zero length");
        rig.call_ok("bzero", &[B, 5]);
        assert_eq!(rig.host.peek(B, 6), b"\0\0\0\0\0\xAA");
        rig.call_ok("xthal_bcopy", &[A, B, 3]);
        assert_eq!(rig.host.peek(B, 3), b"hel");
    }

    #[test]
    fn memmove_handles_overlap_both_ways() {
        let mut rig = Rig::new();
        let data: Vec<u8> = (0..=255).cycle().take(10_000).collect();
        rig.host.poke(A, &data);
        rig.call_ok("memmove", &[A + 3, A, 9_000]);
        assert_eq!(rig.host.peek(A + 3, 9_000), &data[..9_000]);
        rig.host.poke(A, &data);
        rig.call_ok("ets_memmove", &[A, A + 5, 9_000]);
        assert_eq!(rig.host.peek(A, 9_000), &data[5..9_005]);
    }

    #[test]
    fn iram_takes_word_copies_but_faults_on_bytes() {
        let mut rig = Rig::new();
        rig.host.poke(A, b"abcdefgh");
        assert_eq!(rig.call_ok("memcpy", &[IRAM.start, A, 8]), IRAM.start);
        assert_eq!(rig.host.peek(IRAM.start, 8), b"abcdefgh");
        let outcome = rig.call("memcpy", &[IRAM.start + 1, A, 8]);
        let RomOutcome::Halted { reason } = outcome else {
            panic!("{outcome:?}")
        };
        assert!(reason.contains("store of 0x40100001 faults"), "{reason}");
        assert!(reason.starts_with("memcpy"), "{reason}");
    }

    #[test]
    fn a_wild_length_faults_at_the_end_of_dram() {
        let mut rig = Rig::new();
        let outcome = rig.call("memset", &[A, 0, 0xFFFF_FFF0]);
        let RomOutcome::Halted { reason } = outcome else {
            panic!("{outcome:?}")
        };
        assert!(reason.contains(&format!("{:#010x}", DRAM.end)), "{reason}");
    }

    #[test]
    fn comparisons_use_unsigned_bytes() {
        let mut rig = Rig::new();
        rig.host.poke(A, b"abc\x80");
        rig.host.poke(B, b"abc\x01");
        assert_eq!(rig.call_ok("memcmp", &[A, B, 4]) as i32, 0x7F);
        assert_eq!(rig.call_ok("ets_memcmp", &[B, A, 4]) as i32, -0x7F);
        assert_eq!(rig.call_ok("memcmp", &[A, B, 3]), 0);
        string_at(&mut rig, A, "apple");
        string_at(&mut rig, B, "apricot");
        assert!((rig.call_ok("strcmp", &[A, B]) as i32) < 0);
        assert!((rig.call_ok("ets_strcmp", &[B, A]) as i32) > 0);
        assert_eq!(rig.call_ok("strncmp", &[A, B, 2]), 0);
        assert!((rig.call_ok("ets_strncmp", &[A, B, 3]) as i32) < 0);
        assert_eq!(rig.call_ok("strcmp", &[A, A]), 0);
        string_at(&mut rig, B, "app");
        assert_eq!(rig.call_ok("strcmp", &[A, B]), u32::from(b'l'));
    }

    #[test]
    fn string_copies_and_lengths() {
        let mut rig = Rig::new();
        string_at(&mut rig, A, "flash");
        assert_eq!(rig.call_ok("strlen", &[A]), 5);
        assert_eq!(rig.call_ok("ets_strlen", &[A + 5]), 0);
        rig.host.poke(B, &[0xEE; 12]);
        assert_eq!(rig.call_ok("strcpy", &[B, A]), B);
        assert_eq!(rig.host.peek(B, 7), b"flash\0\xEE");
        rig.host.poke(B, &[0xEE; 12]);
        assert_eq!(rig.call_ok("strncpy", &[B, A, 8]), B);
        assert_eq!(rig.host.peek(B, 9), b"flash\0\0\0\xEE");
        rig.host.poke(B, &[0xEE; 12]);
        rig.call_ok("ets_strncpy", &[B, A, 3]);
        assert_eq!(
            rig.host.peek(B, 4),
            b"fla\xEE",
            "no NUL when the limit is hit"
        );
    }

    #[test]
    fn strstr_finds_the_first_occurrence() {
        let mut rig = Rig::new();
        string_at(&mut rig, A, "esp8266 esp8285");
        string_at(&mut rig, B, "esp82");
        assert_eq!(rig.call_ok("strstr", &[A, B]), A);
        string_at(&mut rig, B, "8285");
        assert_eq!(rig.call_ok("strstr", &[A, B]), A + 11);
        string_at(&mut rig, B, "8286");
        assert_eq!(rig.call_ok("strstr", &[A, B]), 0);
        string_at(&mut rig, B, "");
        assert_eq!(rig.call_ok("strstr", &[A, B]), A);
    }

    #[test]
    fn strlen_of_a_string_in_iram_faults() {
        let mut rig = Rig::new();
        let outcome = rig.call("strlen", &[IRAM.start]);
        assert!(matches!(outcome, RomOutcome::Halted { .. }), "{outcome:?}");
    }

    proptest! {
        #[test]
        fn memmove_matches_copy_within(
            data in prop::collection::vec(any::<u8>(), 1..300),
            from in 0usize..300,
            to in 0usize..300,
            len in 0usize..300,
        ) {
            let from = from % data.len();
            let to = to % data.len();
            let len = len.min(data.len() - from).min(data.len() - to);
            let mut rig = Rig::new();
            rig.host.poke(A, &data);
            rig.call_ok("memmove", &[A + to as u32, A + from as u32, len as u32]);
            let mut expected = data.clone();
            expected.copy_within(from..from + len, to);
            prop_assert_eq!(rig.host.peek(A, data.len()), expected);
        }
    }
}
