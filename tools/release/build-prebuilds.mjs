// Builds the addons @marlin/kernel ships, into packages/kernel/prebuilds/<platform>-<arch>/:
//   marlin-cuda.node  one fatbin for the release architectures (SASS for sm_80, 86, 89 and 90, and
//                     PTX of compute_90 that newer GPUs compile at load)
//   marlin-cpu.node   CPU only, for machines without a usable GPU (smaller, no CUDA runtime)
// each with a .json of what it was built for. Usage:
//   node tools/release/build-prebuilds.mjs [--cpu-only] [--archs "80-real;86-real;89-real;90"]
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { findNvcc } from "../../packages/kernel/scripts/toolchain.mjs";
import { repoRoot } from "./lib/manifest.mjs";

export const RELEASE_ARCHS = "80-real;86-real;89-real;90";

const argv = process.argv.slice(2);
const cpuOnly = argv.includes("--cpu-only");
const archs = argv.includes("--archs") ? argv[argv.indexOf("--archs") + 1] : RELEASE_ARCHS;
const kernel = join(repoRoot, "packages", "kernel");
const dir = join(kernel, "prebuilds", `${process.platform}-${process.arch}`);

if (!cpuOnly && !findNvcc()) {
  console.error("[prebuilds] no nvcc: a release needs the CUDA prebuild (--cpu-only builds a CPU-only test release)");
  process.exit(1);
}
// Stale prebuilds would ship: start from none (the local build, marlin.node, stays).
for (const f of existsSync(dir) ? readdirSync(dir) : []) if (/^marlin-.*\.(node|json)$/.test(f)) rmSync(join(dir, f));

function build(name, env) {
  const out = join(dir, `${name}.node`);
  execFileSync(process.execPath, [join(kernel, "scripts", "build-native.mjs"), "--out", out, "--prebuild"], {
    stdio: "inherit",
    env: { ...process.env, ...env },
  });
  console.log(`[prebuilds] ${name}.node: ${(statSync(out).size / 2 ** 20).toFixed(1)} MiB`);
}

if (!cpuOnly) build("marlin-cuda", { MARLIN_NO_CUDA: "", MARLIN_CUDA_ARCHS: archs });
build("marlin-cpu", { MARLIN_NO_CUDA: "1" });
