//! Arbitrary bytes as a whole segment file: `SegmentInfo::parse` must return `Ok` or `Err`,
//! never panic or read outside the input, and whatever it accepts must satisfy the checks
//! its validator promises.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmq::SegmentInfo;

/// Bytes reserved for the header (`HEADER_SIZE` in src/segment/header.rs).
const HEADER_SIZE: u64 = 256;

fuzz_target!(|data: &[u8]| {
    let Ok(info) = SegmentInfo::parse(data) else {
        return;
    };
    // A valid header cannot fit in fewer bytes than the header itself.
    assert!(data.len() as u64 >= HEADER_SIZE, "accepted a {}-byte image", data.len());
    assert_eq!(info.total_size, data.len() as u64, "total_size != image length");
    assert!(
        info.payload_offset >= HEADER_SIZE,
        "payload offset {} inside the header",
        info.payload_offset
    );
    assert_eq!(info.payload_offset % 64, 0, "payload offset {} misaligned", info.payload_offset);
    let end = info
        .payload_offset
        .checked_add(info.payload_size)
        .expect("payload_offset + payload_size overflows");
    assert!(
        end <= info.total_size,
        "payload {}+{} past {} bytes",
        info.payload_offset,
        info.payload_size,
        info.total_size
    );
    assert!(
        info.type_align.is_power_of_two() && info.type_align <= 4096,
        "type_align {} is not a power of two up to 4096",
        info.type_align
    );
    // Fields the parser copied out must match the image bytes (native-endian header words,
    // as the parser reads them; the magic constant is defined from little-endian bytes).
    let word = |off: usize| u64::from_ne_bytes(data[off..off + 8].try_into().unwrap());
    assert_eq!(word(0), u64::from_le_bytes(*b"SHMQSEG\x01"), "magic");
    assert_eq!(word(24), info.total_size);
    assert_eq!(word(32), info.payload_offset);
    assert_eq!(word(40), info.payload_size);
    // At most 64 bytes, each invalid one replaced by the 3-byte U+FFFD.
    assert!(info.type_label.len() <= 128 * 3, "type label longer than its 128-byte field");
});
