#!/usr/bin/env bash
# Runs ADL's LRS conformance test suite against a fresh `lrs serve`.
#
#   tests/conformance/run.sh PATH_TO_SUITE [VERSION ...]
#
# PATH_TO_SUITE is a checkout of github.com/adlnet/lrs-conformance-test-suite
# (not part of this repository). VERSION is 1.0.3 and/or 2.0.0 (default both).
# The server runs on a free loopback port with a temporary data directory and
# is stopped afterwards. Exit status is non-zero if any test fails.
set -euo pipefail

suite=${1:?usage: tests/conformance/run.sh PATH_TO_SUITE [VERSION ...]}
shift
versions=("$@")
[ ${#versions[@]} -eq 0 ] && versions=(1.0.3 2.0.0)
root=$(cd "$(dirname "$0")/../.." && pwd)

cargo build --release --manifest-path "$root/Cargo.toml" -p lrs
if [ ! -d "$suite/node_modules" ]; then
    (cd "$suite" && npm install --no-audit --no-fund)
fi

data=$(mktemp -d)
out="$data/serve.out"
"$root/target/release/lrs" serve --listen 127.0.0.1:0 --data-dir "$data/store" >"$out" 2>"$data/serve.err" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$data"' EXIT

for _ in $(seq 1 100); do
    grep -q '^xAPI endpoint:' "$out" && break
    kill -0 "$server" 2>/dev/null || { cat "$data/serve.err"; exit 1; }
    sleep 0.1
done
endpoint=$(sed -n 's/^xAPI endpoint: \(.*\)\/$/\1/p' "$out")
key=$(awk '/key:/ {print $2; exit}' "$out")
secret=$(awk '/secret:/ {print $2; exit}' "$out")
[ -n "$endpoint" ] && [ -n "$key" ] || { echo "the server did not start"; cat "$data/serve.err"; exit 1; }

status=0
for version in "${versions[@]}"; do
    echo "== conformance suite $(git -C "$suite" rev-parse --short HEAD 2>/dev/null || echo '?') for xAPI $version against $endpoint"
    (cd "$suite" && node bin/console_runner.js -e "$endpoint" -a -u "$key" -p "$secret" -x "$version" -z) \
        | tee "$data/conformance-$version.log" | grep -E '"total"|Tests completed' | tail -2
    summary=$(grep '"total"' "$data/conformance-$version.log" | tail -1)
    echo "$summary" | grep -q '"failed":0' || status=1
done
exit $status
