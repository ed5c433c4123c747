#!/usr/bin/env bash
# The device-side half of tools/gpu/prepare.sh: unpacks .carry/ and runs a check. Logs go to $OUT.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/marlin-node
if [ ! -x /tmp/marlin-node/node ]; then
  xz -dc .carry/node.xz > /tmp/marlin-node/node && chmod +x /tmp/marlin-node/node
fi
export PATH=/tmp/marlin-node:$PATH
tar -xJf .carry/tree.tar.xz
export MARLIN_COMMIT=$(cat .carry/commit 2>/dev/null || echo unknown)
if [ -d .carry/model ]; then
  mkdir -p /tmp/marlin-model && cp .carry/model/*.json .carry/model/*.txt .carry/model/*.md /tmp/marlin-model/
  if [ ! -f /tmp/marlin-model/model.safetensors ]; then
    xz -dc .carry/model/model.planes.xz > /tmp/marlin-model.planes &&
      node tools/gpu/planes.mjs join /tmp/marlin-model.planes /tmp/marlin-model/model.safetensors
  fi
  export MARLIN_FIXTURE_DIR=/tmp/marlin-model
fi
echo "== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null)"
echo "== node $(node --version), nvcc $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*'), commit $MARLIN_COMMIT"
vitest="$root/node_modules/vitest/vitest.mjs"
what=${1:-test}
shift || true
case "$what" in
  test)
    rc=0
    for pkg in packages/*/; do
      [ -d "$pkg/test" ] || continue
      name=$(basename "$pkg")
      echo "== vitest $name"
      (cd "$pkg" && node "$vitest" run --reporter=verbose "$@" 2>&1) | tee "$OUT/test-$name.log" | grep -vE '^ +✓' | tail -60
      [ "${PIPESTATUS[0]}" = 0 ] || rc=1
    done
    exit $rc ;;
  kernel-bench) (cd packages/kernel && node bench/run.mjs "$@") 2>&1 | tee "$OUT/kernel-bench.log"; cp bench/results/kernel-bench.json "$OUT/"; exit 0 ;;
  engine-bench) (cd packages/engine && node bench/run.mjs "$@") 2>&1 | tee "$OUT/engine-bench.log"; cp bench/results/engine-bench.json bench/results/engine-bench.svg "$OUT/"; exit 0 ;;
  sh) bash -c "$*" ;;
  *) echo "unknown check $what" >&2; exit 2 ;;
esac
