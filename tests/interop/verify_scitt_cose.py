#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Drive the PyPI package `scitt-cose` to verify one vds-1 COSE Receipt.

Usage:
  verify_scitt_cose.py --statement S.cose --receipt R.cose --key KEY
                       [--issuer-key IKEY] [--leaf-rule statement-sha256|entry]

KEY / IKEY: a JWK (JSON object), a JWK Set ({"keys": [...]}, e.g. our GET /jwks)
or a PEM SubjectPublicKeyInfo. scitt-cose itself only takes PEM
(`log_public_key_pem` / `public_key_pem`); a JWK is converted to PEM here with
`cryptography` (a dependency of scitt-cose). From a JWK Set the key is chosen by
the receipt's kid (kid bytes == base64url-decoded JWK "kid"); a set with a single
key is used whatever the kids say. scitt-cose itself never looks at kids.

Leaf rules (what is handed to scitt_cose.verify_receipt as `leaf_entry_hex`;
scitt-cose then hashes it as SHA-256(0x00 || entry)):
  statement-sha256 (default; scitt-cose's documented convention, the WG vectors):
      leaf_entry = SHA-256(statement file bytes)
  entry: leaf_entry = the statement file bytes as given. For our log, pass the
      entry bytes tag18([P, {}, M, S]) that GET /signed-statements/{id} returns.

All verification is scitt-cose's own: receipt.verify_receipt (Merkle fold + log
signature) and statement.parse_signed_statement (issuer signature, only with
--issuer-key). Nothing here re-implements the Merkle or signature checks.

Exit: 0 OK; 1 verification failed; 2 bad input (files, keys, arguments).
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys

import cbor2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

import scitt_cose
from scitt_cose import parse_signed_statement, verify_receipt


class InputError(Exception):
    pass


