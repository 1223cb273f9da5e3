// usage: node scripts/oracles/sigstore-mock.js OUTDIR [PORT] [--tsa] [--tlog-skew SECONDS]
//
// A fake Sigstore stack for sigil's tests, on http://127.0.0.1:PORT (PORT 0 or absent: any free port), built on
// the request handlers of the npm package @sigstore/mock (installed by scripts/install-test-deps.sh into
// $SIGIL_ORACLES_HOME/npm), which by itself only mocks HTTP inside the Node process:
//   POST /api/v2/signingCert  Fulcio with an embedded-SCT CT log. The OIDC token is decoded, never verified;
//                             the certificate's SAN is a URI holding its `sub` claim, the issuer extensions hold
//                             its `iss` claim.
//   POST /api/v1/log/entries  Rekor v1 (hashedrekord 0.0.1, dsse 0.0.1) with SET, inclusion proof, checkpoint.
//   POST /api/v1/timestamp    (--tsa) an RFC 3161 timestamp authority: takes a DER TimeStampReq
//                             (application/timestamp-query, as sigstore-python sends) and answers a DER
//                             TimeStampResp signed by a fresh TSA chain listed in the trusted root.
// --tlog-skew SECONDS shifts Rekor's clock (integratedTime), e.g. 3600 to log entries after the 10-minute
// Fulcio certificate expired: bundles whose signing time falls outside the certificate's validity.
// Every key is fresh on each start. Once listening it writes OUTDIR/trusted_root.json and
// OUTDIR/trust_config.json (sigstore-python's --trust-config / ClientTrustConfig format: the trusted root plus a
// signing config naming this server, without a timestamp authority), then prints one JSON line
// {"url", "trustedRoot", "trustConfig"} on stdout. SIGTERM/SIGINT stop it.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { createRequire } = require('module');

const positional = [];
let withTsa = false;
let tlogSkew = 0;
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--tsa') withTsa = true;
  else if (a === '--tlog-skew') tlogSkew = Number(process.argv[++i]);
  else positional.push(a);
}
const outDir = positional[0];
const port = Number(positional[1] || 0);
if (!outDir || !Number.isInteger(port) || !Number.isFinite(tlogSkew)) {
  console.error('usage: node sigstore-mock.js OUTDIR [PORT] [--tsa] [--tlog-skew SECONDS]');
  process.exit(2);
}
const home = process.env.SIGIL_ORACLES_HOME || path.join(os.homedir(), '.cache', 'sigil', 'oracles');
const npmRequire = createRequire(path.join(home, 'npm', 'package.json'));
const mock = npmRequire('@sigstore/mock');

// A minimal DER reader: returns {tag, start, len, end} of the element at `pos` (definite lengths only).
function derElement(buf, pos) {
  if (pos + 2 > buf.length) throw new Error('truncated DER');
  const tag = buf[pos];
  let len = buf[pos + 1];
  let start = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > buf.length) throw new Error('bad DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[start + i];
    start += n;
  }
  if (start + len > buf.length) throw new Error('truncated DER');
  return { tag, start, len, end: start + len };
}

function derChildren(buf, el) {
  const out = [];
  for (let p = el.start; p < el.end; ) {
    const c = derElement(buf, p);
    out.push(c);
    p = c.end;
  }
  return out;
}

function decodeOid(bytes) {
  const parts = [];
  let v = 0;
  for (const b of bytes) {
    v = v * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      parts.push(v);
      v = 0;
    }
  }
  const first = parts.shift();
  const a = first < 80 ? Math.floor(first / 40) : 2;
  return [a, first - a * 40, ...parts].join('.');
}

// TimeStampReq ::= SEQUENCE { version, messageImprint SEQUENCE { AlgorithmIdentifier, OCTET STRING },
//   reqPolicy OID OPTIONAL, nonce INTEGER OPTIONAL, certReq BOOLEAN DEFAULT FALSE, extensions [0] OPTIONAL }
function parseTimestampQuery(der) {
  const top = derElement(der, 0);
  const [, imprint, ...rest] = derChildren(der, top);
  const [alg, hashed] = derChildren(der, imprint);
  const [algOid] = derChildren(der, alg);
  const req = {
    hashAlgorithmOID: decodeOid(der.subarray(algOid.start, algOid.end)),
    artifactHash: Buffer.from(der.subarray(hashed.start, hashed.end)),
    policyOID: '1.3.6.1.4.1.57264.2',
    nonce: 1234567890n,
    certReq: false,
  };
  for (const el of rest) {
    const body = der.subarray(el.start, el.end);
    if (el.tag === 0x06) req.policyOID = decodeOid(body);
    else if (el.tag === 0x02) req.nonce = BigInt('0x' + (Buffer.from(body).toString('hex') || '0'));
    else if (el.tag === 0x01) req.certReq = body.length > 0 && body[0] !== 0;
  }
  return req;
}

