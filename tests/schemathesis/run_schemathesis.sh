#!/usr/bin/env bash
# Run schemathesis over every operation of proto/openapi.yaml against a live
# vcon-scitt server, with real signed statements and real ids (see
# schemathesis_hooks.py beside this script). Exits non-zero on any failure.
#
#   run_schemathesis.sh SERVER_URL
#
# The server must trust the test issuer https://conserver.test.example with
# keys/test-issuer-es256.keys.cbor (the repository's vcon-scitt.toml does), and
# should run with VCON_SCITT_RATE_LIMIT=0 (429s are not failures, but they hide
# the paths under test).
#
# Environment (all optional):
#   SCHEMATHESIS      the schemathesis command (default: schemathesis; needs 4.32.x
#                     plus cbor2 and cryptography in the same Python)
#   OPENAPI_SPEC      the contract (default: proto/openapi.yaml above this script)
#   SCITT_ISSUER_KEY  issuer PKCS#8 key (default: keys/test-issuer-es256.pk8 above this script)
#   ST_MAX_EXAMPLES   examples per operation and phase (default 50)
#   ST_SEED           hypothesis seed (default fixed, so CI runs are reproducible)
#   ST_WORKERS        concurrent workers (default 4)
#   ST_REPORT_DIR     where JUnit/HAR reports and stats.json go (default: a temp dir)
#   ST_BASELINE       accepted known failures (default: schemathesis-baseline.json beside
#                     this script, if present; ST_BASELINE=none to see every failure)
#   ST_EXTRA_ARGS     extra schemathesis arguments, word-split
set -euo pipefail

url=${1:?usage: run_schemathesis.sh SERVER_URL}
url=${url%/}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

find_up() { # find_up REL: the first REL in $here or one of its parents
  local d=$here
  while [ "$d" != / ]; do
    [ -e "$d/$1" ] && { echo "$d/$1"; return 0; }
    d=$(dirname "$d")
  done
  return 1
}

spec=${OPENAPI_SPEC:-$(find_up proto/openapi.yaml)} || { echo "OPENAPI_SPEC not set and proto/openapi.yaml not found" >&2; exit 2; }
export SCITT_ISSUER_KEY=${SCITT_ISSUER_KEY:-$(find_up keys/test-issuer-es256.pk8)} || { echo "SCITT_ISSUER_KEY not set" >&2; exit 2; }
abspath() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
spec=$(abspath "$spec")
SCITT_ISSUER_KEY=$(abspath "$SCITT_ISSUER_KEY")
report_dir=${ST_REPORT_DIR:-$(mktemp -d)}
mkdir -p "$report_dir"
report_dir=$(cd "$report_dir" && pwd)
# schemathesis and hypothesis write .schemathesis/ and .hypothesis/ into the
# working directory: keep them (and hook bytecode) out of the repository.
cd "$report_dir"
export PYTHONDONTWRITEBYTECODE=1

export SCHEMATHESIS_HOOKS="$here/schemathesis_hooks.py"
export SCITT_URL="$url"
export SCITT_STATS="$report_dir/stats.json"
rm -f "$SCITT_STATS"

baseline=${ST_BASELINE:-$here/schemathesis-baseline.json}
baseline_args=()
if [ "$baseline" != none ] && [ -f "$baseline" ]; then
  baseline_args=(--baseline "$baseline")
fi

start=$(date +%s)
set +e
# shellcheck disable=SC2086
${SCHEMATHESIS:-schemathesis} run "$spec" \
  --url "$url" \
  --phases examples,coverage,fuzzing,stateful \
  --checks all \
  --max-examples "${ST_MAX_EXAMPLES:-50}" \
  --seed "${ST_SEED:-20261130}" \
  --workers "${ST_WORKERS:-4}" \
  --generation-database none \
  --request-timeout 35 \
  --suppress-health-check too_slow,filter_too_much \
  --report junit,har \
  --report-dir "$report_dir" \
  --no-color \
  ${baseline_args[@]+"${baseline_args[@]}"} \
  ${ST_EXTRA_ARGS:-}
rc=$?
set -e
secs=$(( $(date +%s) - start ))

python=${SCHEMATHESIS_PYTHON:-python3}
"$python" - "$SCITT_STATS" "$rc" "$secs" "$report_dir" <<'EOF'
import json, sys
path, rc, secs, report_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
try:
    ops = json.load(open(path))["operations"]
except (OSError, ValueError, KeyError):
    ops = {}
def fmt(statuses):
    return "/".join(f"{k}x{v}" for k, v in sorted(statuses.items())) or "none"
kinds = " ".join(f"{op.split('[')[1][:-1]}:{fmt(s)}" for op, s in sorted(ops.items()) if op.startswith("POST /entries ["))
api = {op: s for op, s in ops.items() if op.startswith(("GET ", "POST ")) and "[" not in op}
total = sum(sum(s.values()) for s in api.values())
custom = ops.get("scitt_statement_outcome (custom check)", {}).get("ran", 0)
cbor = ops.get("scitt_cbor_responses (custom check)", {}).get("ran", 0)
probes = sum(ops.get("unsupported-method probes (any path)", {}).values())
print(f"schemathesis: {'PASS' if rc == 0 else 'FAIL'} (exit {rc}) in {secs}s: {len(api)} operations, "
      f"{total} requests (+{probes} unsupported-method probes); POST /entries {fmt(ops.get('POST /entries', {}))} "
      f"({kinds}); custom checks ran {custom}x (statements), {cbor}x (CBOR bodies); reports in {report_dir}")
EOF
exit "$rc"
