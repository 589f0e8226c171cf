"""Schemathesis 4.x hooks for vcon-scitt (load with SCHEMATHESIS_HOOKS=<this file>).

What they add to a plain `schemathesis run proto/openapi.yaml`:

* A serializer for `application/cose` and `application/scitt-statement+cose`, so
  POST /entries runs at all. The contract types the body as `binary`, so any
  bytes are schema-valid and schemathesis generates only positive bodies; the
  serializer replaces each one, alternately, with
    - a real COSE_Sign1 Signed Statement signed with the ES256 test issuer key
      (keys/test-issuer-es256.pk8): generic JSON and vCon lifecycle statements
      (-> 201), re-submissions of a registered statement and of its ECDSA
      (r, n - s) twin (-> 201 naming the registered entry);
    - a deliberately broken one (BROKEN below: not CBOR, untagged, wrong tag,
      bad signature, unknown issuer / kid, bad alg, no kid, no CWT claims,
      unknown crit label, detached payload, trailing bytes, policy rejections,
      over 64 KiB) -> 400 / 413. `filter_failure` drops positive_data_acceptance
      for exactly these (sent as broken, answered as expected); the custom check
      `scitt_statement_outcome` holds every POST /entries to its expected answer
      instead (SCITT_HOOKS_SELFTEST=1 makes it expect 418, to see it bite).
  A body a future contract lets schemathesis negate is always sent broken.
  The case's own body stays as generated (schemathesis marks a raw-bytes body
  "invalid" when a hook sets it), so failure reports show the generated value;
  the HAR report (run_schemathesis.sh writes one) has the bytes sent.
* Real values: before the first case it registers a few statements (generic
  and lifecycle, two vCons, one derived from the other) on the server under
  test, reads /policy, /.well-known/scitt-keys and /checkpoint, and `map_case`
  puts real entry ids, service kids (base64url, hex, HEX), vCon uuids,
  consistency sizes, the issuer (and tile coordinates for the templated tile
  operations proposed in the notes) into every other case whose parameters are
  valid; the rest keep the generated values (404 / 400 paths).
* The custom check `scitt_cbor_responses`: every CBOR/COSE body the server
  sends is exactly one well-formed CBOR item (COSE_Sign1 for the COSE types, a
  titled RFC 9290 map for problem details).
* `after_call` tallies (operation, status) and writes them as JSON to
  $SCITT_STATS at exit (run_schemathesis.sh prints the summary).

Environment: SCITT_URL (server base URL; default: the run's --url),
SCITT_ISSUER_KEY (PKCS#8 DER P-256, default keys/test-issuer-es256.pk8 found
upward from this file or the cwd), SCITT_ISSUER_KEYS (its COSE_KeySet, default
the .keys.cbor beside it), SCITT_ISSUER (default https://conserver.test.example),
SCITT_STATS (optional JSON output). The server must list that issuer with that
key (vcon-scitt.toml does).
Needs cbor2 and cryptography next to schemathesis.
"""

from __future__ import annotations

import atexit
import base64
import collections
import datetime
import hashlib
import io
import itertools
import json
import os
import pathlib
import re
import threading
import time
import uuid as uuidlib

import cbor2
import requests
import schemathesis
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from schemathesis.core.parameters import ParameterLocation

COSE_TYPES = ("application/cose", "application/scitt-statement+cose")
ISSUER = os.environ.get("SCITT_ISSUER", "https://conserver.test.example")
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


# --------------------------------------------------------------------------
# Issuer key and statement building
# --------------------------------------------------------------------------


def _find_upward(rel: str) -> pathlib.Path | None:
    for start in (pathlib.Path(__file__).resolve().parent, pathlib.Path.cwd().resolve()):
        for d in (start, *start.parents):
            if (d / rel).is_file():
                return d / rel
    return None


