#!/usr/bin/env bash
# usage: scripts/test.sh
#
# THE test command (CI runs it through .ci/run): installs the oracle tools (scripts/install-test-deps.sh),
# then checks formatting, runs clippy with warnings denied, and runs every test of the workspace with
# SIGIL_REQUIRE_ORACLES=1, so an oracle test whose tool is missing fails instead of skipping.
# Exits non-zero on the first failing step.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export SIGIL_ORACLES_HOME=${SIGIL_ORACLES_HOME:-$HOME/.cache/sigil/oracles}
export SIGIL_REQUIRE_ORACLES=1
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

step() { echo "==> $*"; }

step "install test dependencies"
bash scripts/install-test-deps.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line over every test binary (cargo's own last line is often an empty doc-test run).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1); if ($(i) ~ /^ignored;?$/) s += $(i-1) } }
     END { printf "summary: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
