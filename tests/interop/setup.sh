#!/usr/bin/env bash
# Installs the third-party tools the tests drive, pinned: the SCITT tools of
# tests/third_party.rs and moto (an S3 API server, tests/object_storage.rs),
# into $VCON_SCITT_INTEROP_DIR (default ~/.cache/vcon-scitt/interop), never
# into this repository: scitt-cose and schemathesis (PyPI, in a venv) and
# @transmute/cose (npm). Idempotent: a stamp file records what is installed.
# On a fresh Debian 12 it first installs strace, etcd (etcd-server,
# etcd-client), python3-venv and npm with apt.
set -euo pipefail
# The fault tests inject syscall errors with strace (tests/syscall_faults.rs);
# the fencing tests run etcd and etcdctl (tests/fencing.rs).
if ! command -v strace >/dev/null || ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends strace etcd-server etcd-client
fi
dir="${VCON_SCITT_INTEROP_DIR:-$HOME/.cache/vcon-scitt/interop}"
want="scitt-cose==0.5.0 schemathesis==4.32.5 cbor2==6.3.0 cryptography==50.0.2 moto[server]==5.2.1 @transmute/cose@0.2.11"
if [ -f "$dir/stamp" ] && [ "$(cat "$dir/stamp")" = "$want" ]; then
  echo "third-party tools present in $dir"
  exit 0
fi
if ! python3 -c 'import venv, ensurepip' 2>/dev/null || ! command -v npm >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends python3-venv npm
fi
rm -rf "$dir"
mkdir -p "$dir/node"
python3 -m venv "$dir/venv"
"$dir/venv/bin/pip" install -q --disable-pip-version-check \
  scitt-cose==0.5.0 schemathesis==4.32.5 cbor2==6.3.0 cryptography==50.0.2 'moto[server]==5.2.1'
(cd "$dir/node" && echo '{"name":"vcon-scitt-interop","private":true}' >package.json \
  && npm install --silent --no-audit --no-fund @transmute/cose@0.2.11)
echo "$want" >"$dir/stamp"
echo "third-party tools installed in $dir"
