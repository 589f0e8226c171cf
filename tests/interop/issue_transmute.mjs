#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Issue vds-1 COSE Receipts with the npm package @transmute/cose, so that other
// verifiers (ours: vcon-verify) can be tested on receipts it issued.
//
// Usage: node issue_transmute.mjs [OUT_DIR]   (default ./transmute-issued)
//
// Everything cryptographic is @transmute/cose's own API:
//   cose.key.generate('ES256') / cose.key.publicFromPrivate   (src/cose/key/)
//   cose.attached.signer / cose.detached.signer + cose.crypto.signer (src/cose/attached, detached, crypto)
//   cose.receipt.remove (entry = tag18([P, {}, M, S])), cose.receipt.leaf (SHA-256(0x00||entry))
//   cose.receipt.inclusion.issue (root + inclusion proof + signed receipt, src/cose/receipt/inclusion/issue.ts)
//   cose.receipt.add (Transparent Statement, label 394), cose.key.thumbprint.calculateCoseKeyThumbprint (kid)
// and every case is checked back with cose.receipt.verifier / inclusion.verify before it is written.
//
// Output (fresh random keys on every run; TEST ONLY):
//   OUT/valid/            statement.cose (attached payload, bstr kid), payload.json, receipt.cose,
//                         transparent.cose, service-jwks.json, service-key.jwk.json,
//                         issuer-jwks.json, issuer-key.jwk.json, log.json (entries, leaves, root)
//   OUT/readme-style/     as the package README does it: detached statement (payload nil),
//                         text kid = RFC 7638 JWK thumbprint, one-entry log; + payload.json
//   OUT/fail-tampered-path/      valid/ with the first audit-path node flipped (receipt must fail)
//   OUT/fail-bad-statement-sig/  statement with a flipped signature byte, logged as such, so its
//                                receipt verifies and only the issuer signature must fail
// The leaf rule is transmute's (= our `entry` rule): leaf = SHA-256(0x00 || tag18([P, {}, M, S])).

import { mkdirSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'

// The package is installed by tests/interop/setup.sh under
// $VCON_SCITT_INTEROP_DIR/node (never in this repository).
const require = createRequire(process.env.VCON_SCITT_INTEROP_DIR
  ? process.env.VCON_SCITT_INTEROP_DIR + '/node/package.json'
  : import.meta.url)
const cose = require('@transmute/cose')
const version = require('@transmute/cose/package.json').version

const out = process.argv[2] || 'transmute-issued'
const ISS_ISSUER = 'https://issuer.transmute-interop.invalid'
const ISS_LOG = 'https://log.transmute-interop.invalid'
const hex = (b) => Buffer.from(b).toString('hex')
const u8 = (b) => new Uint8Array(b)

async function keypair() {
  const secret = await cose.key.generate('ES256', 'application/jwk+json')
  const pub = cose.key.publicFromPrivate(secret)
  const { kty, crv, x, y } = pub
  const ck = await cose.key.convertJsonWebKeyToCoseKey({ kty, crv, x, y })
  const kidBytes = Buffer.from(await cose.key.thumbprint.calculateCoseKeyThumbprint(ck)) // RFC 9679
  return { secret, pub, jwk7638: pub.kid, kidBytes }
}

const signerFor = (kind, secret) => cose[kind].signer({ remote: cose.crypto.signer({ privateKeyJwk: secret }) })

function write(dir, files) {
  mkdirSync(dir, { recursive: true })
  for (const [name, data] of Object.entries(files)) {
    writeFileSync(join(dir, name), typeof data === 'string' ? data : Buffer.from(data))
  }
}

// Public JWK as a verifier is given it: kid = base64url(kid bytes in the headers).
const publishJwk = (k, kidText) => ({ kty: k.pub.kty, crv: k.pub.crv, x: k.pub.x, y: k.pub.y, alg: 'ES256', kid: kidText })

async function signStatement(issuer, payload, sub, { detached = false, kid } = {}) {
  const signer = signerFor(detached ? 'detached' : 'attached', issuer.secret)
  return u8(await signer.sign({
    protectedHeader: cose.ProtectedHeader([
      [cose.Protected.Alg, cose.Signature.ES256],
      [cose.Protected.ContentType, 'application/json'],
      [cose.Protected.Kid, kid ?? issuer.kidBytes],
      [cose.Protected.CWTClaims, new Map([[1, ISS_ISSUER], [2, sub]])],
    ]),
    unprotectedHeader: new Map(),
    payload: Buffer.from(payload),
  }))
}

async function issueReceipt(log, entries, index, { kid } = {}) {
  const leaves = []
  for (const e of entries) leaves.push(await cose.receipt.leaf(e))
  const receipt = u8(await cose.receipt.inclusion.issue({
    protectedHeader: cose.ProtectedHeader([
      [cose.Protected.Alg, cose.Signature.ES256],
      [cose.Protected.Kid, kid ?? log.kidBytes],
      [cose.Protected.CWTClaims, new Map([[1, ISS_LOG], [2, 'transmute-interop-log']])],
      [cose.Protected.VerifiableDataStructure, cose.VerifiableDataStructures['RFC9162-Binary-Merkle-Tree']],
    ]),
    entry: index,
    entries: leaves,
    signer: signerFor('detached', log.secret),
  }))
  return { receipt, leaves }
}

// A log of `size` entries (filler statements) with `target` at `index`.
async function buildLog(issuer, target, index, size) {
  const entries = []
  for (let i = 0; i < size; i++) {
    if (i === index) { entries.push(u8(await cose.receipt.remove(target))); continue }
    const filler = await signStatement(issuer, JSON.stringify({ filler: i }), `urn:transmute-interop:filler-${i}`)
    entries.push(u8(await cose.receipt.remove(filler)))
  }
  return entries
}

const resolverFor = (issuerJwk, logJwk) => ({
  resolve: async (msg) => {
    const { value } = cose.cbor.decodeFirstSync(Buffer.from(msg))
    const ph = cose.cbor.decodeFirstSync(value[0])
    return ph.has(395) ? logJwk : issuerJwk
  },
})

async function main() {
  const issuer = await keypair()
  const log = await keypair()
  const issuerJwk = publishJwk(issuer, issuer.kidBytes.toString('base64url'))
  const logJwk = publishJwk(log, log.kidBytes.toString('base64url'))
  const resolver = resolverFor(issuerJwk, logJwk)
  const keyFiles = {
    'service-key.jwk.json': JSON.stringify(logJwk, null, 2) + '\n',
    'service-jwks.json': JSON.stringify({ keys: [logJwk] }, null, 2) + '\n',
    'issuer-key.jwk.json': JSON.stringify(issuerJwk, null, 2) + '\n',
    'issuer-jwks.json': JSON.stringify({ keys: [issuerJwk] }, null, 2) + '\n',
  }
  const TREE_SIZE = 7; const INDEX = 4

  // --- valid: attached payload, bstr kids, 7-entry log, our statement at index 4
  const payload = JSON.stringify({ hello: 'from @transmute/cose', version }) + '\n'
  const statement = await signStatement(issuer, payload, 'urn:transmute-interop:statement')
  const entries = await buildLog(issuer, statement, INDEX, TREE_SIZE)
  const { receipt, leaves } = await issueReceipt(log, entries, INDEX)
  const transparent = u8(await cose.receipt.add(statement, receipt))
  const checked = await (await cose.receipt.verifier(resolver)).verify({ coseSign1: transparent, payload: Buffer.from(payload) })
  const root = hex(checked.receipts[0])
  write(join(out, 'valid'), {
    'statement.cose': statement, 'payload.json': payload, 'receipt.cose': receipt, 'transparent.cose': transparent,
    ...keyFiles,
    'log.json': JSON.stringify({
      issued_by: `@transmute/cose ${version}`, leaf_rule: 'entry: SHA-256(0x00 || tag18([P, {}, M, S]))',
      tree_size: TREE_SIZE, leaf_index: INDEX, root,
      entries_hex: entries.map(hex), leaves_hex: leaves.map(hex),
    }, null, 2) + '\n',
  })

  // --- fail-tampered-path: flip the first byte of the first audit-path node
  {
    const { tag, value } = cose.cbor.decodeFirstSync(Buffer.from(receipt))
    const proofs = value[1].get(396)
    const [ts, li, path] = cose.cbor.decodeFirstSync(proofs.get(-1)[0])
    const p0 = Buffer.from(path[0]); p0[0] ^= 1; path[0] = p0
    proofs.set(-1, [cose.cbor.encode([ts, li, path])])
    const bad = u8(await cose.cbor.encodeAsync(new cose.cbor.Tagged(tag, value), { canonical: true }))
    let rejected = false
    try { await cose.receipt.inclusion.verify({ entry: leaves[INDEX], receipt: bad, verifier: cose.detached.verifier({ resolver }) }) } catch { rejected = true }
    if (!rejected) throw new Error('tampered receipt still verifies')
    write(join(out, 'fail-tampered-path'), { 'statement.cose': statement, 'payload.json': payload, 'receipt.cose': bad, ...keyFiles })
  }

  // --- fail-bad-statement-sig: the log registers the tampered bytes, so only the issuer signature fails
  {
    const { tag, value } = cose.cbor.decodeFirstSync(Buffer.from(statement))
    const sig = Buffer.from(value[3]); sig[0] ^= 1; value[3] = sig
    const badStatement = u8(await cose.cbor.encodeAsync(new cose.cbor.Tagged(tag, value), { canonical: true }))
    const badEntries = await buildLog(issuer, badStatement, INDEX, TREE_SIZE)
    const r = await issueReceipt(log, badEntries, INDEX)
    await cose.receipt.inclusion.verify({ entry: r.leaves[INDEX], receipt: r.receipt, verifier: cose.detached.verifier({ resolver }) })
    let rejected = false
    try { await cose.attached.verifier({ resolver }).verify({ coseSign1: badStatement }) } catch { rejected = true }
    if (!rejected) throw new Error('tampered statement signature still verifies')
    write(join(out, 'fail-bad-statement-sig'), { 'statement.cose': badStatement, 'payload.json': payload, 'receipt.cose': r.receipt, ...keyFiles })
  }

  // --- readme-style: the package README's own flow (detached statement, text kid, one-entry log)
  {
    const textKidIssuer = publishJwk(issuer, issuer.jwk7638)
    const textKidLog = publishJwk(log, log.jwk7638)
    const detachedStatement = await signStatement(issuer, payload, 'urn:transmute-interop:readme', { detached: true, kid: issuer.jwk7638 })
    const { receipt: r } = await issueReceipt(log, [detachedStatement], 0, { kid: log.jwk7638 })
    const t = u8(await cose.receipt.add(detachedStatement, r))
    await (await cose.receipt.verifier(resolverFor(textKidIssuer, textKidLog))).verify({ coseSign1: t, payload: Buffer.from(payload) })
    write(join(out, 'readme-style'), {
      'statement.cose': detachedStatement, 'payload.json': payload, 'receipt.cose': r, 'transparent.cose': t,
      'service-key.jwk.json': JSON.stringify(textKidLog, null, 2) + '\n',
      'service-jwks.json': JSON.stringify({ keys: [textKidLog] }, null, 2) + '\n',
      'issuer-key.jwk.json': JSON.stringify(textKidIssuer, null, 2) + '\n',
      'issuer-jwks.json': JSON.stringify({ keys: [textKidIssuer] }, null, 2) + '\n',
    })
  }
  console.log(`wrote ${out}/{valid,fail-tampered-path,fail-bad-statement-sig,readme-style} with @transmute/cose ${version}; root ${root}`)
}

main().catch((e) => { console.error(`FAIL: ${e.stack || e.message}`); process.exitCode = 1 })
