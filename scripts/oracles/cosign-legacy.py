#!/usr/bin/env python3
"""An independent implementation of cosign's key-based, tag-based ("legacy") signatures, for sigil's tests.

usage:
  cosign-legacy.py keygen [--output-key-prefix P] [--plain] [--force]
  cosign-legacy.py sign --key KEY [-a K=V]... [--user U:P] IMAGE
  cosign-legacy.py verify --key PUB [-a K=V]... [--user U:P] IMAGE

IMAGE is HOST:PORT/REPO[:TAG|@sha256:HEX] on a loopback registry (plain HTTP; anything else is refused).

keygen   writes P.key (default cosign.key) and P.pub: ECDSA P-256, PKCS#8, encrypted with scrypt (N=65536, r=8,
         p=1, 32-byte salt) and NaCl secretbox (24-byte nonce) in an "ENCRYPTED SIGSTORE PRIVATE KEY" PEM whose body
         is the cosign JSON envelope; the password comes from $COSIGN_PASSWORD (may be empty). --plain writes
         an unencrypted PKCS#8 "PRIVATE KEY" PEM instead.
sign     resolves IMAGE to its manifest digest, builds the simple-signing payload
         {"critical":{"identity":{"docker-reference":HOST/REPO},"image":{"docker-manifest-digest":D},
         "type":"cosign container image signature"},"optional":null|{...}}, signs it (ECDSA-SHA256 DER, RSA
         PKCS#1 v1.5 SHA-256, or Ed25519), and stores it as a layer (media type
         application/vnd.dev.cosign.simplesigning.v1+json, annotation dev.cosignproject.cosign/signature = base64
         signature) of the OCI manifest tagged sha256-<hex>.sig, appending to the layers already there. A layer
         with the same payload whose signature already verifies with this key is not added twice.
         KEY is an encrypted cosign key ($COSIGN_PASSWORD) or a plain PEM private key (PKCS#8, SEC1, PKCS#1).
verify   checks every layer of the .sig manifest: payload digest matches the layer descriptor, the signature
         verifies with PUB, critical.type is right, critical.image.docker-manifest-digest equals IMAGE's digest,
         and each -a K=V is in optional. Prints {"digest", "signatures": [{"layer", "ok", "error"?}], "verified"}
         and exits 0 when at least one layer passes (cosign's rule), 1 when none does, 2 on usage/transport errors.
"""

import argparse
import base64
import hashlib
import ipaddress
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

VENV_PY = os.path.join(
    os.environ.get("SIGIL_ORACLES_HOME") or os.path.join(os.path.expanduser("~"), ".cache/sigil/oracles"),
    "venv/bin/python",
)
try:
    import nacl.exceptions
    import nacl.secret
    import nacl.utils
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
except ImportError:
    if os.path.realpath(sys.executable) != os.path.realpath(VENV_PY) and os.path.exists(VENV_PY):
        os.execv(VENV_PY, [VENV_PY, *sys.argv])
    sys.exit("cosign-legacy.py: needs cryptography and PyNaCl (scripts/install-test-deps.sh)")

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
ANN_SIGNATURE = "dev.cosignproject.cosign/signature"
PAYLOAD_TYPE = "cosign container image signature"
ACCEPT = ", ".join(
    [
        MT_OCI_MANIFEST,
        MT_OCI_INDEX,
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
ENC_LABELS = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
SCRYPT_N_ACCEPTED = (32768, 65536, 131072)


class UsageError(Exception):
    pass


# ---- keys ----------------------------------------------------------------------------------------------------


def pem_blocks(text):
    """(label, der) for every PEM block of text."""
    out, label, body = [], None, []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("-----BEGIN ") and line.endswith("-----"):
            label, body = line[len("-----BEGIN ") : -5], []
        elif line.startswith("-----END ") and label is not None:
            out.append((label, base64.b64decode("".join(body))))
            label = None
        elif label is not None:
            body.append(line)
    return out


def pem(label, der):
    b64 = base64.b64encode(der).decode()
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(lines), label)


def scrypt_key(password, salt, n):
    return Scrypt(salt=salt, length=32, n=n, r=8, p=1).derive(password)


def decrypt_cosign_key(envelope_json, password):
    env = json.loads(envelope_json)
    kdf, cipher = env["kdf"], env["cipher"]
    if kdf["name"] != "scrypt" or cipher["name"] != "nacl/secretbox":
        raise UsageError("unsupported key encryption %s/%s" % (kdf["name"], cipher["name"]))
    params = kdf["params"]
    if params["N"] not in SCRYPT_N_ACCEPTED or params["r"] != 8 or params["p"] != 1:
        raise UsageError("unsupported scrypt parameters %r" % params)
    key = scrypt_key(password, base64.b64decode(kdf["salt"]), params["N"])
    box = nacl.secret.SecretBox(key)
    try:
        return box.decrypt(base64.b64decode(env["ciphertext"]), base64.b64decode(cipher["nonce"]))
    except nacl.exceptions.CryptoError:
        raise UsageError("cannot decrypt the private key: wrong password?")


def encrypt_cosign_key(pkcs8_der, password, n=65536):
    salt = os.urandom(32)
    nonce = nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)
    box = nacl.secret.SecretBox(scrypt_key(password, salt, n))
    ciphertext = box.encrypt(pkcs8_der, nonce).ciphertext  # tag || encrypted bytes, as Go's secretbox.Seal
    envelope = {
        "kdf": {"name": "scrypt", "params": {"N": n, "r": 8, "p": 1}, "salt": base64.b64encode(salt).decode()},
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(ciphertext).decode(),
    }
    return pem(ENC_LABELS[0], json.dumps(envelope, separators=(",", ":")).encode())


