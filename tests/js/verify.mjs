// Independent check of a Sigstore bundle with sigstore-js (@sigstore/verify), the verifier npm uses.
//
//   node verify.mjs BUNDLE.json TRUSTED_ROOT.json PUBLIC_KEY.pem [ARTIFACT]
//
// Exit 0 only when @sigstore/verify's Verifier accepts the bundle: bundle schema
// (@sigstore/bundle bundleFromJSON), every transparency log entry (signed entry timestamp, Merkle
// inclusion proof to the root of a checkpoint signed by a log that the trusted root lists, and the
// entry body matching the signature), at least one log entry and one verified timestamp (the
// entry's integrated time), the public key valid at that time, and the signature itself.
//
// The public key is supplied the way sigstore-js callers do: as the trust material's key finder,
// keyed by the bundle's `publicKey.hint`. Here the hint must be base64(SHA-256(SPKI DER)) of the
// given key, which is what Safeguard (and cosign v3) write; any other hint is "key not found".
//
// ARTIFACT: required for a message-signature bundle (the signed bytes). For a DSSE bundle
// sigstore-js verifies the envelope (its signature over the PAE of the payload, and the payload
// hash the log recorded) and ignores any artifact; when one is given here, this script also
// checks, after sigstore-js has accepted, that the in-toto statement names the artifact's SHA-256
// among its subjects (for an image signature, ARTIFACT is the image manifest).
//
// Output: one JSON object on stdout ({"verified": true, ...} or {"verified": false, "code",
// "message"}). Exit 1: refused; 2: usage or unreadable input.
import crypto from 'node:crypto';
import fs from 'node:fs';
import process from 'node:process';

import { bundleFromJSON } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';

function out(doc, code) {
  process.stdout.write(JSON.stringify(doc) + '\n');
  process.exit(code);
}

function readJSON(path, what) {
  try {
    return JSON.parse(fs.readFileSync(path, 'utf8'));
  } catch (err) {
    out({ verified: false, code: 'USAGE', message: `cannot read ${what} ${path}: ${err.message}` }, 2);
  }
}

const [bundlePath, rootPath, keyPath, artifactPath] = process.argv.slice(2);
if (!bundlePath || !rootPath || !keyPath) {
  out({ verified: false, code: 'USAGE', message: 'usage: verify.mjs BUNDLE TRUSTED_ROOT KEY.pem [ARTIFACT]' }, 2);
}

const bundleJSON = readJSON(bundlePath, 'bundle');
const rootJSON = readJSON(rootPath, 'trusted root');
let publicKey;
let artifact;
try {
  publicKey = crypto.createPublicKey(fs.readFileSync(keyPath));
  artifact = artifactPath ? fs.readFileSync(artifactPath) : undefined;
} catch (err) {
  out({ verified: false, code: 'USAGE', message: err.message }, 2);
}
const spki = publicKey.export({ format: 'der', type: 'spki' });
const hint = crypto.createHash('sha256').update(spki).digest('base64');

let bundle;
try {
  bundle = bundleFromJSON(bundleJSON);
} catch (err) {
  out({ verified: false, code: err.code || 'BUNDLE_INVALID', message: err.message }, 1);
}
const isDSSE = bundle.content.$case === 'dsseEnvelope';
if (!isDSSE && artifact === undefined) {
  out({ verified: false, code: 'USAGE', message: 'a message-signature bundle needs the ARTIFACT' }, 2);
}

let signer;
try {
  const trustMaterial = toTrustMaterial(TrustedRoot.fromJSON(rootJSON), {
    [hint]: { rawBytes: spki },
  });
  const verifier = new Verifier(trustMaterial, { tlogThreshold: 1, ctlogThreshold: 0 });
  signer = verifier.verify(toSignedEntity(bundle, isDSSE ? undefined : artifact));
} catch (err) {
  out({ verified: false, code: err.code || err.name, message: err.message }, 1);
}

const result = {
  verified: true,
  verifier: '@sigstore/verify',
  content: bundle.content.$case,
  keyHint: hint,
  signerKeyMatches: signer.key.equals(publicKey),
  tlogEntries: bundle.verificationMaterial.tlogEntries.map((e) => ({
    logIndex: e.logIndex,
    kind: `${e.kindVersion.kind}/${e.kindVersion.version}`,
    integratedTime: new Date(Number(e.integratedTime) * 1000).toISOString(),
    inclusionPromise: e.inclusionPromise !== undefined,
    inclusionProof: e.inclusionProof !== undefined,
  })),
};

if (isDSSE && artifact !== undefined) {
  // Not sigstore-js: the statement must name the artifact (sigstore-js leaves this to callers).
  const want = crypto.createHash('sha256').update(artifact).digest('hex');
  let statement;
  try {
    statement = JSON.parse(bundle.content.dsseEnvelope.payload.toString('utf8'));
  } catch (err) {
    out({ ...result, verified: false, code: 'STATEMENT_INVALID', message: err.message }, 1);
  }
  const subjects = Array.isArray(statement.subject) ? statement.subject : [];
  result.subjectMatched = subjects.some((s) => s && s.digest && s.digest.sha256 === want);
  if (!result.subjectMatched) {
    out({ ...result, verified: false, code: 'SUBJECT_MISMATCH', message: `no subject has sha256 ${want}` }, 1);
  }
}
out(result, 0);
