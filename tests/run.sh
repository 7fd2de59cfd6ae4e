#!/usr/bin/env bash
# Runs every test of the project: unit, integration, the log contract suite
# and the crash-restart tests. Called by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is required (https://rustup.rs)" >&2
    exit 1
fi

cargo test --workspace --locked --all-targets
