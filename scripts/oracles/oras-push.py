#!/usr/bin/env python3
"""Push and pull OCI artifacts with oras-py (PyPI "oras" 0.2.43), a third-party client, for sigil's tests.

usage:
  oras-push.py push [--artifact-type TYPE | --config-type TYPE] [-a KEY=VALUE]... [--tag TAG]
                    [--user USER:PASS] SUBJECT FILE[:MEDIATYPE]...
  oras-push.py pull [--user USER:PASS] --out DIR REFERENCE

push  uploads FILEs as layers and a manifest whose "subject" is SUBJECT (HOST:PORT/REPO:TAG or
      HOST:PORT/REPO@sha256:HEX). The subject descriptor is built from the bytes the registry serves for
      SUBJECT (oras-py's Subject.from_manifest re-serialises the JSON and gets the digest wrong).
      --artifact-type sets the manifest's "artifactType" (oras-py 0.2.43 has no such option, so it is
      injected) with the empty config (application/vnd.oci.empty.v1+json, "{}"); --config-type instead
      sets the config media type (config "{}") and leaves artifactType out. Without --tag the manifest
      is pushed by digest (untagged), as `oras attach` does.
      Prints {"digest", "size", "manifest", "subject", "ociSubject", "dockerContentDigest"}: the digest
      of the exact bytes oras-py sent, and the OCI-Subject / Docker-Content-Digest response headers.
pull  fetches REFERENCE's manifest (checking it against the digest when REFERENCE has one) and writes
      its layers into DIR with oras-py's pull, then checks every file against its layer digest and size.
      Prints {"digest", "manifest", "files": [{"path", "digest", "size", "mediaType"}]}.

Only loopback registries (127.0.0.0/8, localhost, ::1) over plain HTTP. Runs under
$SIGIL_ORACLES_HOME/venv (default ~/.cache/sigil/oracles/venv), re-executing itself there if needed.
Exit status 1 with a one-line reason on any failure.
"""
import argparse
import contextlib
import hashlib
import ipaddress
import json
import os
import re
import sys
import tempfile

sys.dont_write_bytecode = True

