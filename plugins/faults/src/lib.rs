//! `faults` test plugin: functions that misbehave on purpose (or just burn
//! time), used by wasimancer's tests for timeouts, traps, memory limits,
//! output limits, error propagation and concurrency.
//!
//! Exports (inputs are JSON objects as text):
//! - `spin`: never returns (infinite loop); input ignored.
//! - `trap`: executes the wasm `unreachable` instruction; input ignored.
//! - `allocate`: `{"mb": <int>}`; allocates that many MiB, writes to every
//!   4 KiB page, returns `allocated <mb> MiB`.
//! - `huge_output`: `{"bytes": <int>}`; returns that many `x` characters
//!   (written directly into Extism memory, so the guest heap stays small).
//! - `fail`: `{"message": "<string>"}`; returns an error with exactly that message.
//! - `work`: `{"iterations": <int>}`; runs that many rounds of cheap arithmetic
//!   and returns the final value as decimal text.
//! - `echo`: returns its input bytes unchanged.

use core::hint::black_box;

use extism_pdk::{Error, FnResult, Memory, MemoryHandle, extism, plugin_fn};
use serde::Deserialize;
use serde::de::DeserializeOwned;

const MIB: usize = 1024 * 1024;
const TOUCH_STRIDE: usize = 4096;
const OUTPUT_CHUNK: usize = 64 * 1024;

fn parse_args<T: DeserializeOwned>(input: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(input).map_err(|e| Error::msg(format!("invalid input: {e}")))
}

#[plugin_fn]
pub fn spin() -> FnResult<String> {
    let mut counter: u64 = 0;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

#[plugin_fn]
pub fn trap() -> FnResult<String> {
    core::arch::wasm32::unreachable()
}

#[derive(Deserialize)]
struct AllocateArgs {
    mb: u64,
}

#[plugin_fn]
pub fn allocate(input: Vec<u8>) -> FnResult<String> {
    let args: AllocateArgs = parse_args(&input)?;
    let size = usize::try_from(args.mb)
        .ok()
        .and_then(|mb| mb.checked_mul(MIB))
        .ok_or_else(|| Error::msg(format!("cannot allocate {} MiB: too large", args.mb)))?;

    let mut buf: Vec<u8> = Vec::new();
    // Without a host memory cap this reports failure instead of aborting; with
    // a cap the host stops us while the memory grows.
    buf.try_reserve_exact(size)
        .map_err(|e| Error::msg(format!("cannot allocate {} MiB: {e}", args.mb)))?;
    let spare = buf.spare_capacity_mut();
    let mut offset = 0;
    while offset < size {
        spare[offset].write(1);
        offset += TOUCH_STRIDE;
    }
    black_box(&mut buf);
    Ok(format!("allocated {} MiB", args.mb))
}

#[derive(Deserialize)]
struct HugeOutputArgs {
    bytes: u64,
}

#[plugin_fn]
pub fn huge_output(input: Vec<u8>) -> FnResult<Memory> {
    let args: HugeOutputArgs = parse_args(&input)?;
    let len = args.bytes;
    // Write the output straight into an Extism memory block, a chunk at a
    // time, so the plugin's own heap stays small: the output size, not the
    // guest's memory use, is what this function is meant to exercise.
    // SAFETY: `alloc` returns a block of `len` bytes (or 0 on failure) in
    // Extism memory; every `store` below stays within that block.
    let offset = unsafe { extism::alloc(len) };
    if offset == 0 && len > 0 {
        return Err(Error::msg(format!("cannot produce {len} bytes: allocation failed")).into());
    }
    let chunk = [b'x'; OUTPUT_CHUNK];
    let mut written: u64 = 0;
    while written < len {
        let n = (len - written).min(OUTPUT_CHUNK as u64) as usize;
        unsafe { extism::store(offset + written, &chunk[..n]) };
        written += n as u64;
    }
    Ok(Memory(MemoryHandle { offset, length: len }))
}

#[derive(Deserialize)]
struct FailArgs {
    message: String,
}

#[plugin_fn]
pub fn fail(input: Vec<u8>) -> FnResult<String> {
    let args: FailArgs = parse_args(&input)?;
    Err(Error::msg(args.message).into())
}

#[derive(Deserialize)]
struct WorkArgs {
    iterations: u64,
}

#[plugin_fn]
pub fn work(input: Vec<u8>) -> FnResult<String> {
    let args: WorkArgs = parse_args(&input)?;
    // 64-bit LCG step; black_box keeps every iteration from being folded away.
    let mut state: u64 = 0;
    for _ in 0..args.iterations {
        state = black_box(
            state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407),
        );
    }
    Ok(state.to_string())
}

#[plugin_fn]
pub fn echo(input: Vec<u8>) -> FnResult<Vec<u8>> {
    Ok(input)
}
