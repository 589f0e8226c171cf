#!/usr/bin/env bash
# Every load figure in BENCHMARKS.md, from one run, on loopback only.
# Not part of `cargo test`. Needs: a release build, curl, and wrk (Debian
# package `wrk`) for the receipt-fetch figure (skipped if absent).
#
#   cargo build --release --workspace && benches/suite.sh [OUT_DIR]
#
# Environment: B (vcon-scitt binary), CONNS (256), SECS (20), BIG (10000000
# entries for the growth run; the fill takes ~1 min and ~1.4 GB in OUT_DIR).
# Takes about 11 minutes with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-${CARGO_TARGET_DIR:-target}/release/vcon-scitt}
OUT=${1:-/tmp/vcon-scitt-bench}
CONNS=${CONNS:-256}
SECS=${SECS:-20}
BIG=${BIG:-10000000}
PORT=8100
URL=http://127.0.0.1:$PORT
mkdir -p "$OUT"
rm -rf "$OUT"/fresh "$OUT"/small "$OUT"/big
SERVER=

serve() { # data-dir
  VCON_SCITT_RATE_LIMIT=0 "$B" serve --data-dir "$1" --listen 127.0.0.1:$PORT >"$OUT/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 100); do curl -fs "$URL/healthz" >/dev/null && return; sleep 0.1; done
  echo "server did not start" >&2; exit 1
}
stop() { kill "$SERVER"; wait "$SERVER" || true; SERVER=; }
trap '[ -n "$SERVER" ] && kill $SERVER' EXIT
metric() { curl -fs "$URL/metrics" | awk -v m="$1" '$1==m {print $2}'; }
section() { printf '\n== %s\n' "$*"; }

section "machine"
nproc; grep -m1 'model name' /proc/cpuinfo || true; uname -r; "$B" --version || true

section "max rate, fresh log, $CONNS connections, ${SECS}s"
serve "$OUT/fresh"
"$B" bench --url "$URL" --connections "$CONNS" --duration "$SECS" --json >"$OUT/max.json" 2>/dev/null
MAX=$(awk -F': ' '/"registrations_per_sec"/ {gsub(",","",$2); print int($2)}' "$OUT/max.json")
cat "$OUT/max.json"

section "half of that rate ($((MAX / 2))/s)"
"$B" bench --url "$URL" --connections "$CONNS" --duration "$SECS" --rate $((MAX / 2)) >"$OUT/half.txt" 2>/dev/null
cat "$OUT/half.txt"

section "receipt fetches (GET /entries/{id}), cache-warm"
if command -v wrk >/dev/null; then
  curl -fs "$URL/events?limit=1000" | grep -o '"entry_id": *"[0-9a-f]*"' | grep -o '[0-9a-f]\{64\}' |
    awk 'BEGIN{printf "paths={"} {printf "%s\"/entries/%s\"", (NR>1?",":""), $1} END{print "}"}' >"$OUT/get.lua"
  echo 'request = function() return wrk.format("GET", paths[math.random(#paths)]) end' >>"$OUT/get.lua"
  wrk -t1 -c64 -d10s -s "$OUT/get.lua" --latency "$URL" | grep -E 'Requests/sec|99%|Non-2xx' || true
  echo "baseline in the same run, GET /healthz:"
  wrk -t1 -c64 -d10s "$URL/healthz" | grep -E 'Requests/sec' || true
else
  echo "wrk not installed: skipped"
fi
SIZE=$(metric vcon_scitt_tree_size)
stop
section "storage: fresh log after the runs above ($SIZE entries)"
du -sb "$OUT/fresh/db" | awk -v n="$SIZE" '{printf "%d bytes on disk, %.0f bytes per entry (statement included)\n", $1, $1/n}'
awk -F': ' '/"statement_bytes_mean"/ {gsub(",","",$2); printf "mean statement %.0f bytes\n", $2}' "$OUT/max.json"

section "growth: 10^4 vs $BIG entries (bench --fill through the real sequencer)"
"$B" bench --fill 10000 --data-dir "$OUT/small"
"$B" bench --fill "$BIG" --data-dir "$OUT/big"
du -sb "$OUT/big/db" | awk -v n="$BIG" '{printf "big log: %d bytes on disk, %.1f bytes per filled entry (entries are ~30-byte strings)\n", $1, $1/n}'
# Alternating small, big, small, big: on a shared machine, two runs minutes
# apart differ by ±10 %; pairs taken back to back show the real difference.
for round in 1 2; do
  for d in small big; do
    serve "$OUT/$d"
    echo "$d (round $round): RSS at start $(metric process_resident_memory_bytes) bytes, tree size $(metric vcon_scitt_tree_size)"
    "$B" bench --url "$URL" --connections "$CONNS" --duration "$SECS" >"$OUT/$d-$round.txt" 2>/dev/null
    cat "$OUT/$d-$round.txt"
    echo "$d (round $round): RSS after load $(metric process_resident_memory_bytes) bytes"
    stop
  done
done
