#!/usr/bin/env bash
# usage: scripts/bench.sh [--quick] [--verify | --registry | --webhook | --notary] [-- SIGIL-BENCH-ARGS...]
#
# THE benchmark command: sigil's embedded registry against Debian's docker-registry 2.8.2, same machine,
# same run, then the signature-verification benchmark. It
#   1. installs docker-registry if missing (scripts/install-test-deps.sh when present, else apt-get);
#   2. builds `cargo build --release -p sigil -p sigil-bench`;
#   3. starts docker-registry (filesystem storage in a fresh temp dir, deletes enabled, access log off,
#      output to a log file) and `sigil registry serve` (fresh temp root, SIGIL_LOG=warn unless set) on
#      free loopback ports, and waits until both answer GET /v2/;
#   4. runs target/release/sigil-bench --suite all --sigil URL --peer URL [--quick] [SIGIL-BENCH-ARGS...]:
#      the registry suite (manifest GET/s, blob push and pull throughput), then the verify suite
#      (verifications/s of a keyless bundle offline, of a legacy key signature and a key bundle referrer
#      on sigil's registry, and registry requests per verification); see `sigil-bench --help`;
#   5. stops the servers and deletes the temp dirs on exit (also on Ctrl-C or failure).
# --notary runs only the Notary verification suite (JWS/COSE verifications/s, requests per verification).
# --verify runs only the verify suite (no docker-registry needed or started); --registry only the
# registry suite. --webhook runs only the admission-webhook suite: `sigil serve` is run once to generate
# a serving certificate, then `sigil webhook serve` (empty policies dir, the benchmark drops its policy
# in) is benchmarked with AdmissionReviews over HTTPS: cached and uncached reviews/s and p50/p99, a
# 10-image Pod vs a 1-image Pod, RSS idle and under load, registry requests per image.
# --quick is a smoke run (1 s phases, small images). Output: a table and a
# `BENCH_JSON {...}` line for the registry suite, a table and a `BENCH_JSON_VERIFY {...}` line for the verify
# suite, `BENCH_JSON_WEBHOOK {...}` for the webhook suite. Exit status 0 even if targets are missed;
# non-zero only on errors.
# Environment: BENCH_KEEP=1 keeps the temp dir (logs, storage) for inspection.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

BENCH_ARGS=()
SUITE=all
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) BENCH_ARGS+=(--quick) ;;
    --verify) SUITE=verify ;;
    --registry) SUITE=registry ;;
    --) shift; BENCH_ARGS+=("$@"); break ;;
    --webhook) SUITE=webhook ;;
    --notary) SUITE=notary ;;
    -h | --help) sed -n '2,26s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { echo "bench.sh: $*" >&2; }
die() { say "$*"; exit 1; }

# --- 1. docker-registry ---------------------------------------------------------------------------------------
NEED_PEER=1
[ "$SUITE" = verify ] && NEED_PEER=0
[ "$SUITE" = webhook ] && NEED_PEER=0
[ "$SUITE" = notary ] && NEED_PEER=0
if [ "$NEED_PEER" = 1 ] && ! command -v docker-registry >/dev/null 2>&1; then
  if [ -x scripts/install-test-deps.sh ]; then
    say "docker-registry missing: running scripts/install-test-deps.sh"
    bash scripts/install-test-deps.sh
  else
    sudo=
    [ "$(id -u)" = 0 ] || sudo=sudo
    say "docker-registry missing: apt-get install docker-registry"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends docker-registry
  fi
fi
[ "$NEED_PEER" = 0 ] || command -v docker-registry >/dev/null 2>&1 || die "docker-registry is still missing"
command -v curl >/dev/null 2>&1 || die "curl is required"

# --- 2. build -------------------------------------------------------------------------------------------------
say "cargo build --release -p sigil -p sigil-bench"
cargo build --release -p sigil -p sigil-bench
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
SIGIL=$TARGET_DIR/release/sigil
BENCH=$TARGET_DIR/release/sigil-bench
[ -x "$SIGIL" ] && [ -x "$BENCH" ] || die "release binaries not found under $TARGET_DIR/release"

