// postinstall of @marlin/kernel: checks which shipped addon runs here (each is loaded once in a child
// process), and builds one from the shipped sources when none does, or when this machine has a GPU
// the CUDA prebuild cannot use but nvcc can build for. It never fails the install: without a usable
// addon the package still imports and deviceReport() says why.
//   MARLIN_BUILD_FROM_SOURCE=1  always build (CUDA when nvcc is found, MARLIN_CUDA_ARCHS or this
//                               machine's GPUs; MARLIN_NO_CUDA=1 for CPU only)
//   MARLIN_SKIP_INSTALL=1       do nothing
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { findNvcc, localGpuArchs } from "./toolchain.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = resolve(here, "..");
const log = (m) => console.log(`[marlin] ${m}`);

function describe(choice) {
  const m = choice.meta;
  const what = m?.backend === "cuda" ? `CUDA ${m.cudaVersion ?? ""} for ${m.cudaArchs ?? "?"}` : "CPU only";
  const gpu = choice.test?.device ? ` on ${choice.test.device}` : "";
  return `${choice.origin} ${basename(choice.path)} (${what})${gpu}`;
}

/** Why a build from source should run, or undefined when what is shipped is fine here. */
function reasonToBuild(choice, host, nvcc, gpuArchs) {
  if (process.env.MARLIN_BUILD_FROM_SOURCE === "1") return "MARLIN_BUILD_FROM_SOURCE=1";
  if (!choice.path) return "no shipped addon runs here";
  if (choice.meta?.backend === "cuda" || !host.gpuNodes || !nvcc) return undefined;
  // The Marlin kernel needs sm_80+: a CUDA build for older GPUs would not help.
  if (gpuArchs?.split(";").every((a) => Number(a) < 80)) return undefined;
  return "this machine has an NVIDIA GPU the CUDA prebuild cannot use, and nvcc";
}

async function main() {
  const repo = resolve(pkg, "../..");
  if (existsSync(join(repo, "pnpm-workspace.yaml")) && existsSync(join(repo, "native", "CMakeLists.txt"))) return; // a checkout: `pnpm build` builds
  if (process.env.MARLIN_SKIP_INSTALL === "1") return;
  const dist = join(pkg, "dist", "index.js");
  if (!existsSync(dist)) return log("no dist/ in this package: nothing to check");
  const k = await import(pathToFileURL(dist).href);
  const host = k.hostFacts();
  let choice = k.selectAddon();
  for (const r of choice.rejected) log(`not using ${basename(r.path)}: ${r.reason}`);
  const nvcc = findNvcc();
  const gpuArchs = nvcc ? localGpuArchs() : undefined;
  const why = reasonToBuild(choice, host, nvcc, gpuArchs);
  if (!why) return log(`using ${describe(choice)}`);

  const env = { ...process.env };
  if (nvcc && !env.MARLIN_CUDA_ARCHS) env.MARLIN_CUDA_ARCHS = gpuArchs ?? "native";
  log(`building from the shipped sources (${why}): ${nvcc ? `CUDA for ${env.MARLIN_CUDA_ARCHS}` : "CPU only, no nvcc found"}`);
  const r = spawnSync(process.execPath, [join(here, "build-native.mjs")], { env, stdio: "inherit" });
  if (r.status !== 0) {
    log(`the build from source failed${choice.path ? `; keeping ${describe(choice)}` : "; the package imports, but native calls throw NativeLoadError until an addon is built"}`);
    return;
  }
  choice = k.selectAddon();
  log(choice.path ? `using ${describe(choice)}` : `the built addon does not load either: ${choice.rejected.map((x) => x.reason).join("; ")}`);
}

main().catch((err) => log(`install check skipped: ${err instanceof Error ? err.message : String(err)}`));
