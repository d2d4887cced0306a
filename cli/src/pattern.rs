//! Page contents that identify themselves: a stamp naming the slot and the generation
//! written, so a page read back from the wrong place or an older write never matches.

const STAMP_MAGIC: u64 = 0x5357_4150_4449_4f00; // "SWAPDIO\0"

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The content of `slot` at generation `gen`: a header naming both, then words that
/// depend on both and on their position (so a page from another slot, an older
/// generation or a shifted position never matches).
pub fn stamp(slot: u64, gen: u32, out: &mut [u8]) {
    let seed = mix(slot ^ (u64::from(gen) << 40));
    for (i, w) in out.chunks_exact_mut(8).enumerate() {
        let v = match i {
            0 => STAMP_MAGIC,
            1 => slot,
            2 => u64::from(gen),
            _ => mix(seed ^ i as u64),
        };
        w.copy_from_slice(&v.to_le_bytes());
    }
}

pub fn describe(page: &[u8]) -> String {
    let word = |i: usize| u64::from_le_bytes(page[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    if word(0) == STAMP_MAGIC {
        format!("slot {} generation {}", word(1), word(2))
    } else if page.iter().all(|&b| b == 0) {
        "zeros".into()
    } else {
        format!("unstamped bytes {:016x}", word(0))
    }
}