def _load_issuer():
    key_path = os.environ.get("SCITT_ISSUER_KEY") or _find_upward("keys/test-issuer-es256.pk8")
    if not key_path:
        raise RuntimeError("set SCITT_ISSUER_KEY to the test issuer's PKCS#8 key (keys/test-issuer-es256.pk8)")
    key_path = pathlib.Path(key_path)
    keys_path = pathlib.Path(
        os.environ.get("SCITT_ISSUER_KEYS") or key_path.with_name(key_path.name.replace(".pk8", ".keys.cbor"))
    )
    key = serialization.load_der_private_key(key_path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1", "need a P-256 key"
    nums = key.public_key().public_numbers()
    x, y = nums.x.to_bytes(32, "big"), nums.y.to_bytes(32, "big")
    for cose_key in cbor2.loads(keys_path.read_bytes()):
        if cose_key.get(-2) == x and cose_key.get(-3) == y:
            return key, cose_key[2]  # kid (label 2) as the COSE_KeySet names it
    raise RuntimeError(f"{keys_path} has no COSE_Key matching {key_path}")


ISSUER_KEY, ISSUER_KID = _load_issuer()


def _sign(protected: bytes, payload: bytes) -> bytes:
    tbs = cbor2.dumps(["Signature1", protected, b"", payload])
    r, s = decode_dss_signature(ISSUER_KEY.sign(tbs, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def statement(
    payload: bytes | None = b"{}",
    *,
    iss: str = ISSUER,
    sub: str = "schemathesis",
    content_type: str | None = "application/json",
    alg: int = -7,
    kid: bytes | None = None,
    claims: bool = True,
    extra: dict | None = None,
    tag: int | None = 18,
    signature=None,
    iat_offset: int = 0,
) -> bytes:
    """A COSE_Sign1 Signed Statement; the keyword arguments break it on purpose."""
    header: dict = {1: alg}
    if content_type is not None:
        header[3] = content_type
    header[4] = ISSUER_KID if kid is None else kid
    if not header[4]:
        del header[4]
    if claims:
        header[15] = {1: iss, 2: sub, 6: int(time.time()) + iat_offset}
    header.update(extra or {})
    protected = cbor2.dumps(header, canonical=True)
    sig = _sign(protected, payload if payload is not None else b"")
    if signature is not None:
        sig = signature(sig)
    item = [protected, {}, payload, sig]
    return cbor2.dumps(cbor2.CBORTag(tag, item) if tag is not None else item)


def ecdsa_twin(stmt: bytes) -> bytes:
    """The same statement with signature (r, n - s): verifies just as well."""
    tagged = cbor2.loads(stmt)
    protected, unprotected, payload, sig = tagged.value
    s = int.from_bytes(sig[32:], "big")
    return cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, payload, sig[:32] + (P256_N - s).to_bytes(32, "big")]))


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def lifecycle(vcon_uuid: str, event: str, *, sub_uuid: str | None = None, iat_offset: int = 0, **fields) -> bytes:
    body = {
        "lifecycle_version": "0.1",
        "event": event,
        "vcon_uuid": vcon_uuid,
        "vcon_hash": "sha256-" + _b64url(hashlib.sha256(f"{vcon_uuid}/{event}/{time.time_ns()}".encode()).digest()),
        "occurred_at": _now(),
        **fields,
    }
    return statement(
        json.dumps(body, separators=(",", ":")).encode(),
        sub=f"vcon://{sub_uuid or vcon_uuid}",
        content_type="application/vcon-lifecycle+json",
        iat_offset=iat_offset,
    )


_COUNTER = itertools.count()


def generic(tag: str = "") -> bytes:
    n = next(_COUNTER)
    payload = json.dumps({"schemathesis": n, "t": time.time_ns(), "tag": tag[:40]}).encode()
    return statement(payload, sub=f"urn:schemathesis:{n}")