def password():
    return os.environ.get("COSIGN_PASSWORD", "").encode()


def load_private_key(path):
    with open(path, "rb") as f:
        data = f.read()
    blocks = pem_blocks(data.decode("ascii", "replace"))
    for label, der in blocks:
        if label in ENC_LABELS:
            return serialization.load_der_private_key(decrypt_cosign_key(der, password()), password=None)
    return serialization.load_pem_private_key(data, password=None)


def load_public_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_public_key(f.read())


def sign_bytes(key, data):
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    raise UsageError("unsupported private key type %s" % type(key).__name__)


def verify_bytes(pub, sig, data):
    """True when sig is a valid signature of data under pub."""
    try:
        if isinstance(pub, ec.EllipticCurvePublicKey):
            pub.verify(sig, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(pub, rsa.RSAPublicKey):
            pub.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(pub, ed25519.Ed25519PublicKey):
            pub.verify(sig, data)
        else:
            raise UsageError("unsupported public key type %s" % type(pub).__name__)
    except InvalidSignature:
        return False
    return True


# ---- registry client -----------------------------------------------------------------------------------------


class Registry:
    def __init__(self, host, user=None):
        hostname = urllib.parse.urlsplit("//" + host).hostname or ""
        try:
            loopback = ipaddress.ip_address(hostname).is_loopback
        except ValueError:
            loopback = hostname == "localhost"
        if not loopback:
            raise UsageError("refusing to talk to a registry that is not on loopback: %s" % host)
        self.base = "http://" + host
        self.auth = None
        if user:
            self.auth = "Basic " + base64.b64encode(user.encode()).decode()

    def request(self, method, path, body=None, headers=None, ok=(200,)):
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=dict(headers or {}))
        if self.auth:
            req.add_header("Authorization", self.auth)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            data = e.read()
            if e.code in ok:
                return e.code, e.headers, data
            raise UsageError("%s %s: HTTP %d %s" % (method, path, e.code, data[:300].decode("utf-8", "replace")))

    def get_manifest(self, repo, ref):
        """(bytes, media type) or None when the registry answers 404."""
        st, hdr, data = self.request(
            "GET", "/v2/%s/manifests/%s" % (repo, ref), headers={"Accept": ACCEPT}, ok=(200, 404)
        )
        if st == 404:
            return None
        return data, hdr.get("Content-Type", "").split(";")[0].strip()

    def get_blob(self, repo, digest):
        _, _, data = self.request("GET", "/v2/%s/blobs/%s" % (repo, digest))
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise UsageError("blob %s: served bytes do not match the digest" % digest)
        return data

    def push_blob(self, repo, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        st, _, _ = self.request("HEAD", "/v2/%s/blobs/%s" % (repo, digest), ok=(200, 404))
        if st == 200:
            return digest
        _, hdr, _ = self.request("POST", "/v2/%s/blobs/uploads/" % repo, ok=(202,))
        loc = urllib.parse.urljoin(self.base + "/", hdr["Location"])
        parts = urllib.parse.urlsplit(loc)
        query = (parts.query + "&" if parts.query else "") + "digest=" + urllib.parse.quote(digest)
        self.request(
            "PUT",
            parts.path + "?" + query,
            body=data,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data))},
            ok=(201,),
        )
        return digest

    def put_manifest(self, repo, ref, media_type, data):
        self.request(
            "PUT", "/v2/%s/manifests/%s" % (repo, ref), body=data, headers={"Content-Type": media_type}, ok=(201,)
        )


