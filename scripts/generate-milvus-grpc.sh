#!/usr/bin/env bash
# Regenerates Sources/MilvusGRPC, the Milvus protocol in Swift, so a build needs no protoc: the
# protocol's descriptors come from the pymilvus wheel (scripts/milvus_descriptors.py cuts them down to
# the calls Loupe makes), protoc is Debian's protobuf-compiler, and its two Swift plugins are built
# from this package's own dependencies (swift-protobuf, grpc-swift-protobuf).
set -euo pipefail
cd "$(dirname "$0")/.."
pymilvus_version=3.0.2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
command -v protoc >/dev/null || { $sudo apt-get update -qq; DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends protobuf-compiler; }
venv=.build/milvus-proto-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet "pymilvus==$pymilvus_version"
swift build -c release --product protoc-gen-swift
swift build -c release --product protoc-gen-grpc-swift-2
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
files=$("$venv/bin/python" scripts/milvus_descriptors.py "$work/milvus.pb")
out=Sources/MilvusGRPC
rm -f "$out"/*.swift
mkdir -p "$out"
# shellcheck disable=SC2086  # the file names are one word each
protoc --descriptor_set_in="$work/milvus.pb" \
  --plugin="$bin/protoc-gen-swift" --swift_out="$out" --swift_opt=Visibility=Public \
  --plugin="$bin/protoc-gen-grpc-swift-2" --grpc-swift-2_out="$out" \
  --grpc-swift-2_opt=Visibility=Public,Client=true,Server=false \
  $files
# Files without a service get an empty gRPC file.
grep -l "contained no services" "$out"/*.grpc.swift | xargs rm -f
echo "generated from pymilvus $pymilvus_version: $(ls "$out")"
