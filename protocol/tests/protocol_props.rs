//! Property tests for the protocol invariants: SLIP round trips and chunking,
//! decoders that never panic, packet round trips, and the ROM erase plan.

use esp_protocol::packet::{BeginParams, Command, DataBlock, RegisterWrite, Response, SpiParams};
use esp_protocol::rom_erase::{rom_erase_plan, rom_erased_sectors, SECTORS_PER_BLOCK, SECTOR_SIZE};
use esp_protocol::slip::{self, SlipDecoder, SlipEvent};
use esp_protocol::status::{ErrorCode, Status, StatusLayout};
use proptest::prelude::*;

const FLASH_16MB: u32 = 16 * 1024 * 1024;

fn decode_all(stream: &[u8], split_points: &[usize]) -> Vec<SlipEvent> {
    let mut decoder = SlipDecoder::new();
    let mut events = Vec::new();
    let mut start = 0;
    let mut cuts: Vec<usize> = split_points
        .iter()
        .map(|&p| p % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();
    for cut in cuts.into_iter().chain([stream.len()]) {
        decoder.feed(&stream[start..cut], &mut events);
        start = cut;
    }
    events
}

fn begin_params() -> impl Strategy<Value = BeginParams> {
    (
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(
            |(size, blocks, block_size, offset, encrypted)| BeginParams {
                size,
                blocks,
                block_size,
                offset,
                encrypted,
            },
        )
}

fn data_block() -> impl Strategy<Value = DataBlock> {
    (any::<u32>(), proptest::collection::vec(any::<u8>(), 0..600))
        .prop_map(|(sequence, data)| DataBlock { sequence, data })
}

fn command() -> impl Strategy<Value = Command> {
    let mem_begin = begin_params().prop_map(|p| {
        Command::MemBegin(BeginParams {
            encrypted: None,
            ..p
        })
    });
    let register_write = (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(
        |(address, value, mask, delay_us)| RegisterWrite {
            address,
            value,
            mask,
            delay_us,
        },
    );
    let spi_params = proptest::array::uniform6(any::<u32>()).prop_map(|w| SpiParams {
        id: w[0],
        total_size: w[1],
        block_size: w[2],
        sector_size: w[3],
        page_size: w[4],
        status_mask: w[5],
    });
    prop_oneof![
        begin_params().prop_map(Command::FlashBegin),
        data_block().prop_map(Command::FlashData),
        any::<bool>().prop_map(|reboot| Command::FlashEnd { reboot }),
        mem_begin,
        (any::<bool>(), any::<u32>())
            .prop_map(|(execute, entry)| Command::MemEnd { execute, entry }),
        data_block().prop_map(Command::MemData),
        Just(Command::Sync),
        proptest::collection::vec(register_write, 1..4).prop_map(Command::WriteReg),
        any::<u32>().prop_map(|address| Command::ReadReg { address }),
        spi_params.prop_map(Command::SpiSetParams),
        (any::<u32>(), any::<bool>())
            .prop_map(|(config, rom_form)| Command::SpiAttach { config, rom_form }),
        (any::<u32>(), any::<u32>())
            .prop_map(|(new_baud, old_baud)| Command::ChangeBaudrate { new_baud, old_baud }),
        begin_params().prop_map(Command::FlashDeflBegin),
        data_block().prop_map(Command::FlashDeflData),
        any::<bool>().prop_map(|reboot| Command::FlashDeflEnd { reboot }),
        (any::<u32>(), any::<u32>())
            .prop_map(|(address, size)| Command::SpiFlashMd5 { address, size }),
        Just(Command::EraseFlash),
        (any::<u32>(), any::<u32>())
            .prop_map(|(address, size)| Command::EraseRegion { address, size }),
        proptest::array::uniform4(any::<u32>()).prop_map(|w| Command::ReadFlash {
            address: w[0],
            size: w[1],
            packet_size: w[2],
            max_in_flight: w[3],
        }),
        proptest::array::uniform4(any::<u32>()).prop_map(|w| Command::ReadFlashDeflate {
            address: w[0],
            size: w[1],
            block_size: w[2],
            max_in_flight: w[3],
        }),
        any::<u32>().prop_map(|claimed| Command::FlashRealSize { claimed }),
        Just(Command::RunUserCode),
    ]
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        Just(Status::Success),
        (
            proptest::sample::select(ErrorCode::ALL_NAMED.to_vec()),
            prop_oneof![Just(StatusLayout::Rom), Just(StatusLayout::Stub)]
        )
            .prop_map(|(code, layout)| Status::Failure { code, layout }),
    ]
}

proptest! {
    #[test]
    fn slip_round_trips_any_payload(payload in proptest::collection::vec(any::<u8>(), 1..2000)) {
        let encoded = slip::encode_to_vec(&payload);
        prop_assert_eq!(decode_all(&encoded, &[]), vec![SlipEvent::Frame(payload)]);
    }

    #[test]
    fn slip_decoder_never_panics(stream in proptest::collection::vec(any::<u8>(), 0..4000)) {
        decode_all(&stream, &[]);
    }

    #[test]
    fn chunking_does_not_change_what_is_decoded(
        frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 0..6),
        garbage in proptest::collection::vec(proptest::collection::vec(any::<u8>().prop_filter("not a delimiter", |b| *b != slip::END), 0..40), 0..6),
        splits in proptest::collection::vec(any::<usize>(), 0..20),
        noise in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut stream = Vec::new();
        for (index, frame) in frames.iter().enumerate() {
            stream.extend_from_slice(garbage.get(index).map(Vec::as_slice).unwrap_or_default());
            slip::encode(frame, &mut stream);
        }
        let whole = decode_all(&stream, &[]);
        prop_assert_eq!(&decode_all(&stream, &splits), &whole);
        let decoded: Vec<Vec<u8>> = whole.into_iter().filter_map(|e| match e { SlipEvent::Frame(f) => Some(f), _ => None }).collect();
        prop_assert_eq!(decoded, frames);
        // Arbitrary noise is also decoded the same whatever the chunking.
        prop_assert_eq!(decode_all(&noise, &splits), decode_all(&noise, &[]));
    }

    #[test]
    fn every_request_round_trips(command in command()) {
        let bytes = command.to_bytes().unwrap();
        prop_assert_eq!(Command::decode(&bytes), Ok(command));
    }

    #[test]
    fn request_with_trailing_byte_is_rejected(command in command(), extra in any::<u8>()) {
        let mut bytes = command.to_bytes().unwrap();
        bytes.push(extra);
        prop_assert!(Command::decode(&bytes).is_err());
    }

    #[test]
    fn every_response_round_trips(opcode in any::<u8>(), value in any::<u32>(), data in proptest::collection::vec(any::<u8>(), 0..64), status in status()) {
        let response = Response { opcode, value, data, status };
        prop_assert_eq!(Response::decode(&response.to_bytes().unwrap()), Ok(response));
    }

    #[test]
    fn packet_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Command::decode(&bytes);
        let _ = Response::decode(&bytes);
    }

    #[test]
    fn rom_erase_plan_erases_the_wanted_sectors(offset in 0..FLASH_16MB, size in 1..=FLASH_16MB) {
        prop_assume!(offset as u64 + size as u64 <= FLASH_16MB as u64);
        let plan = rom_erase_plan(offset, size);
        let first = offset / SECTOR_SIZE;
        let end = (offset + size).div_ceil(SECTOR_SIZE);
        // What the ROM model erases for the size we send:
        let erased = rom_erased_sectors(offset, plan.size_to_send);
        prop_assert_eq!(&erased, &plan.erased_sectors);
        prop_assert_eq!(erased.start, first);
        prop_assert_eq!(erased.end, end + plan.extra_sectors);
        // Exactly the wanted sectors, except where no size can do that: an odd
        // count shorter than twice the distance to the next 64 KiB boundary.
        let wanted = end - first;
        let head = SECTORS_PER_BLOCK - first % SECTORS_PER_BLOCK;
        let exact_possible = wanted.is_multiple_of(2) || wanted >= 2 * head;
        prop_assert_eq!(plan.extra_sectors, if exact_possible { 0 } else { 1 });
    }

    #[test]
    fn no_send_size_beats_the_plan(offset in (0u32..64).prop_map(|s| s * SECTOR_SIZE), wanted in 1u32..40) {
        // Exhaustive check of the claim that one extra sector is the best possible.
        let plan = rom_erase_plan(offset, wanted * SECTOR_SIZE);
        let best = (0..=wanted)
            .map(|sent| rom_erased_sectors(offset, sent * SECTOR_SIZE).end)
            .filter(|&end| end >= offset / SECTOR_SIZE + wanted)
            .min()
            .unwrap();
        prop_assert_eq!(plan.erased_sectors.end, best);
    }
}
