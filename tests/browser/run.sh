#!/usr/bin/env bash
# Browser tests of the Learning Hub pages (/ui/…): Playwright (playwright-core,
# pinned in package-lock.json) drives Debian's Chromium, headless, against a
# real `lrs serve` filled by the load tool's generator. Run by node's own
# test runner. Screenshots go to target/browser-artifacts/; with
# LRS_UPDATE_SCREENSHOTS=1 two of them also replace docs/screenshots/ (the
# README's pictures).
#
#   tests/browser/run.sh            # everything: install, build, fill, test
#
# Set LRS_BROWSER_KEEP=1 to keep the temporary data directory and the
# server's log (their path is printed); LRS_BROWSER_BINARIES=DIR to use
# DIR/lrs and DIR/lrs-load instead of building them.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
BROWSER_DIR="$ROOT/tests/browser"
started=$(date +%s)

# ----- Chromium (Debian's package) and Node -----
if [[ ! -x /usr/bin/chromium ]]; then
    if [[ "$(id -u)" -eq 0 ]]; then
        SUDO=()
    elif command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "Chromium is missing and this user can neither install packages nor sudo: apt-get install chromium" >&2
        exit 1
    fi
    echo "installing Debian's chromium package"
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq chromium >/dev/null
fi
for tool in node npm curl cargo; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "$tool is required for the browser tests" >&2
        exit 1
    fi
done
(cd "$BROWSER_DIR" && npm ci --no-audit --no-fund --loglevel=error)

# ----- binaries -----
if [[ -n "${LRS_BROWSER_BINARIES:-}" ]]; then
    LRS="$LRS_BROWSER_BINARIES/lrs"
    LOAD="$LRS_BROWSER_BINARIES/lrs-load"
else
    cargo build --locked -p lrs -p lrs-load
    LRS="$ROOT/target/debug/lrs"
    LOAD="$ROOT/target/debug/lrs-load"
fi

# ----- a data directory filled by the generator -----
WORK="$(mktemp -d "${TMPDIR:-/tmp}/lrs-browser.XXXXXX")"
DATA="$WORK/data"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ "${LRS_BROWSER_KEEP:-}" == 1 ]]; then
        echo "kept the browser tests' data and server log in $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

"$LOAD" generate --seed 7 --statements 3000 --out "$WORK/statements.ndjson" --directories "$WORK"
# Two later slices of traffic (other seeds, same directory of organisations),
# so the dashboard has several days, weeks and months to show.
"$LOAD" generate --seed 8 --statements 600 --start-time 2026-01-14T09:00:00Z --out "$WORK/statements-2.ndjson"
"$LOAD" generate --seed 9 --statements 600 --start-time 2026-02-03T09:00:00Z --out "$WORK/statements-3.ndjson"
cat "$WORK/statements-2.ndjson" "$WORK/statements-3.ndjson" >>"$WORK/statements.ndjson"
rm "$WORK/statements-2.ndjson" "$WORK/statements-3.ndjson"
mkdir -p "$DATA"
"$LRS" organisations import --data-dir "$DATA" "$WORK/organisations.csv"
"$LRS" learners import --data-dir "$DATA" "$WORK/learners.csv"

read -r ANALYST_ORG OTHER_ORG < <(node "$BROWSER_DIR/choose.mjs" "$WORK")
secret() { node -e 'console.log(require("node:crypto").randomBytes(18).toString("base64url"))'; }
ADMIN_KEY="browser-admin"
ADMIN_SECRET="$(secret)"
ANALYST_KEY="browser-analyst"
ANALYST_SECRET="$(secret)"
"$LRS" credentials add --data-dir "$DATA" --name browser-admin --key "$ADMIN_KEY" --secret "$ADMIN_SECRET" \
    --scopes all --organisations '*' >/dev/null
# An analyst: analytics for one organisation's subtree, no xAPI reads.
"$LRS" credentials add --data-dir "$DATA" --name browser-analyst --key "$ANALYST_KEY" --secret "$ANALYST_SECRET" \
    --scopes define --organisations "$ANALYST_ORG" >/dev/null
echo "analyst granted $ANALYST_ORG; the other organisation is $OTHER_ORG"

COMPETENCIES="$BROWSER_DIR/competency-frameworks.json"
IMPORTED=""
if "$LRS" import --help >/dev/null 2>&1; then
    "$LRS" import --data-dir "$DATA" --competencies "$COMPETENCIES" --quiet "$WORK/statements.ndjson"
    IMPORTED=yes
fi

# ----- the server, on a free loopback port -----
PORT="$(node -e 'const s=require("node:net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
URL="http://127.0.0.1:$PORT"
JWT_DATA="$ROOT/services/server/tests/data"
JWT_ISSUER="https://auth.browser-test.invalid"
JWT_AUDIENCE="lrs-browser-test"
"$LRS" serve --data-dir "$DATA" --listen "127.0.0.1:$PORT" --competencies "$COMPETENCIES" \
    --jwt-issuer "$JWT_ISSUER" --jwt-audience "$JWT_AUDIENCE" --jwt-key "$JWT_DATA/test-only-jwt-rsa-public.pem" \
    >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
deadline=$(($(date +%s) + 60))
until curl -fsS "$URL/health" >/dev/null 2>&1; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "lrs serve exited; its log:" >&2
        cat "$WORK/server.log" >&2
        exit 1
    fi
    if (($(date +%s) > deadline)); then
        echo "lrs serve was not healthy within 60 s" >&2
        exit 1
    fi
    sleep 0.1
done

export LRS_URL="$URL" LRS_ADMIN_KEY="$ADMIN_KEY" LRS_ADMIN_SECRET="$ADMIN_SECRET"
export LRS_ANALYST_KEY="$ANALYST_KEY" LRS_ANALYST_SECRET="$ANALYST_SECRET"
export LRS_ANALYST_ORG="$ANALYST_ORG" LRS_OTHER_ORG="$OTHER_ORG"
export LRS_JWT_PRIVATE_KEY="$JWT_DATA/test-only-jwt-rsa-private.pem" LRS_JWT_ISSUER="$JWT_ISSUER"
export LRS_JWT_AUDIENCE="$JWT_AUDIENCE" LRS_BROWSER_DATA="$WORK"
export LRS_BROWSER_ARTIFACTS="$ROOT/target/browser-artifacts"
if [[ -z "$IMPORTED" ]]; then
    node "$BROWSER_DIR/fill.mjs" post "$WORK/statements.ndjson"
fi
node "$BROWSER_DIR/fill.mjs" settle
echo "server filled and ready after $(($(date +%s) - started)) s"

tests_started=$(date +%s)
node --test --test-concurrency=1 --test-reporter=spec "$BROWSER_DIR"/*.test.mjs
echo "browser tests took $(($(date +%s) - tests_started)) s ($(($(date +%s) - started)) s with setup)"