# --- 3. servers -----------------------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sigil-bench.XXXXXX")
PIDS=()
cleanup() {
  local pid i
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for i in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then
    say "kept $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# free_port [EXCLUDED]: a random loopback port nobody listens on, below the kernel's ephemeral range (so
# an outgoing connection cannot take it between this check and the server's bind)
free_port() {
  local p lo
  lo=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  [ "${lo:-0}" -gt 11000 ] 2>/dev/null || lo=32768
  for _ in $(seq 200); do
    p=$((10000 + RANDOM % (lo - 10000)))
    [ "$p" != "${1:-}" ] && ! port_in_use "$p" && { echo "$p"; return 0; }
  done
  die "no free port found"
}
# wait_v2 NAME URL PID LOG: until GET URL/v2/ answers 200 (max 30 s) while PID lives
wait_v2() {
  local code
  for _ in $(seq 300); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$2/v2/" || true)
    [ "$code" = 200 ] && return 0
    if ! kill -0 "$3" 2>/dev/null; then
      tail -n 30 "$4" >&2 || true
      die "$1 exited before answering (log above)"
    fi
    sleep 0.1
  done
  tail -n 30 "$4" >&2 || true
  die "$1 did not answer 200 on $2/v2/ within 30 s (last status $code)"
}

PEER_PORT=
PEER_PID=
mkdir -p "$WORK/peer/storage" "$WORK/sigil/root"
if [ "$NEED_PEER" = 1 ]; then
PEER_PORT=$(free_port)
cat >"$WORK/peer/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/peer/storage
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$PEER_PORT
  secret: sigil-bench-$PEER_PORT
EOF
docker-registry serve "$WORK/peer/config.yml" >"$WORK/peer/registry.log" 2>&1 </dev/null &
PIDS+=("$!")
PEER_PID=$!
PEER_URL=http://127.0.0.1:$PEER_PORT
wait_v2 docker-registry "$PEER_URL" "$PEER_PID" "$WORK/peer/registry.log"
PEER_VERSION=$(docker-registry --version 2>/dev/null | awk '{print $NF}')
fi

SIGIL_PORT=$(free_port "$PEER_PORT")
SIGIL_LOG=${SIGIL_LOG:-warn} "$SIGIL" registry serve --addr "127.0.0.1:$SIGIL_PORT" --root "$WORK/sigil/root" \
  >"$WORK/sigil/serve.log" 2>&1 </dev/null &
PIDS+=("$!")
SIGIL_PID=$!
SIGIL_URL=http://127.0.0.1:$SIGIL_PORT
wait_v2 "sigil registry serve" "$SIGIL_URL" "$SIGIL_PID" "$WORK/sigil/serve.log"

SIGIL_DESC="sigil $(git describe --always --dirty 2>/dev/null || echo "?") on $SIGIL_URL (pid $SIGIL_PID)"
if [ "$NEED_PEER" = 1 ]; then
  say "docker-registry $PEER_VERSION on $PEER_URL (pid $PEER_PID), $SIGIL_DESC"
else
  say "$SIGIL_DESC"
fi

# --- 3b. the webhook (--webhook) ------------------------------------------------------------------------------
WEBHOOK_PID=
if [ "$SUITE" = webhook ]; then
  # `sigil serve` generates a CA and serving certificate under its home; run it once for that.
  "$SIGIL" serve --home "$WORK/wh-home" --registry-addr 127.0.0.1:0 --webhook-addr 127.0.0.1:0 \
    >"$WORK/wh-home.log" 2>&1 </dev/null &
  GEN_PID=$!
  for _ in $(seq 300); do
    grep -q '^  caBundle:' "$WORK/wh-home.log" 2>/dev/null && break
    kill -0 "$GEN_PID" 2>/dev/null || { cat "$WORK/wh-home.log" >&2; die "sigil serve exited"; }
    sleep 0.1
  done
  kill "$GEN_PID" 2>/dev/null || true
  wait "$GEN_PID" 2>/dev/null || true
  [ -s "$WORK/wh-home/tls/tls.crt" ] || die "no serving certificate was generated"
  mkdir -p "$WORK/policies"
  WEBHOOK_PORT=$(free_port "$SIGIL_PORT")
  SIGIL_LOG=${SIGIL_LOG:-warn} "$SIGIL" webhook serve --addr "127.0.0.1:$WEBHOOK_PORT" \
    --policies "$WORK/policies" --tls-cert "$WORK/wh-home/tls/tls.crt" --tls-key "$WORK/wh-home/tls/tls.key" \
    >"$WORK/webhook.log" 2>&1 </dev/null &
  PIDS+=("$!")
  WEBHOOK_PID=$!
  WEBHOOK_URL=https://127.0.0.1:$WEBHOOK_PORT
  for i in $(seq 300); do
    curl -sf --cacert "$WORK/wh-home/tls/ca.crt" --max-time 1 "$WEBHOOK_URL/healthz" >/dev/null && break
    kill -0 "$WEBHOOK_PID" 2>/dev/null || { cat "$WORK/webhook.log" >&2; die "sigil webhook serve exited"; }
    [ "$i" = 300 ] && die "sigil webhook serve did not answer on $WEBHOOK_URL/healthz"
    sleep 0.1
  done
  say "sigil webhook serve on $WEBHOOK_URL (pid $WEBHOOK_PID)"
fi

# --- 4. benchmark ---------------------------------------------------------------------------------------------
status=0
if [ "$SUITE" = webhook ]; then
  "$BENCH" --suite webhook --sigil "$SIGIL_URL" --webhook "$WEBHOOK_URL" --webhook-ca "$WORK/wh-home/tls/ca.crt" \
    --webhook-policies "$WORK/policies" --webhook-pid "$WEBHOOK_PID" "${BENCH_ARGS[@]}" || status=$?
elif [ "$NEED_PEER" = 1 ]; then
  "$BENCH" --suite "$SUITE" --sigil "$SIGIL_URL" --peer "$PEER_URL" --peer-label "docker-registry" \
    "${BENCH_ARGS[@]}" || status=$?
elif [ "$SUITE" = notary ]; then
  "$BENCH" --suite notary --sigil "$SIGIL_URL" "${BENCH_ARGS[@]}" || status=$?
else
  "$BENCH" --suite verify --sigil "$SIGIL_URL" "${BENCH_ARGS[@]}" || status=$?
fi
for pid in $PEER_PID "$SIGIL_PID" $WEBHOOK_PID; do
  kill -0 "$pid" 2>/dev/null || { say "a server (pid $pid) died during the benchmark"; status=1; }
done
exit "$status"
