#!/usr/bin/env bash
# The web UI: its sources in web/ (Preact, TypeScript, Vite), its built bundle committed in
# crates/chorus-server/webui (embedded into the binary, so `cargo build` never needs Node), and
# its browser tests in tests/webui (Playwright driving Debian's chromium).
#
#   scripts/webui.sh build   rebuild the bundle from web/ (commit the result)
#   scripts/webui.sh check   rebuild it into a temporary dir and fail if it differs from the
#                            committed one (CI: a source change without its bundle)
#   scripts/webui.sh test    the browser tests against the real server (CHORUS_BIN, default
#                            target/debug/chorus) on the real qwen-coder model
#                            (CHORUS_QWEN_CODER); screenshots go to CHORUS_ARTIFACTS
#                            (default target/webui-artifacts), kept, never committed
#
# Each package's dependencies are installed with `npm ci` from its lockfile, again only when
# the lockfile changes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# `npm ci` in $1 unless its node_modules was installed from the same lockfile.
install() {
    local dir="$1" stamp
    stamp="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
    if [[ "$(cat "$dir/node_modules/.chorus-installed" 2>/dev/null)" != "$stamp" ]]; then
        echo "webui: npm ci in $dir" >&2
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
        echo "$stamp" >"$dir/node_modules/.chorus-installed"
    fi
}

bundle="$root/crates/chorus-server/webui"
case "${1:-}" in
    build)
        install web
        (cd web && npm run build >&2)
        ;;
    check)
        install web
        out="$(mktemp -d)"
        trap 'rm -rf "$out"' EXIT
        (cd web && npx tsc --noEmit && npx vite build --logLevel warn --outDir "$out" --emptyOutDir >&2)
        if ! diff -r "$out" "$bundle" >&2; then
            echo "webui: the committed bundle in crates/chorus-server/webui is not what web/ builds;" \
                "run scripts/webui.sh build and commit the result" >&2
            exit 1
        fi
        echo "webui: the committed bundle matches web/" >&2
        ;;
    test)
        install tests/webui
        chromium="${CHROMIUM:-/usr/bin/chromium}"
        if [[ ! -x "$chromium" ]]; then
            echo "webui: no chromium at $chromium; install Debian's chromium (scripts/install-deps.sh test) or set CHROMIUM" >&2
            exit 1
        fi
        : "${CHORUS_QWEN_CODER:?set CHORUS_QWEN_CODER to the qwen-coder fixture (scripts/models.sh qwen-coder)}"
        export CHROMIUM="$chromium"
        export CHORUS_BIN="${CHORUS_BIN:-$root/target/debug/chorus}"
        export CHORUS_ARTIFACTS="${CHORUS_ARTIFACTS:-$root/target/webui-artifacts}"
        mkdir -p "$CHORUS_ARTIFACTS"
        (cd tests/webui && npx tsc -p . && npx playwright test)
        echo "webui: screenshots in $CHORUS_ARTIFACTS" >&2
        ;;
    *)
        echo "usage: scripts/webui.sh build|check|test" >&2
        exit 2
        ;;
esac
