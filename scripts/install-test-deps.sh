#!/usr/bin/env bash
# usage: scripts/install-test-deps.sh [--force]
#
# Installs what sigil's oracle tests drive, from the distribution's, the Python and the npm package registries only:
#   apt:  docker-registry skopeo umoci jq apache2-utils curl ca-certificates
#         (+ python3 / python3-venv when `python3 -m venv` cannot work, nodejs / npm when missing)
#   pip:  scripts/oracles/requirements.txt (oras-py, cryptography, PyNaCl, sigstore-python and their
#         dependencies, all pinned) into the venv $SIGIL_ORACLES_HOME/venv (default $HOME/.cache/sigil/oracles)
#   npm:  scripts/oracles/npm/package.json + package-lock.json (@sigstore/mock, @sigstore/cli; every package pinned) with
#         `npm ci` into $SIGIL_ORACLES_HOME/npm; needs Node >= 20.17
# Idempotent: each part is skipped when it is already in place (dpkg status for apt; stamp files holding the
# Python/Node version and the hash of the pinned lists), so a re-run takes a fraction of a second.
# Concurrent runs are serialised with flock. Quiet on success; on failure it prints the tool's log.
# --force rebuilds the venv and node_modules.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ORACLES_HOME=${SIGIL_ORACLES_HOME:-$HOME/.cache/sigil/oracles}
REQS=$REPO/scripts/oracles/requirements.txt
FORCE=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h | --help) sed -n '2,15s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "install-test-deps: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

mkdir -p "$ORACLES_HOME"
exec 8>"$ORACLES_HOME/.install.lock"
flock 8

log=$(mktemp "${TMPDIR:-/tmp}/sigil-install.XXXXXX")
trap 'rm -f "$log"' EXIT
fail() {
  echo "install-test-deps: $1" >&2
  [ -s "$log" ] && tail -n 40 "$log" >&2
  exit 1
}

# --- Debian packages -----------------------------------------------------------------------------------------
want=(docker-registry skopeo umoci jq apache2-utils curl ca-certificates)
if ! command -v python3 >/dev/null 2>&1; then
  want+=(python3 python3-venv)
elif ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  want+=(python3-venv)
fi
command -v node >/dev/null 2>&1 || want+=(nodejs)
command -v npm >/dev/null 2>&1 || want+=(npm)
missing=()
for pkg in "${want[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "install-test-deps: apt-get install ${missing[*]}" >&2
  $sudo apt-get update -qq >"$log" 2>&1 || fail "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >>"$log" 2>&1 || fail "apt-get install ${missing[*]} failed"
fi
for tool in docker-registry skopeo umoci jq htpasswd curl python3 node npm; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is still missing after the apt step"
done

# --- Python venv (oras-py, cryptography, PyNaCl, sigstore-python) --------------------------------------------------------------------------------
venv=$ORACLES_HOME/venv
stamp="$(python3 -c 'import sys; print(sys.version.split()[0])') $(sha256sum <"$REQS" | cut -c1-64)"
if [ "$FORCE" = 1 ] || [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.sigil-stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "install-test-deps: creating $venv (oras-py, cryptography, PyNaCl, sigstore-python)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" >"$log" 2>&1 || fail "python3 -m venv $venv failed"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-input -r "$REQS" >>"$log" 2>&1 \
    || { rm -rf "$venv"; fail "pip install -r $REQS failed"; }
  "$venv/bin/python" -c 'import oras.client, oras.oci, requests, cryptography, nacl.secret, sigstore.sign' \
    >>"$log" 2>&1 || { rm -rf "$venv"; fail "the oracle packages do not import in $venv"; }
  echo "$stamp" >"$venv/.sigil-stamp"
fi

# --- npm packages (@sigstore/mock) -----------------------------------------------------------------------------
node_version=$(node -p 'process.versions.node')
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 17) ? 0 : 1)' \
  || fail "Node $node_version is too old for @sigstore/mock 0.12.1 (needs >= 20.17)"
npm_src=$REPO/scripts/oracles/npm
npm_dir=$ORACLES_HOME/npm
npm_stamp="$node_version $(cat "$npm_src/package.json" "$npm_src/package-lock.json" | sha256sum | cut -c1-64)"
if [ "$FORCE" = 1 ] || [ ! -d "$npm_dir/node_modules/@sigstore/mock" ] \
  || [ "$(cat "$npm_dir/.sigil-stamp" 2>/dev/null)" != "$npm_stamp" ]; then
  echo "install-test-deps: npm ci in $npm_dir (@sigstore/mock, @sigstore/cli)" >&2
  rm -rf "$npm_dir"
  mkdir -p "$npm_dir"
  cp "$npm_src/package.json" "$npm_src/package-lock.json" "$npm_dir/"
  (cd "$npm_dir" && npm ci --ignore-scripts --no-audit --no-fund) >"$log" 2>&1 \
    || { rm -rf "$npm_dir"; fail "npm ci in $npm_dir failed"; }
  (cd "$npm_dir" && node -e 'require("@sigstore/mock")' && node node_modules/@sigstore/cli/bin/run --version) \
    >>"$log" 2>&1 || { rm -rf "$npm_dir"; fail "@sigstore/mock or @sigstore/cli does not load from $npm_dir"; }
  echo "$npm_stamp" >"$npm_dir/.sigil-stamp"
fi