# Each returns bytes the server must refuse (400, or 413 for the last).
BROKEN = [
    ("not CBOR", lambda: b"\xff not cbor"),
    ("empty body", lambda: b""),
    ("CBOR but not COSE (int)", lambda: cbor2.dumps(0)),
    ("CBOR map", lambda: cbor2.dumps({"a": 1})),
    ("untagged COSE_Sign1", lambda: statement(b"{}", tag=None)),
    ("wrong tag 98", lambda: statement(b"{}", tag=98)),
    ("signature bit flipped", lambda: statement(b"{}", signature=lambda s: s[:-1] + bytes([s[-1] ^ 1]))),
    ("signature truncated", lambda: statement(b"{}", signature=lambda s: s[:40])),
    ("unregistered issuer", lambda: statement(b"{}", iss="https://unknown.test.example")),
    ("unknown kid", lambda: statement(b"{}", kid=b"\x00" * 32)),
    ("no kid", lambda: statement(b"{}", kid=b"")),
    ("unsupported alg RS256", lambda: statement(b"{}", alg=-257)),
    ("alg ES384 with a P-256 key", lambda: statement(b"{}", alg=-35)),
    ("no CWT claims", lambda: statement(b"{}", claims=False)),
    ("empty iss", lambda: statement(b"{}", iss="")),
    ("unknown critical label", lambda: statement(b"{}", extra={2: [999], 999: 1})),
    ("detached payload", lambda: statement(None)),
    ("trailing bytes", lambda: statement(b"{}") + b"\x00"),
    ("protected header not a map", lambda: cbor2.dumps(cbor2.CBORTag(18, [cbor2.dumps(5), {}, b"x", b"\0" * 64]))),
    ("lifecycle: iat 1 h ahead", lambda: lifecycle(str(uuidlib.uuid4()), "vcon_created", iat_offset=3600)),
    ("lifecycle: vcon_uuid differs from sub", lambda: lifecycle(str(uuidlib.uuid4()), "vcon_created", sub_uuid=str(uuidlib.uuid4()))),
    ("lifecycle: unknown event", lambda: lifecycle(str(uuidlib.uuid4()), "vcon_teleported")),
    ("lifecycle: consent event without purposes", lambda: lifecycle(str(uuidlib.uuid4()), "vcon_consent_accepted")),
    ("PII key in payload", lambda: statement(b'{"tel":"+15551234567"}')),
    ("over 64 KiB", lambda: statement(b'{"x":"' + b"a" * 70000 + b'"}')),
]


# --------------------------------------------------------------------------
# Real values from the server under test
# --------------------------------------------------------------------------

STATS: collections.Counter = collections.Counter()
_STATS_LOCK = threading.Lock()
REAL: dict = {}
_SEED_LOCK = threading.Lock()


def _register(session: requests.Session, base: str, body: bytes) -> tuple[bytes, str]:
    r = session.post(
        base + "/entries", data=body, headers={"Content-Type": "application/cose", "Prefer": "wait=10"}, timeout=30
    )
    if r.status_code not in (201, 202):
        raise RuntimeError(f"seeding: POST /entries answered {r.status_code} {r.content[:300]!r}; "
                           f"does the server list issuer {ISSUER} with this key?")
    return body, r.headers["Location"].rsplit("/", 1)[-1]


