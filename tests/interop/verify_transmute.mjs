#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Drive the npm package @transmute/cose to verify one vds-1 COSE Receipt.
//
// Usage:
//   node verify_transmute.mjs --statement S.cose --receipt R.cose --key KEY
//        [--issuer-key IKEY] [--payload FILE] [--leaf-rule entry|statement-sha256]
//        [--api auto|high|low] [--json]
//
// KEY / IKEY: a JWK (JSON object), a JWK Set ({"keys": [...]}, e.g. our GET /jwks)
// or a PEM SubjectPublicKeyInfo (converted to a JWK with node:crypto). The library
// only takes JWKs and needs "alg" in them (ES256/ES384/ES512: it verifies ECDSA
// only, via WebCrypto); a JWK without "alg" gets the alg of the message it is used
// for. From a JWK Set the key is chosen by kid (kid bytes in the protected header
// == base64url-decoded JWK "kid"); a set with a single key is used whatever the
// kids say. The library itself never matches kids: it calls our resolve().
//
// Leaf rules:
//   entry (default; @transmute/cose's own convention): the entry is the library's
//     cose.receipt.remove(statement) = tag18([P, {}, M, S]) (unprotected emptied,
//     canonically re-encoded), leaf = cose.receipt.leaf(entry) = SHA-256(0x00||entry).
//   statement-sha256 (WG vectors): entry = SHA-256(statement bytes), leaf as above.
//
// APIs (all the library's own code; nothing re-implemented here):
//   high: cose.receipt.verifier({resolve}).verify({coseSign1: transparent, payload})
//         (src/cose/receipt/verifier.ts) - checks the issuer signature, then every
//         receipt in 394 under the hard-coded entry rule. Needs --issuer-key; the
//         receipt is attached with cose.receipt.add(statement, receipt).
//   low:  cose.receipt.inclusion.verify({entry: leaf, receipt, verifier:
//         cose.detached.verifier({resolver})}) (src/cose/receipt/inclusion/verify.ts),
//         plus, with --issuer-key, cose.attached.verifier for the statement.
//   auto (default): high when --issuer-key is given and the rule is entry, else low.
//
// Exit: 0 OK; 1 verification failed; 2 bad input (files, keys, arguments);
//       3 unsupported by the library (EdDSA keys).

import { readFileSync } from 'node:fs'
import { createHash, createPublicKey } from 'node:crypto'
import { createRequire } from 'node:module'

// The package is installed by tests/interop/setup.sh under
// $VCON_SCITT_INTEROP_DIR/node (never in this repository).
const require = createRequire(process.env.VCON_SCITT_INTEROP_DIR
  ? process.env.VCON_SCITT_INTEROP_DIR + '/node/package.json'
  : import.meta.url)
const cose = require('@transmute/cose')
const coseVersion = require('@transmute/cose/package.json').version

class InputError extends Error {}
class UnsupportedError extends Error {}

const ALG_NAMES = { '-7': 'ES256', '-35': 'ES384', '-36': 'ES512', '-8': 'EdDSA' }

function parseArgs(argv) {
  const a = { leafRule: 'entry', api: 'auto', json: false }
  const map = { '--statement': 'statement', '--receipt': 'receipt', '--key': 'key',
    '--issuer-key': 'issuerKey', '--payload': 'payload', '--leaf-rule': 'leafRule', '--api': 'api' }
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--json') { a.json = true; continue }
    const k = map[argv[i]]
    if (!k || i + 1 >= argv.length) throw new InputError(`bad argument ${argv[i]}`)
    a[k] = argv[++i]
  }
  for (const k of ['statement', 'receipt', 'key']) if (!a[k]) throw new InputError(`--${k} is required`)
  if (!['entry', 'statement-sha256'].includes(a.leafRule)) throw new InputError('--leaf-rule entry|statement-sha256')
  if (!['auto', 'high', 'low'].includes(a.api)) throw new InputError('--api auto|high|low')
  return a
}

const b64u = (b) => Buffer.from(b).toString('base64url')

// Protected header of a COSE_Sign1, read with the library's own CBOR decoder.
function protectedHeader(coseSign1) {
  const { tag, value } = cose.cbor.decodeFirstSync(Buffer.from(coseSign1))
  if (tag !== 18 || !Array.isArray(value)) throw new Error('not a tagged COSE_Sign1')
  return value[0] && value[0].length ? cose.cbor.decodeFirstSync(value[0]) : new Map()
}

function readFile(path, what) {
  try { return readFileSync(path) } catch (e) { throw new InputError(`${what}: ${e.message}`) }
}

// Returns { keys: [jwk...], pem: bool }
function loadKeyFile(path, what) {
  const raw = readFile(path, what)
  const text = raw.toString('utf8').trim()
  if (text.startsWith('{')) {
    let doc
    try { doc = JSON.parse(text) } catch (e) { throw new InputError(`${what}: bad JSON: ${e.message}`) }
    const keys = Array.isArray(doc.keys) ? doc.keys : [doc]
    if (!keys.length) throw new InputError(`${what}: empty JWK Set`)
    return { keys, pem: false }
  }
  if (!text.includes('-----BEGIN')) throw new InputError(`${what}: neither JWK/JWK Set JSON nor PEM`)
  try {
    return { keys: [createPublicKey(text).export({ format: 'jwk' })], pem: true }
  } catch (e) { throw new InputError(`${what}: ${e.message}`) }
}