// The mock TSA encodes the nonce with `new asn1js.Integer({ value })`, a JS number: 64-bit nonces lose
// precision. Let that constructor take a BigInt too.
function allowBigIntNonces() {
  const asn1js = npmRequire('asn1js');
  const Base = asn1js.Integer;
  if (Base.sigilBigInt) return;
  class BigInteger extends Base {
    constructor(params) {
      if (params && typeof params.value === 'bigint') {
        const converted = Base.fromBigInt(params.value);
        super({ valueHex: converted.valueBlock.valueHexView });
      } else {
        super(params);
      }
    }
  }
  BigInteger.sigilBigInt = true;
  asn1js.Integer = BigInteger;
}

const sha256 = (data) => crypto.createHash('sha256').update(data).digest();
const b64 = (bytes) => Buffer.from(bytes.buffer ?? bytes, bytes.byteOffset ?? 0, bytes.byteLength).toString('base64');

// Rekor v1 re-encodes keys and certificates it stores as PEM with 64-character lines.
function rewrapPem(b64Pem) {
  const text = Buffer.from(b64Pem, 'base64').toString('utf8');
  const m = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/.exec(text);
  if (!m) return b64Pem;
  const body = m[2].replace(/\s+/g, '');
  const lines = body.match(/.{1,64}/g) || [];
  return Buffer.from(`-----BEGIN ${m[1]}-----\n${lines.join('\n')}\n-----END ${m[1]}-----\n`).toString('base64');
}

// The entry Rekor v1 would store for a proposed entry: a dsse proposal (envelope + verifiers) becomes
// {envelopeHash, payloadHash, signatures[{signature, verifier}]}; hashedrekord keys are re-wrapped.
function canonicalEntry(proposed) {
  if (proposed.kind === 'hashedrekord') {
    const key = proposed.spec && proposed.spec.signature && proposed.spec.signature.publicKey;
    if (key && key.content) key.content = rewrapPem(key.content);
    return proposed;
  }
  if (proposed.kind === 'dsse' && proposed.spec && proposed.spec.proposedContent) {
    const { envelope, verifiers = [] } = proposed.spec.proposedContent;
    const env = JSON.parse(envelope);
    const signatures = env.signatures
      .map((s, i) => ({ signature: s.sig, verifier: rewrapPem(verifiers[Math.min(i, verifiers.length - 1)]) }))
      .sort((x, y) => (x.signature < y.signature ? -1 : x.signature > y.signature ? 1 : 0));
    proposed.spec = {
      envelopeHash: { algorithm: 'sha256', value: sha256(envelope).toString('hex') },
      payloadHash: { algorithm: 'sha256', value: sha256(Buffer.from(env.payload, 'base64')).toString('hex') },
      signatures,
    };
  }
  return proposed;
}

// sigstore-python sends the token as a Bearer header and the CSR as base64 of its PEM; the mock's Fulcio
// handler reads both from the JSON body, the CSR as PEM text.
function fulcioBody(raw, headers) {
  const req = JSON.parse(raw);
  const bearer = /^Bearer\s+(\S+)$/i.exec(headers.authorization || '');
  if (!req.credentials && bearer) req.credentials = { oidcIdentityToken: bearer[1] };
  const csr = req.certificateSigningRequest;
  if (csr && !csr.startsWith('-----BEGIN')) req.certificateSigningRequest = Buffer.from(csr, 'base64').toString('utf8');
  return JSON.stringify(req);
}

function writeJson(name, value) {
  const file = path.join(outDir, name);
  fs.writeFileSync(`${file}.part`, JSON.stringify(value, null, 2) + '\n');
  fs.renameSync(`${file}.part`, file);
  return file;
}

