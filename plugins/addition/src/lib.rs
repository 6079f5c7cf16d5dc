//! `addition` sample plugin.
//!
//! Export `add`: input `{"left": <number>, "right": <number>}`; output is the
//! JSON text `{"result": <left + right>}`. If both operands are integers (and
//! the sum fits in 64 bits) the result is an integer, otherwise a float.

use extism_pdk::{Error, FnResult, plugin_fn};
use serde::Deserialize;
use serde_json::{Number, json};

#[derive(Deserialize)]
struct Args {
    left: Number,
    right: Number,
}

fn sum(left: &Number, right: &Number) -> Result<Number, Error> {
    if let (Some(a), Some(b)) = (left.as_i64(), right.as_i64()) {
        if let Some(s) = a.checked_add(b) {
            return Ok(s.into());
        }
    }
    if let (Some(a), Some(b)) = (left.as_u64(), right.as_u64()) {
        if let Some(s) = a.checked_add(b) {
            return Ok(s.into());
        }
    }
    // Mixed int/float, a float operand, or an integer overflow: use floats.
    let (a, b) = (left.as_f64(), right.as_f64());
    match (a, b) {
        (Some(a), Some(b)) => Number::from_f64(a + b)
            .ok_or_else(|| Error::msg(format!("{left} + {right} is not a finite number"))),
        _ => Err(Error::msg(format!("cannot add {left} and {right}"))),
    }
}

#[plugin_fn]
pub fn add(input: Vec<u8>) -> FnResult<String> {
    let args: Args = serde_json::from_slice(&input)
        .map_err(|e| Error::msg(format!("invalid input: {e}")))?;
    let result = sum(&args.left, &args.right)?;
    Ok(json!({ "result": result }).to_string())
}
