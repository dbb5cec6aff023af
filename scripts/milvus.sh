#!/usr/bin/env bash
# A local Milvus for `loupe --store milvus://…` and for the tests: Milvus Lite's gRPC server (PyPI's
# milvus-lite, which speaks the protocol of a Milvus cluster) in a venv of its own.
#
#   scripts/milvus.sh start   starts it (once; again is a no-op) and prints its address
#   scripts/milvus.sh url     prints the address of the running server
#   scripts/milvus.sh stop    stops it (the data stays)
#
# LOUPE_MILVUS_HOME (default /var/tmp/loupe-milvus) holds the venv and, unless LOUPE_MILVUS_DATA names
# another folder, the data; LOUPE_MILVUS_PORT (default 19530) is the port on 127.0.0.1.
set -euo pipefail

home=${LOUPE_MILVUS_HOME:-/var/tmp/loupe-milvus}
port=${LOUPE_MILVUS_PORT:-19530}
data=${LOUPE_MILVUS_DATA:-$home/data}
venv=$home/venv
pid_file=$data.pid
log=$data.log
# The server imports its gRPC stubs from pymilvus.
packages=(milvus-lite==3.2.2 pymilvus==3.0.2)

install() {
  [ -x "$venv/bin/milvus-lite" ] && return
  python3 -m venv "$venv" 2>/dev/null || {
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv
    python3 -m venv "$venv"
  }
  "$venv/bin/pip" install --quiet "${packages[@]}"
}

running() {
  [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

case "${1:-}" in
  start)
    install
    mkdir -p "$data"
    if ! running; then
      setsid "$venv/bin/milvus-lite" server --data-dir "$data" --host 127.0.0.1 --port "$port" >"$log" 2>&1 </dev/null &
      echo $! >"$pid_file"
      for _ in $(seq 1 300); do
        grep -q "listening on" "$log" 2>/dev/null && break
        running || { cat "$log" >&2; exit 1; }
        sleep 0.1
      done
      grep -q "listening on" "$log" || { echo "Milvus Lite did not start: see $log" >&2; exit 1; }
    fi
    echo "milvus://127.0.0.1:$port"
    ;;
  url)
    running || { echo "Milvus Lite is not running" >&2; exit 1; }
    echo "milvus://127.0.0.1:$port"
    ;;
  stop)
    if running; then
      kill "$(cat "$pid_file")"
      for _ in $(seq 1 100); do running || break; sleep 0.1; done
    fi
    rm -f "$pid_file"
    ;;
  *)
    echo "usage: $0 start|url|stop" >&2
    exit 2
    ;;
esac
