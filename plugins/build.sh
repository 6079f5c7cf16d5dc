#!/usr/bin/env bash
# Rebuild the sample/test Extism plugins and copy each module next to its
# source as plugins/<name>/<name>.wasm (plus plugins/hello/hello-v2.wasm),
# and the conformance fixture's plugin (examples/conformance/plugin) to
# examples/conformance/plugins/conformance.wasm.
#
# Usage: plugins/build.sh [plugin...]    (default: all plugins)
#
# The toolchain comes from the repository's rust-toolchain.toml. Build output
# goes to plugins/target (override with CARGO_TARGET_DIR).
set -euo pipefail

PLUGINS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONFORMANCE_DIR="$(cd "$PLUGINS_DIR/../examples/conformance" && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PLUGINS_DIR/target}"

# Keep local paths (cargo home, checkout location) out of the committed
# modules' panic-location strings, so rebuilds on other machines match.
if [[ -z "${RUSTFLAGS:-}" && -z "${CARGO_ENCODED_RUSTFLAGS:-}" ]]; then
  sep=$'\x1f'
  export CARGO_ENCODED_RUSTFLAGS="--remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo${sep}--remap-path-prefix=$PLUGINS_DIR=/plugins${sep}--remap-path-prefix=$CONFORMANCE_DIR=/conformance"
fi

# plugin name -> rust target
declare -A TARGETS=(
  [roll-dice]=wasm32-wasip1
  [hello]=wasm32-unknown-unknown
  [addition]=wasm32-unknown-unknown
  [config-reader]=wasm32-unknown-unknown
  [faults]=wasm32-unknown-unknown
  [sandbox]=wasm32-wasip1
  [conformance]=wasm32-unknown-unknown
)
ALL=(roll-dice hello addition config-reader faults sandbox conformance)

# Where a plugin's Cargo project is (default: plugins/<name>).
source_dir() {
  if [[ "$1" == conformance ]]; then echo "$CONFORMANCE_DIR/plugin"; else echo "$PLUGINS_DIR/$1"; fi
}

# Where a plugin's module goes (default: plugins/<name>/<name>.wasm).
module_path() {
  if [[ "$1" == conformance ]]; then echo "$CONFORMANCE_DIR/plugins/conformance.wasm"; else echo "$PLUGINS_DIR/$1/$1.wasm"; fi
}

die() { echo "build.sh: error: $*" >&2; exit 1; }

command -v cargo >/dev/null 2>&1 || die "cargo not found in PATH (install Rust via https://rustup.rs)"

# Fails with the rustup command to run if the standard library for $1 is missing.
require_target() {
  local target="$1" sysroot toolchain
  sysroot="$(cd "$PLUGINS_DIR" && rustc --print sysroot)"
  if [[ ! -d "$sysroot/lib/rustlib/$target/lib" ]]; then
    toolchain="$(basename "$sysroot")"
    die "Rust target '$target' is not installed for toolchain '$toolchain'.
Install it with:
    rustup target add --toolchain $toolchain $target"
  fi
}

# build <plugin> <output file> [extra cargo args...]
build() {
  local name="$1" out="$2"; shift 2
  local target="${TARGETS[$name]}"
  local artifact="$CARGO_TARGET_DIR/$target/release/${name//-/_}.wasm"
  echo "==> $name ($target${*:+, $*}) -> ${out#"$PLUGINS_DIR"/}"
  (cd "$(source_dir "$name")" && cargo build --release --target "$target" "$@")
  [[ -f "$artifact" ]] || die "expected build output $artifact was not produced"
  cp "$artifact" "$out"
  chmod 644 "$out"
}

if [[ $# -gt 0 ]]; then
  selected=("$@")
else
  selected=("${ALL[@]}")
fi

for name in "${selected[@]}"; do
  [[ -n "${TARGETS[$name]:-}" ]] || die "unknown plugin '$name' (known: ${ALL[*]})"
  require_target "${TARGETS[$name]}"
done

for name in "${selected[@]}"; do
  build "$name" "$(module_path "$name")"
  if [[ "$name" == hello ]]; then
    build hello "$PLUGINS_DIR/hello/hello-v2.wasm" --features v2
  fi
done

echo "Done:"
for name in "${selected[@]}"; do
  ls -l "$(dirname "$(module_path "$name")")/"*.wasm
done
