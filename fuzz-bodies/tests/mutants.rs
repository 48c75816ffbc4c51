//! The core target bites: every planted bug of the core is caught by the
//! target's body on the committed corpus or on a few thousand inputs of
//! seeded random bytes (what the fuzzer starts from before coverage guides
//! it), so a quiet fuzzing run means something.

mod common;

use tokenflight::core::{Core, Mutant};

/// Seeded random inputs of a few sizes.
fn random_inputs(count: usize) -> Vec<Vec<u8>> {
    let mut state: u64 = 0x5EED_F022;
    let mut next = move || {
        // SplitMix64.
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (0..count)
        .map(|i| {
            let len = [64, 256, 1024][i % 3];
            (0..len).map(|_| next() as u8).collect()
        })
        .collect()
}

#[test]
fn the_core_target_catches_every_mutant() {
    let mut inputs: Vec<Vec<u8>> = common::inputs("core")
        .into_iter()
        .map(|(_, bytes)| bytes)
        .collect();
    inputs.extend(random_inputs(3_000));
    for inp in &inputs {
        fuzz_bodies::core::check(inp, Core::new).expect("the real core passes");
    }
    for mutant in Mutant::ALL {
        let caught = inputs.iter().find_map(|data| {
            fuzz_bodies::core::check(data, |c| Core::with_mutant(c, mutant)).err()
        });
        println!("{mutant:?}: {caught:?}");
        assert!(caught.is_some(), "{mutant:?} survived every input");
    }
}