def parse_image(image):
    """(host, repo, reference) of HOST:PORT/REPO[:TAG|@DIGEST]; the reference defaults to latest."""
    host, sep, rest = image.partition("/")
    if not sep or not rest:
        raise UsageError("IMAGE must be HOST:PORT/REPO[:TAG|@sha256:HEX], got %r" % image)
    if "@" in rest:
        repo, ref = rest.split("@", 1)
    elif ":" in rest.rsplit("/", 1)[-1]:
        repo, ref = rest.rsplit(":", 1)
    else:
        repo, ref = rest, "latest"
    return host, repo, ref


def resolve(reg, repo, ref):
    got = reg.get_manifest(repo, ref)
    if got is None:
        raise UsageError("%s:%s: manifest not found" % (repo, ref))
    digest = "sha256:" + hashlib.sha256(got[0]).hexdigest()
    if ref.startswith("sha256:") and ref != digest:
        raise UsageError("%s@%s: served bytes hash to %s" % (repo, ref, digest))
    return digest


def sig_tag(digest):
    return digest.replace(":", "-") + ".sig"


def annotations_arg(pairs):
    out = {}
    for kv in pairs or []:
        k, sep, v = kv.partition("=")
        if not sep:
            raise UsageError("-a expects K=V, got %r" % kv)
        out[k] = v
    return out


def config_blob(layer_digests):
    """go-containerregistry's config for a signature image (cosign's empty.Image plus one layer each)."""
    cfg = {
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"} for _ in layer_digests],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": list(layer_digests)},
        "config": {},
    }
    return json.dumps(cfg, separators=(",", ":")).encode()


# ---- commands ------------------------------------------------------------------------------------------------


def cmd_keygen(args):
    prefix = args.output_key_prefix
    paths = (prefix + ".key", prefix + ".pub")
    if not args.force:
        for p in paths:
            if os.path.exists(p):
                raise UsageError("%s exists (use --force)" % p)
    key = ec.generate_private_key(ec.SECP256R1())
    pkcs8 = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    spki = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with open(paths[0], "w") as f:
        f.write(pem("PRIVATE KEY", pkcs8) if args.plain else encrypt_cosign_key(pkcs8, password()))
    os.chmod(paths[0], 0o600)
    with open(paths[1], "wb") as f:
        f.write(spki)
    return {"privateKey": paths[0], "publicKey": paths[1]}, 0


