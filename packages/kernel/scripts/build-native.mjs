// Builds the native sources (the one CMake project) into a marlin.node with cmake-js, and writes
// beside it a .json saying what it was built for (read by src/addon-select.ts).
//   node scripts/build-native.mjs [--out FILE] [--prebuild]
//   --out FILE    where the addon goes (default prebuilds/<platform>-<arch>/marlin.node: the local build)
//   --prebuild    mark it as a release prebuild (tools/release/build-prebuilds.mjs)
// Sources: native/ at the repo root in a checkout; native/ inside the package when installed (the
// release pipeline copies them in at pack time). CUDA is compiled when nvcc is found (CUDACXX, PATH,
// /usr/local/cuda); MARLIN_CUDA_ARCHS picks the CMake CUDA architectures (default 90; releases use
// "80-real;86-real;89-real;90"; "native" means this machine's GPUs); MARLIN_NO_CUDA=1 forces a CPU build.
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { cpus } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { findNvcc, sh } from "./toolchain.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = resolve(here, "..");
const repo = resolve(pkg, "../..");
const inRepo = existsSync(join(repo, "pnpm-workspace.yaml")) && existsSync(join(repo, "native", "CMakeLists.txt"));
const sources = inRepo ? join(repo, "native") : join(pkg, "native");
const require = createRequire(join(pkg, "package.json"));
const platform = `${process.platform}-${process.arch}`;

const argv = process.argv.slice(2);
const opt = (name) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const out = resolve(opt("--out") ?? join(pkg, "prebuilds", platform, "marlin.node"));
const prebuild = argv.includes("--prebuild");

function fail(message) {
  console.error(`[marlin] ${message}`);
  process.exit(1);
}

/** The newest GLIBC_x.y symbol version the addon needs (what a target system must have). */
function neededGlibc(file) {
  const dump = sh("objdump", ["-T", file]);
  const versions = [...(dump ?? "").matchAll(/GLIBC_(\d+)\.(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
  if (!versions.length) return process.report?.getReport()?.header?.glibcVersionRuntime;
  versions.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  return versions.at(-1).join(".");
}

// Oldest Linux driver branch that runs code of each CUDA major version (minor version compatibility).
const MIN_DRIVER = { 11: 450, 12: 525, 13: 580 };

if (!existsSync(join(sources, "CMakeLists.txt"))) fail(`no native sources at ${sources}`);
if (!sh("cmake", ["--version"])) fail("cmake not found: install cmake 3.18 or newer (e.g. apt-get install cmake) to build the addon from source");
const nvcc = findNvcc();
const archs = (process.env.MARLIN_CUDA_ARCHS || "90").replaceAll(",", ";");
const cudaVersion = nvcc ? /release (\d+\.\d+)/.exec(sh(nvcc, ["--version"]) ?? "")?.[1] : undefined;
const variant = nvcc ? `cuda-${archs.replace(/[^0-9a-z]+/gi, "-")}` : "cpu";
const buildDir = inRepo ? join(sources, "build", variant) : join(pkg, "build", variant);

let addonApi;
try {
  addonApi = require("node-addon-api").include.replaceAll('"', "");
} catch {
  fail("node-addon-api is not installed (a dependency of @marlin/kernel): reinstall the package");
}
const args = [
  require.resolve("cmake-js/bin/cmake-js"),
  "compile",
  "--directory",
  sources,
  "--out",
  buildDir,
  "--parallel",
  String(Math.max(1, cpus().length)),
  `--CDNODE_ADDON_API_DIR=${addonApi}`,
  `--CDMARLIN_CUDA_ARCHS=${archs}`,
];
if (nvcc) args.push(`--CDCMAKE_CUDA_COMPILER=${nvcc}`);
else args.push("--CDMARLIN_NO_CUDA=ON");

const what = nvcc ? `CUDA ${cudaVersion ?? "?"}, architectures ${archs}, nvcc ${nvcc}` : "CPU only (no nvcc, or MARLIN_NO_CUDA=1)";
console.log(`[marlin] building the native addon from ${inRepo ? "native/" : "the shipped sources"}: ${what}${nvcc ? "; a CUDA build takes minutes" : ""}`);
const started = Date.now();
try {
  execFileSync(process.execPath, args, { stdio: "inherit", cwd: pkg });
} catch {
  fail(`the native build failed (${what}); see the output above`);
}
mkdirSync(dirname(out), { recursive: true });
copyFileSync(join(buildDir, "Release", "marlin.node"), out);
const meta = {
  backend: nvcc ? "cuda" : "cpu",
  ...(nvcc && { cudaArchs: archs, cudaVersion, minDriver: MIN_DRIVER[Number.parseInt(cudaVersion ?? "", 10)] }),
  glibc: neededGlibc(out),
  platform,
  source: prebuild ? "prebuild" : "local",
  node: process.version,
};
writeFileSync(out.replace(/\.node$/, ".json"), `${JSON.stringify(meta, null, 2)}\n`);
// An installed package keeps only the addon, not the object files.
if (!inRepo) rmSync(join(pkg, "build"), { recursive: true, force: true });
console.log(`[marlin] native addon ready in ${((Date.now() - started) / 1000).toFixed(1)} s: ${out} (${basename(out, ".node")}.json: ${meta.backend}${meta.cudaArchs ? ` ${meta.cudaArchs}` : ""}, glibc >= ${meta.glibc})`);
