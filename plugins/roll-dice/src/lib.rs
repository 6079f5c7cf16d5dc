//! `roll-dice` sample plugin (target `wasm32-wasip1`).
//!
//! Export `rollDice`: input `{"numFaces": <int>, "numDice": <int>}`; rolls
//! `numDice` dice with `numFaces` faces each and returns the sum as plain text.
//! Randomness comes from the WASI `random_get` import, so the host must enable
//! WASI for this plugin.

// The exported function name must be `rollDice` (camelCase), and `plugin_fn`
// does not forward attributes, so allow it crate-wide.
#![allow(non_snake_case)]

use extism_pdk::{Error, FnResult, plugin_fn};
use serde::Deserialize;

const MAX_DICE: f64 = 1000.0;
const MAX_FACES: f64 = u32::MAX as f64;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Args {
    // Numbers are read as f64 so that `6` and `6.0` are both accepted; they
    // are checked to be whole numbers in range below.
    num_faces: f64,
    num_dice: f64,
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
unsafe extern "C" {
    /// WASI preview 1 `random_get(buf, buf_len) -> errno`.
    #[link_name = "random_get"]
    fn wasi_random_get(buf: *mut u8, buf_len: usize) -> i32;
}

fn random_u64() -> Result<u64, Error> {
    let mut bytes = [0u8; 8];
    // SAFETY: the pointer and length describe a writable local buffer.
    let errno = unsafe { wasi_random_get(bytes.as_mut_ptr(), bytes.len()) };
    if errno != 0 {
        return Err(Error::msg(format!("WASI random_get failed (errno {errno})")));
    }
    Ok(u64::from_le_bytes(bytes))
}

/// Uniform integer in `0..n` (n >= 1), without modulo bias.
fn uniform_below(n: u64) -> Result<u64, Error> {
    // 2^64 mod n: values below this would make some residues more likely.
    let threshold = n.wrapping_neg() % n;
    loop {
        let x = random_u64()?;
        if x >= threshold {
            return Ok(x % n);
        }
    }
}

fn whole_in_range(field: &str, value: f64, max: f64) -> Result<u64, Error> {
    if value.fract() != 0.0 || !(1.0..=max).contains(&value) {
        return Err(Error::msg(format!(
            "{field} must be an integer between 1 and {max} (got {value})"
        )));
    }
    Ok(value as u64)
}

#[plugin_fn]
pub fn rollDice(input: Vec<u8>) -> FnResult<String> {
    let args: Args = serde_json::from_slice(&input)
        .map_err(|e| Error::msg(format!("invalid input: {e}")))?;
    let faces = whole_in_range("numFaces", args.num_faces, MAX_FACES)?;
    let dice = whole_in_range("numDice", args.num_dice, MAX_DICE)?;

    let mut sum: u64 = 0;
    for _ in 0..dice {
        sum += 1 + uniform_below(faces)?;
    }
    Ok(sum.to_string())
}
