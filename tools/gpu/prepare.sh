#!/usr/bin/env bash
# Prepares the ignored folder .carry/ for the GPU machine (no Node.js, no network there) and prints
# the `run` call to make. Usage: tools/gpu/prepare.sh [--no-build] [--with-model] [--release]
#   --no-build    reuse what is built (default: build everything with MARLIN_CUDA_ARCHS=90)
#   --with-model  also carry the tiny-llama fixture (for engine / gptq checks)
#   --release     carry for tools/gpu/release-check.sh instead: Node, npm, Verdaccio and the release
#                 tarballs (tools/release/carry.mjs; builds the release prebuilds when missing)
# The device-side half is tools/gpu/on-device.sh, which travels with the working tree.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
build=1
model=0
release=0
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    --with-model) model=1 ;;
    --release) release=1 ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done

if [ "$release" = 1 ]; then
  # The packages' TypeScript only: the local addon stays as built (the release addons come from
  # tools/release/build-prebuilds.mjs, which carry.mjs runs when they are missing).
  if [ "$build" = 1 ]; then
    node tools/release/build-ts.mjs >/tmp/marlin-carry-build.log 2>&1 ||
      { tail -40 /tmp/marlin-carry-build.log; echo "build failed (log: /tmp/marlin-carry-build.log)" >&2; exit 1; }
  fi
elif [ "$build" = 1 ]; then
  MARLIN_CUDA_ARCHS=${MARLIN_CUDA_ARCHS:-90} pnpm turbo run build --filter='./packages/*' --filter='./apps/*' >/tmp/marlin-carry-build.log 2>&1 ||
    { tail -40 /tmp/marlin-carry-build.log; echo "build failed (log: /tmp/marlin-carry-build.log)" >&2; exit 1; }
fi
[ "$release" = 1 ] || test -f packages/kernel/prebuilds/linux-x64/marlin.node || { echo "no addon: build first" >&2; exit 1; }

mkdir -p .carry
exclude=$(git rev-parse --git-path info/exclude 2>/dev/null || echo .git/info/exclude) # a worktree's .git is a file
grep -qx '/.carry/' "$exclude" 2>/dev/null || echo '/.carry/' >> "$exclude" || true

# Node binary, stripped and packed with xz -9 (~22 MB; 2.3 MB less than unstripped xz -6, ~1 min),
# rebuilt only when this machine's node changes.
nodever=$(node --version)
if [ ! -f .carry/node.xz ] || [ "$(cat .carry/node.version 2>/dev/null)" != "$nodever-s9" ]; then
  strip -o /tmp/marlin-node-stripped "$(readlink -f "$(command -v node)")"
  xz -T2 -9 -c /tmp/marlin-node-stripped > .carry/node.xz && rm -f /tmp/marlin-node-stripped
  echo "$nodever-s9" > .carry/node.version
fi

if [ "$release" = 1 ]; then
  rm -rf .carry/tree.tar.xz .carry/model
  node tools/release/carry.mjs .carry || exit 1
  echo "$(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet HEAD 2>/dev/null || echo -dirty)" > .carry/commit
  echo "carry folder .carry: $(du -sm .carry | cut -f1) MiB (+ the working tree; the limit is 64 MiB together)"
  echo 'Run on the GPU machine with the device tool:'
  echo '  run(carry=[".carry"], command="bash tools/gpu/release-check.sh")'
  exit 0
fi
rm -f .carry/release.tar.xz

# Built outputs and the node_modules the tests need (pnpm's symlinked layout kept as is). Left
# behind: linters, build tools, type declarations, and other platforms' binaries; with the model,
# also what only the server and the apps need (their checks run in calls without the model).
lean=--release-only
[ "$model" = 1 ] && lean=--lean
find node_modules packages/*/node_modules apps/*/node_modules packages/*/dist apps/*/dist \
     packages/kernel/prebuilds \( -type f -o -type l \) 2>/dev/null | cat |
  grep -vE '/(@biomejs\+[^/]*|@turbo\+[^/]*|turbo@[^/]*|typescript@[^/]*|prettier@[^/]*|@types\+[^/]*|tsup@[^/]*|sucrase@[^/]*|@esbuild\+linux-x64@0\.27[^/]*|esbuild@0\.27[^/]*|@changesets\+[^/]*|cmake-js@[^/]*)/' |
  grep -vE '(\.d\.ts|\.d\.cts|\.d\.mts|\.md|\.map)$' |
  grep -vE '/node_modules/openai/src/|/node_modules/bintrees/test/' | # TypeScript sources and test data no test loads
  grep -vE 'tokenizers\.[a-z0-9-]+\.node$|packages/kernel/prebuilds/[^/]+/marlin-' | # tests load the local build
  grep -vF -f <(node tools/release/lib/closure.mjs $lean; echo /nonexistent/) > /tmp/marlin-carry.list # Verdaccio & co.
ls node_modules/.pnpm/tokenizers@*/node_modules/tokenizers/tokenizers.linux-x64-gnu.node >> /tmp/marlin-carry.list 2>/dev/null || true
# xz -9: about 2.3 MB smaller than -3 (the carry limit is tight: model + node + tree ~ 64 MiB), ~35 s more.
tar -c -T /tmp/marlin-carry.list | xz -T2 -9 > .carry/tree.tar.xz

# The commit the carried build came from, for benchmark and test reports.
echo "$(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet HEAD 2>/dev/null || echo -dirty)" > .carry/commit

rm -rf .carry/model
if [ "$model" = 1 ]; then
  src="$root/../shared/models/tiny-llama"
  test -d "$src" || { echo "no fixture at $src" >&2; exit 1; }
  mkdir -p .carry/model && cp "$src"/*.json "$src"/*.txt "$src"/*.md .carry/model/
  node tools/gpu/planes.mjs split "$src/model.safetensors" /tmp/marlin-model.planes
  xz -T2 -6 -c /tmp/marlin-model.planes > .carry/model/model.planes.xz && rm -f /tmp/marlin-model.planes
fi

size=$(du -sm .carry | cut -f1)
tree=$(git ls-files -co --exclude-standard -z | du -cm --files0-from=- 2>/dev/null | tail -1 | cut -f1)
echo "carry folder .carry: ${size} MiB (+ working tree ~${tree} MiB; the limit is 64 MiB together)"
cat <<EOT
Run on the GPU machine with the device tool:
  run(carry=[".carry"], command="bash tools/gpu/on-device.sh <what> [args]")
where <what> is one of:
  test [vitest args]   GPU tests of every package (logs under \$OUT)
  kernel-bench         the kernel benchmark (packages/kernel)
  engine-bench         the engine benchmark (packages/engine)
  sh '<command>'       any command with node on the PATH
EOT