EMPTY_MT = "application/vnd.oci.empty.v1+json"
MANIFEST_MT = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = ", ".join([
    MANIFEST_MT,
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])
REF_RE = re.compile(r"^(?P<host>[^/]+)/(?P<repo>[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
                    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
                    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?(?:@(?P<digest>sha256:[a-f0-9]{64}))?$")


def die(msg):
    print(f"oras-push.py: {msg}", file=sys.stderr)
    sys.exit(1)


def use_venv():
    """Re-exec under the oracle venv's interpreter when oras-py is not importable here."""
    try:
        import oras.client  # noqa: F401
        return
    except ImportError:
        pass
    home = os.environ.get("SIGIL_ORACLES_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "sigil", "oracles")
    py = os.path.join(home, "venv", "bin", "python")
    if os.path.exists(py) and os.environ.get("SIGIL_ORAS_REEXEC") != "1":
        os.environ["SIGIL_ORAS_REEXEC"] = "1"
        os.execv(py, [py, os.path.realpath(__file__)] + sys.argv[1:])
    die(f"oras-py is not installed (expected a venv at {os.path.dirname(os.path.dirname(py))}; "
        "run scripts/install-test-deps.sh)")


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def parse_ref(ref):
    m = REF_RE.match(ref)
    if not m:
        die(f"bad reference {ref!r}: want HOST:PORT/REPO[:TAG][@sha256:HEX]")
    host = m.group("host")
    name = host[1:].split("]")[0] if host.startswith("[") else host.rsplit(":", 1)[0]
    loopback = name == "localhost"
    with contextlib.suppress(ValueError):
        loopback = loopback or ipaddress.ip_address(name).is_loopback
    if not loopback:
        die(f"refusing non-loopback registry {host!r}")
    return host, m.group("repo"), m.group("tag"), m.group("digest")


def make_client(host, user):
    import oras.client
    import requests

    backend = "token"
    if user:
        r = requests.get(f"http://{host}/v2/", timeout=30)
        challenge = r.headers.get("WWW-Authenticate", "")
        if r.status_code == 401 and challenge.lower().startswith("basic"):
            backend = "basic"  # oras-py's token backend would take a Basic realm for a token URL
        elif r.status_code == 401:
            die(f"only Basic auth is supported here, the registry asks for {challenge!r}")
    client = oras.client.OrasClient(hostname=host, insecure=True, auth_backend=backend)
    if user:
        if ":" not in user:
            die("--user wants USER:PASS")
        client.auth.set_basic_auth(*user.split(":", 1))
    return client


def fetch_manifest(client, host, repo, ref):
    """GET a manifest raw through oras-py's session -> (bytes, media type)."""
    resp = client.do_request(f"http://{host}/v2/{repo}/manifests/{ref}", "GET", headers={"Accept": ACCEPT})
    if resp.status_code != 200:
        die(f"GET manifest {repo}:{ref} -> HTTP {resp.status_code}: {resp.text[:300]!r}")
    body = resp.content
    mt = resp.headers.get("Content-Type", "").split(";")[0].strip()
    if not mt:
        mt = json.loads(body).get("mediaType", "")
    return body, mt


def cmd_push(args):
    import oras.oci
    import requests.models

    host, repo, tag, digest = parse_ref(args.subject)
    client = make_client(host, args.user)
    body, media_type = fetch_manifest(client, host, repo, digest or tag or "latest")
    subject_digest = sha256(body)
    if digest and digest != subject_digest:
        die(f"registry served bytes hashing to {subject_digest} for {digest}")
    subject = oras.oci.Subject(mediaType=media_type, digest=subject_digest, size=len(body))

    sent = {}
    original_upload = client.upload_manifest

    def upload_manifest(manifest, container):
        if args.artifact_type:
            manifest["artifactType"] = args.artifact_type
        # requests serialises json= bodies like this; the digest must be known before the PUT when
        # pushing by digest. The bytes actually sent are compared afterwards.
        raw = requests.models.complexjson.dumps(manifest, allow_nan=False).encode("utf-8")
        sent["bytes"], sent["manifest"] = raw, manifest
        if not args.tag:
            container.digest = sha256(raw)
        resp = original_upload(manifest, container)
        sent["response"] = resp
        return resp

    client.upload_manifest = upload_manifest
    annotations = {}
    for a in args.annotation:
        if "=" not in a:
            die(f"bad annotation {a!r}: want KEY=VALUE")
        k, v = a.split("=", 1)
        annotations[k] = v
    for f in args.files:
        path = f.rsplit(":", 1)[0] if ":" in f and not os.path.exists(f) else f
        if not os.path.isfile(path):
            die(f"no such file: {path}")

    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
        config = None
        if args.artifact_type or args.config_type:
            cfg = os.path.join(tmp, "config.json")
            with open(cfg, "w") as fh:
                fh.write("{}")
            config = f"{cfg}:{EMPTY_MT if args.artifact_type else args.config_type}"
        target = f"{host}/{repo}:{args.tag or 'untagged'}"
        try:
            client.push(target=target, files=args.files, subject=subject, manifest_config=config,
                        manifest_annotations=annotations or None, disable_path_validation=True, quiet=True)
        except Exception as e:  # oras-py raises ValueError, requests errors, jsonschema errors...
            die(f"oras-py push failed: {type(e).__name__}: {e}")
    resp = sent.get("response")
    if resp is None:
        die("oras-py did not upload a manifest")
    if resp.status_code != 201:
        die(f"manifest PUT -> HTTP {resp.status_code}: {resp.text[:300]!r}")
    wire = resp.request.body
    wire = wire.encode("utf-8") if isinstance(wire, str) else wire
    if wire != sent["bytes"]:
        die("oras-py sent other manifest bytes than expected; cannot tell the digest")
    print(json.dumps({
        "digest": sha256(wire),
        "size": len(wire),
        "manifest": sent["manifest"],
        "subject": {"mediaType": subject.mediaType, "digest": subject.digest, "size": subject.size},
        "ociSubject": resp.headers.get("OCI-Subject"),
        "dockerContentDigest": resp.headers.get("Docker-Content-Digest"),
    }))


def cmd_pull(args):
    host, repo, tag, digest = parse_ref(args.reference)
    client = make_client(host, args.user)
    body, _ = fetch_manifest(client, host, repo, digest or tag or "latest")
    if digest and sha256(body) != digest:
        die(f"registry served a manifest hashing to {sha256(body)} for {digest}")
    manifest = json.loads(body)
    os.makedirs(args.out, exist_ok=True)
    with contextlib.redirect_stdout(sys.stderr):
        try:
            paths = client.pull(target=args.reference, outdir=args.out)
        except Exception as e:
            die(f"oras-py pull failed: {type(e).__name__}: {e}")
    files = []
    for layer, path in zip(manifest.get("layers", []), paths):
        with open(path, "rb") as fh:
            data = fh.read()
        if sha256(data) != layer["digest"] or len(data) != layer["size"]:
            die(f"{path}: content does not match layer {layer['digest']} ({layer['size']} bytes)")
        files.append({"path": os.path.abspath(path), "digest": layer["digest"], "size": len(data),
                      "mediaType": layer["mediaType"]})
    if len(files) != len(manifest.get("layers", [])):
        die(f"oras-py wrote {len(paths)} files for {len(manifest.get('layers', []))} layers")
    print(json.dumps({"digest": sha256(body), "manifest": manifest, "files": files}))


def main():
    ap = argparse.ArgumentParser(prog="oras-push.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("push")
    p.add_argument("subject")
    p.add_argument("files", nargs="+", metavar="FILE[:MEDIATYPE]")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--artifact-type")
    kind.add_argument("--config-type")
    p.add_argument("-a", "--annotation", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--tag")
    p.add_argument("--user", metavar="USER:PASS")
    q = sub.add_parser("pull")
    q.add_argument("reference")
    q.add_argument("--out", required=True)
    q.add_argument("--user", metavar="USER:PASS")
    args = ap.parse_args()
    use_venv()
    cmd_push(args) if args.cmd == "push" else cmd_pull(args)


if __name__ == "__main__":
    main()
