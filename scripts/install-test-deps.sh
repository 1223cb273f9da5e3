#!/usr/bin/env bash
# usage: scripts/install-test-deps.sh [--force]
#
# Installs what sigil's oracle tests drive, from the distribution's and the Python package registries only:
#   apt:  docker-registry skopeo umoci jq apache2-utils curl ca-certificates
#         (+ python3 / python3-venv when `python3 -m venv` cannot work)
#   pip:  scripts/oracles/requirements.txt (oras-py and its dependencies, all pinned) into the venv
#         $SIGIL_ORACLES_HOME/venv (default $HOME/.cache/sigil/oracles/venv)
# Idempotent: each part is skipped when it is already in place (dpkg status for apt; a stamp file holding the
# Python version and the hash of requirements.txt for the venv), so a re-run takes a fraction of a second.
# Concurrent runs are serialised with flock. Quiet on success; on failure it prints the tool's log.
# --force rebuilds the venv.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ORACLES_HOME=${SIGIL_ORACLES_HOME:-$HOME/.cache/sigil/oracles}
REQS=$REPO/scripts/oracles/requirements.txt
FORCE=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h | --help) sed -n '2,12s/^# \{0,1\}//p' "$0"; exit 0 ;;
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
for tool in docker-registry skopeo umoci jq htpasswd curl python3; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is still missing after the apt step"
done

# --- Python venv with oras-py --------------------------------------------------------------------------------
venv=$ORACLES_HOME/venv
stamp="$(python3 -c 'import sys; print(sys.version.split()[0])') $(sha256sum <"$REQS" | cut -c1-64)"
if [ "$FORCE" = 1 ] || [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.sigil-stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "install-test-deps: creating $venv (oras-py)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" >"$log" 2>&1 || fail "python3 -m venv $venv failed"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-input -r "$REQS" >>"$log" 2>&1 \
    || { rm -rf "$venv"; fail "pip install -r $REQS failed"; }
  "$venv/bin/python" -c 'import oras.client, oras.oci, requests' >>"$log" 2>&1 \
    || { rm -rf "$venv"; fail "oras-py does not import in $venv"; }
  echo "$stamp" >"$venv/.sigil-stamp"
fi
