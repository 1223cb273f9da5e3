#!/usr/bin/env python3
"""Keyless signing with sigstore-python against a local fake Fulcio/Rekor (scripts/oracles/sigstore-mock.js).

usage: sigstore-sign.py --trust-config TRUST_CONFIG --identity ID --issuer ISS [--dsse] INPUT OUTPUT

Makes an unsigned OIDC token (iss=ISS, sub=ID, aud=sigstore; the mock decodes tokens without verifying them),
then signs INPUT through sigstore-python's API with the services and trust root of TRUST_CONFIG (the
ClientTrustConfig JSON the mock writes) and writes the Sigstore bundle to OUTPUT. Without --dsse INPUT is signed
as a message signature (hashedrekord); with --dsse INPUT must be an in-toto statement, signed as a DSSE
envelope (dsse entry). Prints {"bundle", "mediaType", "content", "tlogEntries"}.
"""

import argparse
import base64
import json
import os
import sys
import time

VENV_PY = os.path.join(
    os.environ.get("SIGIL_ORACLES_HOME") or os.path.join(os.path.expanduser("~"), ".cache/sigil/oracles"),
    "venv/bin/python",
)
try:
    from sigstore import dsse
    from sigstore.models import ClientTrustConfig
    from sigstore.oidc import IdentityToken
    from sigstore.sign import SigningContext
except ImportError:
    if os.path.realpath(sys.executable) != os.path.realpath(VENV_PY) and os.path.exists(VENV_PY):
        os.execv(VENV_PY, [VENV_PY, *sys.argv])
    sys.exit("sigstore-sign.py: needs sigstore-python (scripts/install-test-deps.sh)")


def b64url_json(obj):
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).rstrip(b"=").decode()


def unsigned_token(identity, issuer):
    now = int(time.time())
    claims = {"iss": issuer, "sub": identity, "aud": "sigstore", "iat": now, "nbf": now, "exp": now + 600}
    return "%s.%s." % (b64url_json({"alg": "none", "typ": "JWT"}), b64url_json(claims))


def main():
    ap = argparse.ArgumentParser(prog="sigstore-sign.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--trust-config", required=True)
    ap.add_argument("--identity", required=True)
    ap.add_argument("--issuer", required=True)
    ap.add_argument("--dsse", action="store_true")
    ap.add_argument("input")
    ap.add_argument("output")
    args = ap.parse_args()

    with open(args.trust_config) as f:
        trust = ClientTrustConfig.from_json(f.read())
    with open(args.input, "rb") as f:
        data = f.read()
    ctx = SigningContext.from_trust_config(trust)
    # The default cache=True matters: the signer certifies and signs with the same ephemeral key.
    with ctx.signer(IdentityToken(unsigned_token(args.identity, args.issuer))) as signer:
        if args.dsse:
            bundle = signer.sign_dsse(dsse.Statement(data))
        else:
            bundle = signer.sign_artifact(data)
    text = bundle.to_json()
    with open(args.output, "w") as f:
        f.write(text)
    doc = json.loads(text)
    print(
        json.dumps(
            {
                "bundle": os.path.abspath(args.output),
                "mediaType": doc["mediaType"],
                "content": "dsseEnvelope" if "dsseEnvelope" in doc else "messageSignature",
                "tlogEntries": len(doc["verificationMaterial"].get("tlogEntries", [])),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
