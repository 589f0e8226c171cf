#!/usr/bin/env bash
# Publishing to object storage and read replicas (BENCHMARKS.md, "Object
# storage"), one run, loopback only. Not part of `cargo test`.
#
#   cargo build --release --bin vcon-scitt && tests/interop/setup.sh && benches/publish.sh [OUT_DIR]
#
# Needs: curl, wrk (Debian `wrk`), moto in the interop venv (setup.sh).
# Alternates writers without and with publishing (off, on, on, off) on fresh
# data dirs, so each pair is back to back on this shared machine; then a
# replica of the published bucket and the writer serve the same receipts to
# wrk in turn. Environment: B, CONNS (256), SECS (15), RATE (3000). About 5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-${CARGO_TARGET_DIR:-target}/release/vcon-scitt}
OUT=${1:-/tmp/vcon-scitt-publish-bench}
CONNS=${CONNS:-256}
SECS=${SECS:-15}
MOTO=${VCON_SCITT_INTEROP_DIR:-$HOME/.cache/vcon-scitt/interop}/venv/bin/moto_server
rm -rf "$OUT"; mkdir -p "$OUT"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT

"$MOTO" -H 127.0.0.1 -p 0 2>"$OUT/moto.err" >/dev/null & PIDS+=($!)
MOTO_PID=$!
moto_cpu() { ps -o cputimes= -p "$MOTO_PID" | tr -d ' '; }
for _ in $(seq 100); do grep -q '127.0.0.1:[0-9]' "$OUT/moto.err" && break; sleep 0.1; done
S3=$(grep -om1 'http://127.0.0.1:[0-9]*' "$OUT/moto.err")
export AWS_ENDPOINT=$S3 AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1

serve() { # name port [flags...]
  local name=$1 port=$2; shift 2
  VCON_SCITT_RATE_LIMIT=0 "$B" serve --data-dir "$OUT/$name" --listen 127.0.0.1:"$port" "$@" >"$OUT/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 200); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && return; sleep 0.1; done
  echo "$name did not start" >&2; exit 1
}
metric() { curl -fs "$1/metrics" | awk -v m="$2" '$1==m {print $2}'; }
# Quantile q of a Prometheus histogram, linear within the bucket.
quantile() { # url name q
  curl -fs "$1/metrics" | awk -v n="$2_bucket" -v q="$3" '
    index($1, n"{le=") == 1 { split($1, a, "\""); le[++k] = a[2]; c[k] = $2 }
    END { t = c[k]; want = q * t; p = 0; pc = 0
      for (i = 1; i <= k; i++) { if (c[i] >= want) { if (le[i] == "+Inf") { print ">" p; exit }
        d = c[i] - pc; if (d <= 0) d = 1
        printf "%.3f\n", p + (le[i] - p) * (want - pc) / d; exit }
        p = le[i]; pc = c[i] } }'
}
load() { # name port [bench flags...]
  local name=$1 port=$2 m0 m1; shift 2
  m0=$(moto_cpu)
  "$B" bench --url "http://127.0.0.1:$port" --connections "$CONNS" --duration "$SECS" --json "$@" >"$OUT/$name.json" 2>/dev/null
  m1=$(moto_cpu)
  local rate cpu p99
  rate=$(awk -F': ' '/"registrations_per_sec"/ {gsub(",","",$2); printf "%.0f", $2}' "$OUT/$name.json")
  cpu=$(awk -F': ' '/"server_us_per_registration"/ {gsub(",","",$2); printf "%.1f", $2}' "$OUT/$name.json")
  p99=$(awk -F': ' '/"p99"/ {gsub(",","",$2); printf "%.2f", $2; exit}' "$OUT/$name.json")
  echo "$name: $rate registrations/s, p99 $p99 ms, writer CPU ${cpu} µs/registration, moto CPU $((m1 - m0)) s"
}
lag() { # name url
  local size
  size=$(metric "$2" vcon_scitt_tree_size)
  for _ in $(seq 600); do [ "$(metric "$2" vcon_scitt_published_tree_size)" = "$size" ] && break; sleep 0.1; done
  echo "$1: bucket caught up to $size; objects $(metric "$2" vcon_scitt_published_objects_total), failed rounds $(metric "$2" vcon_scitt_publish_failed_rounds_total)"
  echo "$1: publishing lag per batch (201 -> checkpoint covering it in the bucket): p50 $(quantile "$2" vcon_scitt_publish_lag_seconds 0.5) s, p99 $(quantile "$2" vcon_scitt_publish_lag_seconds 0.99) s (interpolated in the histogram's buckets:)"
  curl -fs "$2/metrics" | awk '/^vcon_scitt_publish_lag_seconds_bucket/ {split($1, a, "\""); printf " le %s: %s;", a[2], $2} END {print ""}'
}
stop_last() { kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true; unset 'PIDS[-1]'; }