async function main() {
  const routes = new Map();
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const reply = (status, body, type) => {
        res.writeHead(status, { 'Content-Type': type || 'text/plain' });
        res.end(body);
      };
      const route = routes.get(`${req.method} ${req.url.split('?')[0]}`);
      if (!route) return reply(404, 'not found');
      try {
        const r = await route(Buffer.concat(chunks), req.headers);
        if (r.statusCode >= 400) console.error(`${req.method} ${req.url}: ${r.statusCode} ${r.response}`);
        reply(r.statusCode, r.response, r.contentType);
      } catch (e) {
        console.error(`${req.method} ${req.url}: ${e && e.stack}`);
        reply(400, String((e && e.message) || e));
      }
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const url = `http://127.0.0.1:${server.address().port}`;

  const newKey = () => crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const ctKeys = newKey();
  const rekorKeys = newKey();
  const ctlog = await mock.initializeCTLog(ctKeys);
  const ca = await mock.initializeCA(newKey(), ctlog);
  const tlog = await mock.initializeTLog(url, rekorKeys, tlogSkew ? new Date(Date.now() + tlogSkew * 1000) : undefined);
  const fulcio = mock.fulcioHandler(ca, { strict: true }).fn;
  const rekor = mock.rekorHandler(tlog, { strict: true }).fn;
  routes.set('POST /api/v2/signingCert', (raw, headers) => fulcio(fulcioBody(raw.toString('utf8'), headers)));
  routes.set('POST /api/v1/log/entries', (raw) => rekor(JSON.stringify(canonicalEntry(JSON.parse(raw.toString('utf8'))))));
  let tsa = null;
  if (withTsa) {
    allowBigIntNonces();
    tsa = await mock.initializeTSA(newKey());
    routes.set('POST /api/v1/timestamp', async (raw) => ({
      statusCode: 200,
      response: await tsa.timestamp(parseTimestampQuery(raw)),
      contentType: 'application/timestamp-reply',
    }));
  }

  const spki = (keys) => keys.publicKey.export({ format: 'der', type: 'spki' });
  const validFor = { start: new Date(Date.now() - 3600 * 1000).toISOString() };
  const logKey = (keys) => ({ rawBytes: spki(keys).toString('base64'), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor });
  const trustedRoot = {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [
      {
        baseUrl: url,
        hashAlgorithm: 'SHA2_256',
        publicKey: logKey(rekorKeys),
        logId: { keyId: sha256(spki(rekorKeys)).toString('base64') },
      },
    ],
    certificateAuthorities: [
      {
        subject: { organization: 'sigil-test-mock', commonName: 'fulcio' },
        uri: url,
        certChain: { certificates: [{ rawBytes: b64(ca.rootCertificate) }] },
        validFor,
      },
    ],
    ctlogs: [
      {
        baseUrl: url,
        hashAlgorithm: 'SHA2_256',
        publicKey: logKey(ctKeys),
        logId: { keyId: b64(ctlog.logID) },
      },
    ],
    timestampAuthorities: tsa
      ? [
          {
            subject: { organization: 'sigstore.mock', commonName: 'tsa' },
            uri: `${url}/api/v1/timestamp`,
            certChain: { certificates: [{ rawBytes: b64(tsa.intCertificate) }, { rawBytes: b64(tsa.rootCertificate) }] },
            validFor,
          },
        ]
      : [],
  };
  const service = (u) => ({ url: u, majorApiVersion: 1, validFor, operator: 'sigil-test-mock' });
  const signingConfig = {
    mediaType: 'application/vnd.dev.sigstore.signingconfig.v0.2+json',
    caUrls: [service(url)],
    oidcUrls: [],
    rekorTlogUrls: [service(url)],
    rekorTlogConfig: { selector: 'ANY' },
    tsaUrls: tsa ? [service(`${url}/api/v1/timestamp`)] : [],
    tsaConfig: { selector: 'ANY' },
  };
  fs.mkdirSync(outDir, { recursive: true });
  const rootFile = writeJson('trusted_root.json', trustedRoot);
  const configFile = writeJson('trust_config.json', {
    mediaType: 'application/vnd.dev.sigstore.clienttrustconfig.v0.1+json',
    trustedRoot,
    signingConfig,
  });
  process.stdout.write(JSON.stringify({ url, trustedRoot: rootFile, trustConfig: configFile }) + '\n');

  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