// Pick the JWK for a message (by kid), and give it the message's alg if it has none.
function selectKey(set, coseSign1, what, notes) {
  const ph = protectedHeader(coseSign1)
  let kid = ph.get(4)
  if (typeof kid === 'string') kid = Buffer.from(kid, 'utf8')
  const want = kid ? b64u(kid) : null
  let jwk = null
  if (want) {
    jwk = set.keys.find((k) => k.kid === want) ||
      set.keys.find((k) => typeof k.kid === 'string' && Buffer.from(k.kid, 'utf8').equals(Buffer.from(kid)))
    if (jwk) notes.push(`${what}: JWK kid ${jwk.kid} matches header kid`)
  }
  if (!jwk) {
    if (set.keys.length !== 1) throw new InputError(`${what}: no JWK with kid ${want}; cannot choose among ${set.keys.length}`)
    jwk = set.keys[0]
    notes.push(`${what}: single ${set.pem ? 'PEM' : 'JWK'} key used; header kid ${want} vs JWK kid ${jwk.kid}: ` +
      (!want ? 'header names no kid' : !jwk.kid ? 'key has no kid (not checked)' : jwk.kid === want ? 'match' : 'NO MATCH'))
  }
  if (jwk.kty === 'OKP' || ph.get(1) === -8) {
    throw new UnsupportedError(`${what}: EdDSA/OKP keys are not supported by @transmute/cose ${coseVersion} (ECDSA ES256/ES384/ES512 only)`)
  }
  jwk = { ...jwk }
  delete jwk.use; delete jwk.key_ops
  if (!jwk.alg) {
    const name = ALG_NAMES[String(ph.get(1))]
    if (name) { jwk.alg = name; notes.push(`${what}: JWK had no alg, set to ${name} from the header`) }
  }
  return jwk
}

async function main() {
  let args
  try { args = parseArgs(process.argv.slice(2)) } catch (e) { console.error(`FAIL (input): ${e.message}`); return 2 }
  const notes = []
  let statement, receipt, serviceKeys, issuerKeys, payload
  try {
    statement = readFile(args.statement, '--statement')
    receipt = readFile(args.receipt, '--receipt')
    serviceKeys = loadKeyFile(args.key, '--key')
    if (args.issuerKey) issuerKeys = loadKeyFile(args.issuerKey, '--issuer-key')
    if (args.payload) payload = readFile(args.payload, '--payload')
  } catch (e) { console.error(`FAIL (input): ${e.message}`); return 2 }

  // resolve(coseSign1): the library asks us for the key of each message it checks.
  // A message whose protected header carries vds (395) is a receipt -> service key;
  // anything else is the statement -> issuer key.
  const resolve = async (coseSign1) => {
    const ph = protectedHeader(coseSign1)
    if (ph.has(395)) return selectKey(serviceKeys, coseSign1, 'receipt', notes)
    if (!issuerKeys) throw new Error('statement key requested but no --issuer-key given')
    return selectKey(issuerKeys, coseSign1, 'statement', notes)
  }

  const api = args.api === 'auto' ? (args.issuerKey && args.leafRule === 'entry' ? 'high' : 'low') : args.api
  const report = { library: `@transmute/cose ${coseVersion}`, api, leaf_rule: args.leafRule }
  try {
    if (api === 'high') {
      if (args.leafRule !== 'entry') throw new InputError('the high-level verifier hard-codes the entry rule')
      if (!issuerKeys) throw new InputError('the high-level verifier checks the statement: needs --issuer-key')
      if (!payload) {
        const { value } = cose.cbor.decodeFirstSync(statement)
        if (!value[2]) throw new InputError('detached statement: give --payload')
        payload = value[2]
      }
      // src/cose/receipt/add.ts + src/cose/receipt/verifier.ts
      const transparent = await cose.receipt.add(statement, receipt)
      const v = await cose.receipt.verifier({ resolve })
      const out = await v.verify({ coseSign1: transparent, payload })
      report.statement_signature = 'verified'
      report.roots = out.receipts.map((r) => Buffer.from(r).toString('hex'))
      if (out.receipts.length < 1) throw new Error('no receipt was checked')
    } else {
      // src/cose/receipt/remove.ts, leaf.ts, inclusion/verify.ts, detached/index.ts
      const entry = args.leafRule === 'entry'
        ? new Uint8Array(await cose.receipt.remove(statement))
        : new Uint8Array(createHash('sha256').update(statement).digest())
      const leaf = await cose.receipt.leaf(entry)
      report.leaf = Buffer.from(leaf).toString('hex')
      const verifier = cose.detached.verifier({ resolver: { resolve } })
      const root = await cose.receipt.inclusion.verify({ entry: leaf, receipt, verifier })
      report.roots = [Buffer.from(root).toString('hex')]
      if (issuerKeys) {
        const sv = cose.attached.verifier({ resolver: { resolve } })
        const { value } = cose.cbor.decodeFirstSync(statement)
        if (value[2] === null) {
          if (!payload) throw new InputError('detached statement: give --payload to check its signature')
          await cose.detached.verifier({ resolver: { resolve } }).verify({ coseSign1: statement, payload })
        } else {
          await sv.verify({ coseSign1: statement })
        }
        report.statement_signature = 'verified'
      }
    }
  } catch (e) {
    report.error = e.message
    report.notes = notes
    if (args.json) console.log(JSON.stringify(report, null, 2))
    else console.log(`FAIL @transmute/cose ${coseVersion} api=${api} leaf-rule=${args.leafRule}: ${e.message} [${notes.join('; ')}]`)
    return e instanceof InputError ? 2 : e instanceof UnsupportedError ? 3 : 1
  }
  report.notes = notes
  if (args.json) console.log(JSON.stringify(report, null, 2))
  else console.log(`OK @transmute/cose ${coseVersion} api=${api} leaf-rule=${args.leafRule} root=${report.roots.join(',')}` +
    (report.statement_signature ? ' issuer-signature=verified' : ''))
  return 0
}

process.exitCode = await main()