def _seed(base: str) -> None:
    with _SEED_LOCK:
        if REAL:
            return
        s = requests.Session()
        a, b = str(uuidlib.uuid4()), str(uuidlib.uuid4())
        seeded = [
            _register(s, base, generic("seed-1")),
            _register(s, base, generic("seed-2")),
            _register(s, base, lifecycle(a, "vcon_created")),
            _register(s, base, lifecycle(a, "vcon_consent_accepted", consent={"purposes": ["analytics", "training"]})),
            _register(s, base, lifecycle(a, "vcon_consent_revoked", consent={"purposes": ["training"]})),
            _register(s, base, lifecycle(b, "vcon_created")),
            _register(s, base, lifecycle(b, "vcon_redacted", derived_from={"relation": "redacted", "uuid": a})),
        ]
        entry_ids = [eid for _, eid in seeded]
        # Wait until every seeded entry resolves (a 202 above would still be sequencing).
        for eid in entry_ids:
            for _ in range(100):
                if s.get(f"{base}/entries/{eid}", timeout=10).status_code == 200:
                    break
                time.sleep(0.1)
        policy = s.get(base + "/policy", timeout=10).json()
        if policy.get("entry_id"):
            entry_ids.append(policy["entry_id"])
        kids = []
        for key in cbor2.loads(s.get(base + "/.well-known/scitt-keys", timeout=10).content):
            if isinstance(key.get(2), bytes):
                kids += [_b64url(key[2]), key[2].hex(), key[2].hex().upper()]
        size = cbor2.loads(s.get(base + "/checkpoint", timeout=10).content)["tree_size"]
        REAL.update(
            statements=[body for body, _ in seeded],
            entry_ids=entry_ids,
            kids=kids,
            uuids=[a, b, b.upper()],
            tree_size=size,
            widths=[str(w) for w in sorted({1, max(1, min(size, 255) // 2), min(size, 255)})],
            indexes=["000"],
        )


def _base_url(case) -> str:
    env = os.environ.get("SCITT_URL")
    if env:
        return env.rstrip("/")
    return case.operation.schema.get_base_url().rstrip("/")


# --------------------------------------------------------------------------
# The serializer: bodies for POST /entries
# --------------------------------------------------------------------------

_BODIES: dict[str, tuple] = {}  # case.id -> (kind, label, bytes, expected): one body per case, however often serialized
_BODY_LOCK = threading.Lock()
_POSITIVE_CYCLE = itertools.count()
_BROKEN_CYCLE = itertools.count()
SELFTEST = os.environ.get("SCITT_HOOKS_SELFTEST") == "1"
ENTRY_RE = re.compile(r"^/entries/[0-9a-f]{64}$")


def _body_is_negative(case) -> bool:
    meta = case.meta
    return meta is not None and meta.is_negative_at(ParameterLocation.BODY)


def _generated_bytes(value) -> bytes:
    if isinstance(value, bytes):
        return value
    data = getattr(value, "data", None)  # schemathesis Binary
    if isinstance(data, bytes):
        return data
    return repr(value).encode()


def _broken(value) -> tuple:
    i = next(_BROKEN_CYCLE) % (len(BROKEN) + 1)
    if i == len(BROKEN):
        raw = _generated_bytes(value)  # the generated value itself: never a COSE_Sign1 (tag 18 = 0xd2)
        return "broken", "generated bytes", (b"\x00" + raw if raw[:1] == b"\xd2" else raw), {400}
    label, make = BROKEN[i]
    return "broken", label, make(), {413} if label == "over 64 KiB" else {400}


def _make_body(case, value) -> tuple:
    """(kind, label, bytes, expected statuses or entry id)."""
    _seed(_base_url(case))
    if _body_is_negative(case):
        # Never happens with `type: string, format: binary` (any bytes are schema-valid, so
        # schemathesis generates no negative bodies); kept for a tighter contract.
        return _broken(value)
    # Any bytes are schema-valid, so every generated body is "positive": half of them are
    # deliberately broken here (filter_failure below answers for positive_data_acceptance on
    # those, and scitt_statement_outcome checks the 400s instead).
    n = next(_POSITIVE_CYCLE)
    if n % 2:
        return _broken(value)
    k = (n // 2) % 5
    if k == 2:  # the same statement again: 201, the registered entry
        i = (n // 10) % len(REAL["statements"])
        return "duplicate", "re-submitted statement", REAL["statements"][i], REAL["entry_ids"][i]
    if k == 3:  # its ECDSA (r, n - s) twin: 201, the registered entry
        i = (n // 10) % len(REAL["statements"])
        return "duplicate", "ECDSA twin", ecdsa_twin(REAL["statements"][i]), REAL["entry_ids"][i]
    if k == 4:
        body = lifecycle(REAL["uuids"][(n // 10) % 2], "vcon_accessed", access={"by": "schemathesis"})
        return "valid", "lifecycle vcon_accessed", body, {201, 202}
    return "valid", "generic JSON statement", generic(_generated_bytes(value)[:40].hex()), {201, 202}


def _body_for(case, value) -> tuple:
    with _BODY_LOCK:
        made = _BODIES.get(case.id)
    if made is None:
        made = _make_body(case, value)
        with _BODY_LOCK:
            _BODIES[case.id] = made
    return made


@schemathesis.serializer(*COSE_TYPES)
def cose_serializer(ctx, value):
    return _body_for(ctx.case, value)[2]


def _sent_cose(case, response) -> tuple | None:
    """What the serializer sent for this POST /entries, or None (not ours, or not as COSE)."""
    if case.operation.path != "/entries" or case.method.upper() != "POST":
        return None
    sent_type = (response.request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if sent_type not in COSE_TYPES:
        return None  # schemathesis' Content-Type probes: 415 is theirs to judge
    with _BODY_LOCK:
        return _BODIES.get(case.id)


@schemathesis.check
def scitt_statement_outcome(ctx, response, case):
    """POST /entries: valid statements registered (duplicates at their entry), broken ones refused."""
    made = _sent_cose(case, response)
    if made is None:
        return None
    kind, label, _, expected = made
    if SELFTEST and kind == "broken":
        expected = {418}  # SCITT_HOOKS_SELFTEST=1: every broken statement must now fail this check
    with _STATS_LOCK:
        STATS[("scitt_statement_outcome (custom check)", "ran")] += 1
    status = response.status_code
    if status in (429, 503):
        return None  # rate limit / back-pressure: says nothing about the statement
    if kind == "broken":
        assert status in expected, f"broken statement ({label}) answered {status}, expected {sorted(expected)}"
        ct = response.headers.get("content-type", [""])
        ct = ct[0] if isinstance(ct, list) else ct
        assert ct.startswith("application/concise-problem-details+cbor"), f"{label}: {status} with {ct!r}"
        problem = cbor2.loads(response.content)
        assert isinstance(problem, dict) and isinstance(problem.get(-1), str), f"{label}: problem details {problem!r}"
        return None
    assert status in (201, 202), f"{label} answered {status}: {response.content[:300]!r}"
    location = response.headers.get("location", [""])
    location = location[0] if isinstance(location, list) else location
    assert ENTRY_RE.match(location or ""), f"{label}: Location {location!r}"
    if kind == "duplicate":
        assert location == f"/entries/{expected}", f"{label}: Location {location}, registered /entries/{expected}"
    if status == 201:
        receipt = cbor2.loads(response.content)
        assert isinstance(receipt, cbor2.CBORTag) and receipt.tag == 18, f"{label}: 201 body is not a COSE_Sign1"
        assert receipt.value[2] is None, f"{label}: receipt payload is not detached"
    return None


CBOR_TYPES = ("application/cbor", "application/cose", "application/scitt-receipt+cose",
              "application/concise-problem-details+cbor")


@schemathesis.check
def scitt_cbor_responses(ctx, response, case):
    """Every CBOR/COSE response body is one well-formed CBOR item: COSE_Sign1 (tag 18) for the
    COSE types, an RFC 9290 map with a text title (-1) for problem details. (The contract types
    these bodies as `binary`, so schemathesis itself cannot look inside them.)"""
    ct = response.headers.get("content-type", [""])
    ct = (ct[0] if isinstance(ct, list) else ct).split(";")[0].strip().lower()
    if ct not in CBOR_TYPES or case.method.upper() == "HEAD":
        return None
    with _STATS_LOCK:
        STATS[("scitt_cbor_responses (custom check)", "ran")] += 1
    body = response.content
    assert body, f"{ct} response with an empty body"
    stream = io.BytesIO(body)
    try:
        item = cbor2.CBORDecoder(stream).decode()
    except Exception as exc:  # noqa: BLE001 - any decoder error is the finding
        raise AssertionError(f"{ct} body is not well-formed CBOR: {exc}") from None
    assert stream.tell() == len(body), f"{ct} body has {len(body) - stream.tell()} bytes after its CBOR item"
    if ct.endswith("+cbor"):
        assert isinstance(item, dict) and isinstance(item.get(-1), str), f"problem details without a title: {item!r}"
    elif ct != "application/cbor":
        assert isinstance(item, cbor2.CBORTag) and item.tag == 18 and len(item.value) == 4, f"{ct} body is not a COSE_Sign1"
    return None


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Drop positive_data_acceptance's 400/413 for bodies this file broke on purpose (see above)."""
    if type(failure).__name__ != "RejectedPositiveData":
        return True
    made = _sent_cose(case, response)
    return not (made is not None and made[0] == "broken" and response.status_code in made[3])


# --------------------------------------------------------------------------
# Real path / query values for every other positive case
# --------------------------------------------------------------------------

_TURNS: dict = collections.defaultdict(itertools.count)
_TURN_LOCK = threading.Lock()


def _my_turn(key) -> int | None:
    """None on odd turns (keep the generated value), else an index."""
    with _TURN_LOCK:
        n = next(_TURNS[key])
    return None if n % 2 else n // 2


def _positive_at(case, location) -> bool:
    meta = case.meta
    return meta is None or not meta.is_negative_at(location)


@schemathesis.hook
def map_case(context, case):
    path, method = case.operation.path, case.method.upper()
    if method != "GET":
        return case
    if "{" in path and _positive_at(case, ParameterLocation.PATH):
        pick = None
        if "{entry_id}" in path:
            name, pool = "entry_id", "entry_ids"
        elif "{kid}" in path:
            name, pool = "kid", "kids"
        elif "{uuid}" in path:
            name, pool = "uuid", "uuids"
        elif "/tile/" in path and "{path}" not in path:
            # The templated tile and entry-bundle operations proposed for the contract. /tile/{path}
            # is left alone: its value has slashes, which go out percent-encoded and can only get a 400.
            name, pool = ("width", "widths") if "{width}" in path else ("index", "indexes")
        else:
            name = None
        if name is not None:
            n = _my_turn((path, "path"))
            if n is not None:
                _seed(_base_url(case))
                values = REAL[pool]
                pick = values[n % len(values)]
                params = dict(case.path_parameters or {})
                params[name] = pick
                if "/tile/" in path:
                    params["index"] = "000"  # the first tile or bundle: exists once the log has entries
                if "{level}" in path:
                    params["level"] = "0"
                case.path_parameters = params
    if path == "/consistency" and _positive_at(case, ParameterLocation.QUERY):
        n = _my_turn((path, "query"))
        if n is not None:
            _seed(_base_url(case))
            size = REAL["tree_size"]
            query = dict(case.query or {})
            query["from"] = 1 + n % size
            if n % 3:
                query["to"] = min(size, query["from"] + n % 5)
            else:
                query.pop("to", None)
            case.query = query
    if path == "/events" and _positive_at(case, ParameterLocation.QUERY):
        n = _my_turn((path, "query"))
        if n is not None and n % 2 == 0:
            query = dict(case.query or {})
            query["iss"] = ISSUER
            case.query = query
    return case


# --------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------

@schemathesis.hook
def after_call(context, case, response):
    with _STATS_LOCK:
        label = case.operation.label
        if case.method.upper() != case.operation.method.upper():
            label = "unsupported-method probes (any path)"
        made = _sent_cose(case, response)
        if made is not None:
            STATS[(f"POST /entries [{made[0]}]", response.status_code)] += 1
        STATS[(label, response.status_code)] += 1


@atexit.register
def _write_stats() -> None:
    out = os.environ.get("SCITT_STATS")
    if not out:
        return
    per_op: dict = {}
    for (op, status), n in sorted(STATS.items(), key=str):
        per_op.setdefault(op, {})[str(status)] = n
    pathlib.Path(out).write_text(json.dumps({"operations": per_op, "seeded": {k: v for k, v in REAL.items() if k != "statements"}}, indent=1))
