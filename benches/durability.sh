#!/usr/bin/env bash
# Durability modes (BENCHMARKS.md, "Durability modes"), one run, loopback
# only. Not part of `cargo test`.
#
#   cargo build --release --bin vcon-scitt && tests/interop/setup.sh && benches/durability.sh [OUT_DIR]
#
# Needs: curl, moto in the interop venv (setup.sh). Writers alternate
# `local` and `replicated` (local, replicated, replicated, local) on fresh
# data dirs, so each pair is back to back on this shared machine: at full
# load and at a steady rate, publishing to a local directory (file://, no
# store process on these cores) and to moto (an S3 API on the same two
# cores). With BEFORE=<an older binary>, first the write path without
# publishing, before vs after, alternated the same way.
# With FENCED=1, also `replicated` unfenced vs fenced by etcd (Debian
# `etcd-server`, started here on loopback), directory store; with BEFORE set
# too, `replicated` before vs after on the directory store, unfenced and
# fenced. SKIP_MODES=1
# skips the local-vs-replicated rows.
# Environment: B, BEFORE, FENCED, SKIP_MODES, CONNS (256), SECS (15), RATE
# (1000). About 6 minutes (+ 3 for FENCED, + 1.5 for BEFORE, + 1.5 for both).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-${CARGO_TARGET_DIR:-target}/release/vcon-scitt}
OUT=${1:-/tmp/vcon-scitt-durability-bench}
CONNS=${CONNS:-256}
SECS=${SECS:-15}
RATE=${RATE:-1000}
MOTO=${VCON_SCITT_INTEROP_DIR:-$HOME/.cache/vcon-scitt/interop}/venv/bin/moto_server
rm -rf "$OUT"; mkdir -p "$OUT"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT

"$MOTO" -H 127.0.0.1 -p 0 2>"$OUT/moto.err" >/dev/null & PIDS+=($!)
for _ in $(seq 100); do grep -q '127.0.0.1:[0-9]' "$OUT/moto.err" && break; sleep 0.1; done
S3=$(grep -om1 'http://127.0.0.1:[0-9]*' "$OUT/moto.err")
export AWS_ENDPOINT=$S3 AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1

PORT=8300
serve() { # binary name [flags...]
  local bin=$1 name=$2; shift 2
  PORT=$((PORT + 1))
  VCON_SCITT_RATE_LIMIT=0 "$bin" serve --data-dir "$OUT/$name" --listen 127.0.0.1:"$PORT" "$@" >"$OUT/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 200); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && return; sleep 0.1; done
  echo "$name did not start" >&2; exit 1
}
load() { # name [bench flags...]
  local name=$1; shift
  "$B" bench --url "http://127.0.0.1:$PORT" --connections "$CONNS" --duration "$SECS" --json "$@" >"$OUT/$name.json" 2>/dev/null
  local rate p50 p99 cpu
  rate=$(awk -F': ' '/"registrations_per_sec"/ {gsub(",","",$2); printf "%.0f", $2}' "$OUT/$name.json")
  p50=$(awk -F': ' '/"p50"/ {gsub(",","",$2); printf "%.2f", $2; exit}' "$OUT/$name.json")
  p99=$(awk -F': ' '/"p99"/ {gsub(",","",$2); printf "%.2f", $2; exit}' "$OUT/$name.json")
  cpu=$(awk -F': ' '/"server_us_per_registration"/ {gsub(",","",$2); printf "%.1f", $2}' "$OUT/$name.json")
  local c201 c202
  c201=$(awk -F': ' '/"created_201"/ {gsub(",","",$2); print $2}' "$OUT/$name.json")
  c202=$(awk -F': ' '/"accepted_202"/ {gsub(",","",$2); print $2}' "$OUT/$name.json")
  echo "$name: $rate registrations/s, p50 $p50 ms, p99 $p99 ms, writer CPU ${cpu} µs/registration, 201: $c201, 202: $c202"
}
stop_last() { kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true; unset 'PIDS[-1]'; }
bucket() { curl -fs -X PUT "$S3/$1" >/dev/null; echo "s3://$1"; }

