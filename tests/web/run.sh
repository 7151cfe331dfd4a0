#!/usr/bin/env bash
# Browser tests of the web UI: builds a small catalog, starts `scisearch serve` on a free loopback
# port, runs tests/web/ui.test.mjs (playwright-core driving Debian's headless chromium), stops the
# server. Exit 77 (ctest: skipped) when node, chromium or the npm packages are unavailable.
#   tests/web/run.sh [path/to/scisearch]       (default build/scisearch)
# Screenshots go to docs/screenshots/ (SCREENSHOT_DIR to change); KEEP_TMP=1 keeps the catalog.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="$(realpath "${1:-$root/build/scisearch}")"
chromium="${CHROMIUM:-/usr/bin/chromium}"

skip() { echo "web_ui: skipped: $*" >&2; exit 77; }
command -v node >/dev/null || skip "node is not installed (scripts/install-deps.sh installs nodejs npm)"
[[ -x "$chromium" ]] || skip "no chromium at $chromium (scripts/install-deps.sh installs chromium)"
[[ -x "$bin" ]] || { echo "web_ui: no scisearch binary at $bin" >&2; exit 1; }

cd "$root"
if [[ ! -d node_modules/playwright-core ]]; then
  command -v npm >/dev/null || skip "npm is not installed and node_modules/ is absent"
  echo "web_ui: npm ci (node_modules/ is absent)" >&2
  npm ci --no-audit --no-fund >&2 || skip "npm ci failed (no registry?): node_modules/ is absent"
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/scisearch-web.XXXXXX")"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [[ "${KEEP_TMP:-0}" == 1 ]]; then echo "web_ui: kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# A small facility, plus one file whose folder and name hold markup (the UI must show it as text).
quiet() { "$@" >"$tmp/step.log" 2>&1 || { cat "$tmp/step.log" >&2; echo "web_ui: failed: $*" >&2; exit 1; }; }
quiet "$bin" simulate --out "$tmp/facility" --files 150 --size 64 --seed 3
sample="$(find "$tmp/facility" -type f \( -name '*.mrc' -o -name '*.dm3' -o -name '*.tif' \) | sort | head -n 1)"
[[ -n "$sample" ]] || { echo "web_ui: the simulated facility has no MRC, DM3 or TIFF file" >&2; exit 1; }
hostile_dir="$tmp/facility/Hostile/2020/20200101 - <svg onload=\"window.__pwned=2\">"
mkdir -p "$hostile_dir"
cp "$sample" "$hostile_dir/<img src=x onerror=\"window.__pwned=1\">.${sample##*.}"
quiet "$bin" ingest "$tmp/facility" --data-dir "$tmp/data"
quiet "$bin" add-docs "$tmp/facility/proposals" --kind proposal --data-dir "$tmp/data"
quiet "$bin" add-docs "$tmp/facility/logs" --kind log --data-dir "$tmp/data"
quiet "$bin" add-docs "$tmp/facility/publications" --kind publication --data-dir "$tmp/data"

port="$(node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")"
serve_args=(serve --data-dir "$tmp/data" --host 127.0.0.1 --port "$port")
if "$bin" serve --help 2>/dev/null | grep -q -- '--web-root'; then serve_args+=(--web-root "$root/web"); fi
"$bin" "${serve_args[@]}" >"$tmp/server.log" 2>&1 &
server_pid=$!

url="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  if node -e "fetch('$url/api/v1/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"; then break; fi
  kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.log" >&2; echo "web_ui: the server exited" >&2; exit 1; }
  sleep 0.1
done

status=0
SCISEARCH_URL="$url" SCISEARCH_DATA_DIR="$tmp/data" CHROMIUM="$chromium" \
  node --test --test-reporter=spec tests/web/ui.test.mjs || status=$?
if [[ $status -ne 0 ]]; then
  echo "web_ui: server log (last 40 lines):" >&2
  tail -n 40 "$tmp/server.log" >&2
fi
exit $status
