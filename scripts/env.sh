# Sourced by the scripts: one build profile, with build output cached outside the clone so that
# RocksDB (a 14-minute C++ build) is compiled once per machine, not once per checkout.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/quarry-target}"
mkdir -p "$CARGO_TARGET_DIR"