echo "== machine"; nproc; grep -m1 'model name' /proc/cpuinfo || true; "$B" --version || true

if [ -n "${BEFORE:-}" ]; then
  echo "== the write path, no publishing: before ($BEFORE) vs after ($B), full load"
  serve "$BEFORE" before1; load before1; stop_last
  serve "$B" after1; load after1; stop_last
  serve "$B" after2; load after2; stop_last
  serve "$BEFORE" before2; load before2; stop_last
fi

if [ -n "${BEFORE:-}" ]; then
  echo "== replicated, directory store, full load: before ($BEFORE) vs after ($B)"
  for run in before1 after1 after2 before2; do
    bin=$B; [ "${run%[0-9]}" = before ] && bin=$BEFORE
    serve "$bin" "rep-$run" --publish-to "file://$OUT/pub-rep-$run" --durability replicated
    load "rep-$run"; stop_last
  done
fi

if [ -n "${FENCED:-}" ]; then
  EP=23790
  etcd --name bench --data-dir "$OUT/etcd" --listen-client-urls "http://127.0.0.1:$EP" \
    --advertise-client-urls "http://127.0.0.1:$EP" --listen-peer-urls "http://127.0.0.1:$((EP + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((EP + 1))" \
    --initial-cluster "bench=http://127.0.0.1:$((EP + 1))" >"$OUT/etcd.log" 2>&1 & PIDS+=($!)
  for _ in $(seq 100); do ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$EP" endpoint health >/dev/null 2>&1 && break; sleep 0.1; done
  for mode in "full load" "steady $RATE/s"; do
    flags=(); [ "$mode" != "full load" ] && flags=(--rate "$RATE")
    echo "== directory store, replicated, $mode: unfenced vs fenced (etcd compare-and-swap per round)"
    for run in unfenced1 fenced1 fenced2 unfenced2; do
      fence=(); [ "${run%[0-9]}" = fenced ] && fence=(--etcd "http://127.0.0.1:$EP")
      # Each run is a new log: etcd forgets the last one's checkpoint.
      ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$EP" del --prefix /vcon-scitt/ >/dev/null
      serve "$B" "fence-$run-${#flags[@]}" --publish-to "file://$OUT/pub-fence-$run-${#flags[@]}" --durability replicated "${fence[@]}"
      load "fence-$run-${#flags[@]}" "${flags[@]}"
      stop_last
    done
  done
  if [ -n "${BEFORE:-}" ]; then
    echo "== directory store, replicated, fenced, full load: before ($BEFORE) vs after ($B)"
    for run in before1 after1 after2 before2; do
      bin=$B; [ "${run%[0-9]}" = before ] && bin=$BEFORE
      ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$EP" del --prefix /vcon-scitt/ >/dev/null
      serve "$bin" "fenced-$run" --publish-to "file://$OUT/pub-fenced-$run" --durability replicated --etcd "http://127.0.0.1:$EP"
      load "fenced-$run"
      stop_last
    done
  fi
fi

[ -n "${SKIP_MODES:-}" ] && exit 0
for store in file moto; do
  for mode in "full load" "steady $RATE/s"; do
    flags=(); [ "$mode" != "full load" ] && flags=(--rate "$RATE")
    echo "== $store store, $mode: local vs replicated"
    for run in local1 replicated1 replicated2 local2; do
      d=${run%[0-9]}
      if [ "$store" = file ]; then to="file://$OUT/pub-$run-${flags[*]:+rate}"; else to=$(bucket "b-$run-${#flags[@]}"); fi
      serve "$B" "$store-$run-${#flags[@]}" --publish-to "$to" --durability "$d"
      load "$store-$run-${#flags[@]}" "${flags[@]}"
      stop_last
    done
  done
done
