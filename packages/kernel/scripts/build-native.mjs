// Builds native/ (the one CMake project) into marlin.node and places it in prebuilds/, where the
// package loads it from. CUDA is compiled when nvcc is found; MARLIN_CUDA_ARCHS picks the
// architectures (default 90; releases use "80;86;89;90"); MARLIN_NO_CUDA=1 forces a CPU build.
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { cpus } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = resolve(here, "..");
const root = resolve(pkg, "../..");
const require = createRequire(join(pkg, "package.json"));

function findNvcc() {
  if (process.env.MARLIN_NO_CUDA === "1") return null;
  const candidates = [process.env.CUDACXX, "/usr/local/cuda/bin/nvcc"];
  try {
    candidates.push(execFileSync("sh", ["-c", "command -v nvcc"], { encoding: "utf8" }).trim());
  } catch {}
  return candidates.find((p) => p && existsSync(p)) ?? null;
}

const nvcc = findNvcc();
const archs = (process.env.MARLIN_CUDA_ARCHS || "90").replaceAll(",", ";");
const outDir = join(root, "native", "build", nvcc ? `cuda-${archs.replaceAll(";", "-")}` : "cpu");
const args = [
  require.resolve("cmake-js/bin/cmake-js"),
  "compile",
  "--directory",
  join(root, "native"),
  "--out",
  outDir,
  "--parallel",
  String(Math.max(1, cpus().length)),
  `--CDNODE_ADDON_API_DIR=${require("node-addon-api").include.replaceAll('"', "")}`,
  `--CDMARLIN_CUDA_ARCHS=${archs}`,
];
if (nvcc) args.push(`--CDCMAKE_CUDA_COMPILER=${nvcc}`);
else args.push("--CDMARLIN_NO_CUDA=ON");

console.log(`[marlin] building native addon (${nvcc ? `CUDA, sm ${archs}, nvcc ${nvcc}` : "CPU only"})`);
const started = Date.now();
execFileSync(process.execPath, args, { stdio: "inherit", cwd: pkg });
const built = join(outDir, "Release", "marlin.node");
const dest = join(pkg, "prebuilds", `${process.platform}-${process.arch}`);
mkdirSync(dest, { recursive: true });
copyFileSync(built, join(dest, "marlin.node"));
console.log(`[marlin] native addon ready in ${((Date.now() - started) / 1000).toFixed(1)} s: ${join(dest, "marlin.node")}`);