def cmd_sign(args):
    key = load_private_key(args.key)
    pub = key.public_key()
    host, repo, ref = parse_image(args.image)
    reg = Registry(host, args.user)
    digest = resolve(reg, repo, ref)
    optional = annotations_arg(args.annotation) or None
    payload = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": "%s/%s" % (host, repo)},
                "image": {"docker-manifest-digest": digest},
                "type": PAYLOAD_TYPE,
            },
            "optional": optional,
        },
        separators=(",", ":"),
    ).encode()
    payload_digest = "sha256:" + hashlib.sha256(payload).hexdigest()

    tag = sig_tag(digest)
    layers = []
    existing = reg.get_manifest(repo, tag)
    if existing is not None:
        layers = json.loads(existing[0]).get("layers") or []
    for layer in layers:
        sig = (layer.get("annotations") or {}).get(ANN_SIGNATURE, "")
        if layer.get("digest") == payload_digest and layer.get("mediaType") == MT_SIMPLESIGNING and sig:
            if verify_bytes(pub, base64.b64decode(sig), payload):
                return {"digest": digest, "tag": tag, "signatures": len(layers), "alreadySigned": True}, 0

    signature = base64.b64encode(sign_bytes(key, payload)).decode()
    reg.push_blob(repo, payload)
    layers.append(
        {
            "mediaType": MT_SIMPLESIGNING,
            "size": len(payload),
            "digest": payload_digest,
            "annotations": {ANN_SIGNATURE: signature},
        }
    )
    cfg = config_blob([layer["digest"] for layer in layers])
    cfg_digest = reg.push_blob(repo, cfg)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MT_OCI_MANIFEST,
            "config": {"mediaType": MT_OCI_CONFIG, "size": len(cfg), "digest": cfg_digest},
            "layers": layers,
        },
        separators=(",", ":"),
    ).encode()
    reg.put_manifest(repo, tag, MT_OCI_MANIFEST, manifest)
    return {
        "digest": digest,
        "tag": tag,
        "signatures": len(layers),
        "alreadySigned": False,
        "payload": json.loads(payload),
    }, 0


def check_layer(reg, repo, pub, digest, layer, required):
    if layer.get("mediaType") != MT_SIMPLESIGNING:
        return "layer media type is %r" % layer.get("mediaType")
    sig_b64 = (layer.get("annotations") or {}).get(ANN_SIGNATURE)
    if not sig_b64:
        return "no %s annotation" % ANN_SIGNATURE
    payload = reg.get_blob(repo, layer["digest"])
    if len(payload) != layer.get("size"):
        return "payload size %d != descriptor size %r" % (len(payload), layer.get("size"))
    try:
        sig = base64.b64decode(sig_b64, validate=True)
    except ValueError:
        return "signature annotation is not base64"
    if not verify_bytes(pub, sig, payload):
        return "signature does not verify with the key"
    doc = json.loads(payload)
    critical = doc.get("critical") or {}
    if critical.get("type") != PAYLOAD_TYPE:
        return "critical.type is %r" % critical.get("type")
    got = (critical.get("image") or {}).get("docker-manifest-digest")
    if got != digest:
        return "docker-manifest-digest %r != image digest %s" % (got, digest)
    optional = doc.get("optional") or {}
    for k, v in required.items():
        if optional.get(k) != v:
            return "annotation %s=%r missing (optional: %r)" % (k, v, optional)
    return None


def cmd_verify(args):
    pub = load_public_key(args.key)
    host, repo, ref = parse_image(args.image)
    reg = Registry(host, args.user)
    digest = resolve(reg, repo, ref)
    required = annotations_arg(args.annotation)
    got = reg.get_manifest(repo, sig_tag(digest))
    results = []
    if got is not None:
        for i, layer in enumerate(json.loads(got[0]).get("layers") or []):
            err = check_layer(reg, repo, pub, digest, layer, required)
            res = {"layer": i, "digest": layer.get("digest"), "ok": err is None}
            if err:
                res["error"] = err
            results.append(res)
    verified = any(r["ok"] for r in results)
    out = {"digest": digest, "tag": sig_tag(digest), "found": got is not None, "signatures": results, "verified": verified}
    return out, 0 if verified else 1


def main():
    ap = argparse.ArgumentParser(prog="cosign-legacy.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    kg = sub.add_parser("keygen")
    kg.add_argument("--output-key-prefix", default="cosign")
    kg.add_argument("--plain", action="store_true")
    kg.add_argument("--force", action="store_true")
    for name in ("sign", "verify"):
        p = sub.add_parser(name)
        p.add_argument("--key", required=True)
        p.add_argument("-a", "--annotation", action="append")
        p.add_argument("--user")
        p.add_argument("image")
    args = ap.parse_args()
    try:
        out, code = {"keygen": cmd_keygen, "sign": cmd_sign, "verify": cmd_verify}[args.cmd](args)
    except (UsageError, ValueError, OSError) as e:
        print("cosign-legacy.py: %s" % e, file=sys.stderr)
        return 2
    print(json.dumps(out, sort_keys=True))
    return code


if __name__ == "__main__":
    sys.exit(main())