echo "== machine"; nproc; grep -m1 'model name' /proc/cpuinfo || true; "$B" --version || true
curl -fs -X PUT "$S3/log" >/dev/null
curl -fs -X PUT "$S3/log2" >/dev/null

echo "== registrations/s, publishing off vs on, at full load ($CONNS connections, ${SECS}s each, fsync on)"
serve off1 8201; load off1 8201; stop_last
serve on1 8202 --publish-to s3://log; load on1 8202
URL_ON=http://127.0.0.1:8202
lag on1 $URL_ON
WRITER_PID=${PIDS[-1]}
serve on2 8203 --publish-to s3://log2; load on2 8203; stop_last
serve off2 8204; load off2 8204; stop_last

echo "== full load, publishing to a local directory (file://, every file fsync'd; no store process on these cores)"
serve on5 8210 --publish-to "file://$OUT/published"; load on5 8210; lag on5 http://127.0.0.1:8210; stop_last
serve off5 8211; load off5 8211; stop_last
serve on6 8212 --publish-to "file://$OUT/published6"; load on6 8212; stop_last
serve off6 8213; load off6 8213; stop_last

echo "== again at full load, moto at nice 19 (a store on other machines takes no CPU from the writer; here it gets what is left)"
renice -n 19 -p "$MOTO_PID" >/dev/null
curl -fs -X PUT "$S3/log4" >/dev/null
serve on4 8208 --publish-to s3://log4; load on4 8208; lag on4 http://127.0.0.1:8208; stop_last
serve off4 8209; load off4 8209; stop_last
renice -n 0 -p "$MOTO_PID" >/dev/null

RATE=${RATE:-3000}
echo "== the same at a steady $RATE registrations/s (below both capacities): cost per registration, latency, lag"
curl -fs -X PUT "$S3/log3" >/dev/null
serve off3 8206; load off3 8206 --rate "$RATE"; stop_last
serve on3 8207 --publish-to s3://log3; load on3 8207 --rate "$RATE"
lag on3 http://127.0.0.1:8207; stop_last

echo "== receipt GETs/s: replica of s3://log vs its writer, same receipts (wrk, 64 connections, 10 s)"
serve replica 8205 --replica-of s3://log
curl -fs "$URL_ON/events?limit=1000" | grep -o '"entry_id": *"[0-9a-f]*"' | grep -o '[0-9a-f]\{64\}' |
  awk 'BEGIN{printf "paths={"} {printf "%s\"/entries/%s\"", (NR>1?",":""), $1} END{print "}"}' >"$OUT/get.lua"
echo 'request = function() return wrk.format("GET", paths[math.random(#paths)]) end' >>"$OUT/get.lua"
for target in "replica 8205" "writer 8202" "replica 8205"; do
  set -- $target
  echo "$1:"; wrk -t1 -c64 -d10s -s "$OUT/get.lua" --latency "http://127.0.0.1:$2" | grep -E 'Requests/sec|99%|Non-2xx' || true
done
echo "replica health: $(curl -fs http://127.0.0.1:8205/healthz)"
kill "$WRITER_PID" 2>/dev/null || true