def b64u_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64u_encode(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def protected_kid(cose_bytes: bytes):
    """kid (label 4) from a COSE_Sign1's protected header, for key selection only."""
    try:
        msg = cbor2.loads(cose_bytes)
        prot = cbor2.loads(msg.value[0]) if msg.value[0] else {}
        kid = prot.get(4)
    except Exception:  # noqa: BLE001 - malformed input is scitt-cose's to report
        return None
    if isinstance(kid, str):
        kid = kid.encode()
    return bytes(kid) if isinstance(kid, (bytes, bytearray)) else None


def jwk_to_pem(jwk: dict) -> bytes:
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "EC" and crv in ("P-256", "P-384"):
        curve = ec.SECP256R1() if crv == "P-256" else ec.SECP384R1()
        x = int.from_bytes(b64u_decode(jwk["x"]), "big")
        y = int.from_bytes(b64u_decode(jwk["y"]), "big")
        key = ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
    elif kty == "OKP" and crv == "Ed25519":
        key = ed25519.Ed25519PublicKey.from_public_bytes(b64u_decode(jwk["x"]))
    else:
        raise InputError(f"unsupported JWK kty={kty!r} crv={crv!r}")
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def load_key(path: str, kid: bytes | None, what: str):
    """Return (pem_bytes, note) for the key file at `path`."""
    try:
        raw = open(path, "rb").read()
    except OSError as exc:
        raise InputError(f"{what}: {exc}") from exc
    text = raw.lstrip()
    if not text.startswith(b"{"):
        if b"-----BEGIN" not in raw:
            raise InputError(f"{what}: neither JWK/JWK Set JSON nor PEM")
        return raw, "PEM (no kid to match)"
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise InputError(f"{what}: bad JSON: {exc}") from exc
    keys = doc["keys"] if isinstance(doc, dict) and "keys" in doc else [doc]
    if not keys:
        raise InputError(f"{what}: empty JWK Set")
    want = b64u_encode(kid) if kid is not None else None
    chosen, note = None, None
    if want is not None:
        for k in keys:
            if k.get("kid") == want:
                chosen, note = k, f"JWK kid {want} == base64url(kid bytes in header)"
                break
            if isinstance(k.get("kid"), str) and k["kid"].encode() == kid:
                chosen, note = k, f"JWK kid {k['kid']!r} == kid bytes as UTF-8 text"
                break
    if chosen is None:
        if len(keys) != 1:
            raise InputError(
                f"{what}: no JWK in the set has kid {want!r} (header kid "
                f"{kid.hex() if kid else None}); {len(keys)} keys, cannot choose")
        chosen = keys[0]
        note = (f"single JWK used; header kid {want!r} vs JWK kid {chosen.get('kid')!r}: "
                + ("NO MATCH" if want is not None else "header names no kid"))
    return jwk_to_pem(chosen), note


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--statement", required=True)
    ap.add_argument("--receipt", required=True)
    ap.add_argument("--key", required=True, help="service (log) public key: JWK, JWK Set or PEM")
    ap.add_argument("--issuer-key", help="optional issuer public key: JWK, JWK Set or PEM")
    ap.add_argument("--leaf-rule", choices=["statement-sha256", "entry"], default="statement-sha256")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    try:
        statement = open(args.statement, "rb").read()
        receipt = open(args.receipt, "rb").read()
    except OSError as exc:
        print(f"FAIL (input): {exc}", file=sys.stderr)
        return 2
    try:
        log_pem, key_note = load_key(args.key, protected_kid(receipt), "--key")
        issuer_pem = issuer_note = None
        if args.issuer_key:
            issuer_pem, issuer_note = load_key(args.issuer_key, protected_kid(statement), "--issuer-key")
    except (InputError, KeyError, ValueError) as exc:
        print(f"FAIL (input): {exc}", file=sys.stderr)
        return 2

    if args.leaf_rule == "statement-sha256":
        leaf_entry_hex = hashlib.sha256(statement).hexdigest()
    else:
        leaf_entry_hex = statement.hex()

    # scitt_cose/receipt.py: verify_receipt (never raises; ReceiptResult.ok / .errors)
    res = verify_receipt(receipt, leaf_entry_hex=leaf_entry_hex, log_public_key_pem=log_pem)
    report = {
        "library": f"scitt-cose {scitt_cose.__version__}",
        "leaf_rule": args.leaf_rule,
        "key": key_note,
        "receipt_ok": res.ok,
        "root": res.root,
        "tree_size": res.tree_size,
        "leaf_index": res.leaf_index,
        "failed_at": res.failed_at,
        "errors": list(res.errors),
        "protected_header_ext": {str(k): (v.hex() if isinstance(v, bytes) else v)
                                 for k, v in res.protected_header_ext.items()},
    }
    ok = res.ok
    if issuer_pem is not None:
        # scitt_cose/statement.py: parse_signed_statement (never raises on input)
        parsed = parse_signed_statement(statement, public_key_pem=issuer_pem)
        report["issuer_key"] = issuer_note
        report["statement_signature_verified"] = parsed.get("signature_verified")
        report["statement_issuer"] = parsed.get("issuer")
        ok = ok and parsed.get("signature_verified") is True

    if args.json:
        print(json.dumps(report, indent=2, default=str))
    if ok:
        if not args.json:
            print(f"OK scitt-cose {scitt_cose.__version__} leaf-rule={args.leaf_rule} "
                  f"tree_size={res.tree_size} leaf_index={res.leaf_index} root={res.root}"
                  + (" issuer-signature=verified" if issuer_pem is not None else ""))
        return 0
    if not args.json:
        reasons = list(res.errors) if not res.ok else []
        if issuer_pem is not None and report.get("statement_signature_verified") is not True:
            reasons.append("statement (issuer) signature did not verify")
        print(f"FAIL leaf-rule={args.leaf_rule}: " + "; ".join(reasons) + f" [key: {key_note}]")
    return 1


if __name__ == "__main__":
    sys.exit(main())
