#!/usr/bin/env bash
# On the GPU machine: the published @marlin/kernel, installed by name from a local registry into a
# clean folder, runs a GPU matmul with its CUDA prebuild (checked against an fp64 reference).
# Prepared here by `tools/gpu/prepare.sh --release` (Node, npm, Verdaccio, the release tarballs and
# the kernel's third-party dependencies in .carry/); then, with the device tool:
#   run(carry=[".carry"], command="bash tools/gpu/release-check.sh")
# Log: $OUT/release-check.log. Exit 0 when the install and the GPU matmul passed.
# (MARLIN_CHECK_DEVICE=cpu and MARLIN_NODE_DIR=<dir> rehearse it on a machine without a GPU.)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/out}
bin=${MARLIN_NODE_DIR:-/tmp/marlin-node}
device=${MARLIN_CHECK_DEVICE:-cuda}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$OUT" "$bin"
started=$(date +%s)
[ -x "$bin/node" ] || { xz -dc .carry/node.xz > "$bin/node" && chmod +x "$bin/node"; }
tar -xJf .carry/release.tar.xz || { echo "no .carry/release.tar.xz: run tools/gpu/prepare.sh --release" >&2; exit 2; }
for tool in npm npx; do
  printf '#!/bin/sh\nexec "%s/node" "%s/.carry-release/npm/bin/%s-cli.js" "$@"\n' "$bin" "$root" "$tool" > "$bin/$tool"
  chmod +x "$bin/$tool"
done
export PATH=$bin:$PATH
{
  echo "== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader 2>/dev/null | head -1)"
  echo "== node $(node --version), npm $(npm --version), commit $(cat .carry/commit 2>/dev/null || echo unknown)"
  # The carried tars are the packed tarballs' contents byte for byte; npm publishes them re-gzipped.
  (cd .carry-release/tarballs && sha256sum -c SHA256SUMS && for t in *.tar; do gzip -n -c "$t" > "${t%.tar}.tgz"; done) || exit 2
  kernel_tar=$(ls .carry-release/tarballs/marlin-kernel-*.tar)
  tar -xf "$kernel_tar" -C "$scratch" package/prebuilds
  echo "== images in the CUDA prebuild (cuobjdump):"
  cuobjdump --list-elf "$scratch"/package/prebuilds/*/marlin-cuda.node 2>&1 | sed -E 's/.*\.(sm_[0-9a-z]+)\..*/\1/' | sort | uniq -c
  cuobjdump --list-ptx "$scratch"/package/prebuilds/*/marlin-cuda.node 2>&1 | sed -E 's/.*\.(sm_[0-9a-z]+)\..*/ptx \1/' | sort | uniq -c
  node tools/release/registry-check.mjs --tarballs .carry-release/tarballs --offline --storage .carry-release/storage \
    --steps kernel --matmul-device "$device" --timeout 240
  rc=$?
  echo "== release check exit $rc in $(( $(date +%s) - started )) s"
  exit $rc
} 2>&1 | tee "$OUT/release-check.log"
exit "${PIPESTATUS[0]}"
