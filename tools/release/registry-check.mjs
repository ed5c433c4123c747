// The packages as a downstream app gets them: packs every published package (or takes --tarballs),
// publishes them to a throwaway Verdaccio on 127.0.0.1, and installs them by name in clean folders:
//   kernel  `npm install @marlin/kernel` alone -> only core, format and kernel of ours; one matmul
//           (--matmul-device cpu|cuda) checked against an fp64 reference
//   engine  `npm install @marlin/engine` -> the tiny-llama fixture, greedy text
//   cjs     a CommonJS consumer (require of kernel, format, engine)
//   ts      the README's TypeScript examples, type-checked as written (strict, module nodenext) and run
//   cli     `npx marlin --version`, `npx marlin quantize --help` and the README's `npx marlin` lines
//           (skipped, with the reason, when there is no @marlin/cli package)
//   source  `npm install @marlin/kernel` with MARLIN_BUILD_FROM_SOURCE=1: the install builds the
//           addon from the shipped sources (--source-build cpu|cuda; cuda uses MARLIN_CUDA_ARCHS, 90)
// Options: --steps a,b (default all), --tarballs DIR, --offline (no uplink: third-party packages must
// be in --storage), --storage DIR (storage to start from), --save-storage DIR (keep the storage's
// third-party packages for an offline run), --model DIR, --timeout S (1500), --keep (the temp folder).
// Prints `STEP <name> ok|FAIL|SKIP <detail>` lines and a closing `REGISTRY-CHECK {json}`; exit 1 on a FAIL.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { repoRoot } from "./lib/manifest.mjs";
import { packAll, packReport } from "./lib/pack.mjs";
import { npmRegistry, publishAll } from "./lib/publish.mjs";
import { readmeCliLines, readmeTs } from "./lib/readme.mjs";
import { killAll, run } from "./lib/run.mjs";
import { checkTarball } from "./lib/tarball.mjs";
import { cleanEnv, startVerdaccio } from "./lib/verdaccio.mjs";

const ALL = ["kernel", "engine", "cjs", "ts", "cli", "source"];
const argv = process.argv.slice(2);
const value = (f, d) => (argv.includes(f) ? argv[argv.indexOf(f) + 1] : d);
const steps = value("--steps", ALL.join(",")).split(",");
const matmulDevice = value("--matmul-device", "cpu");
const sourceBuild = value("--source-build", "cpu");
const timeoutS = Number(value("--timeout", "1500"));
const model = resolve(value("--model", process.env.MARLIN_MODEL || join(repoRoot, "..", "shared", "models", "tiny-llama")));
const consumers = join(repoRoot, "tools", "release", "consumers");
const work = mkdtempSync(join(tmpdir(), "marlin-registry-"));
const results = [];
let registry;

function step(name, status, detail = "") {
  results.push({ name, status, detail });
  console.log(`STEP ${name} ${status} ${detail}`.trimEnd());
}

async function cleanup() {
  killAll();
  await registry?.stop();
  if (!argv.includes("--keep")) rmSync(work, { recursive: true, force: true });
  else console.log(`[check] kept ${work}`);
}

const deadline = setTimeout(async () => {
  console.log(`[check] over the ${timeoutS} s limit: stopping`);
  step("deadline", "FAIL", `${timeoutS} s`);
  await cleanup();
  process.exit(1);
}, timeoutS * 1000);
for (const sig of ["SIGINT", "SIGTERM"])
  process.on(sig, async () => {
    await cleanup();
    process.exit(130);
  });

function consumerDir(name) {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: `marlin-consumer-${name}`, version: "1.0.0", private: true, type: "module" }, null, 2));
  return dir;
}

/** npm install from the throwaway registry only (the parent's npm_config_* would point elsewhere). */
async function npmInstall(dir, pkgs, env = {}, timeout = 900) {
  const args = ["install", ...pkgs, "--registry", `${registry.url}/`, "--userconfig", registry.npmrc, "--cache", join(work, "npm-cache"), "--no-audit", "--no-fund", "--foreground-scripts"];
  const r = await run("npm", args, { cwd: dir, env: cleanEnv(env), timeoutS: timeout });
  if (r.code !== 0) throw new Error(`npm install ${pkgs.join(" ")} failed (${r.code}):\n${r.out.slice(-3000)}`);
  return r.out;
}

async function node(dir, args, env = {}) {
  const r = await run(process.execPath, args, { cwd: dir, env: cleanEnv(env), timeoutS: 600 });
  if (r.code !== 0) throw new Error(`node ${args.map((a) => basename(a)).join(" ")} failed (${r.code}):\n${r.out.slice(-3000)}`);
  return r.out;
}

/** A copy of a consumer script inside `dir`: imports resolve from the script's folder, not the cwd. */
function consumer(dir, name) {
  cpSync(join(consumers, name), join(dir, name));
  return join(dir, name);
}

const tagged = (out, tag) => JSON.parse(out.split("\n").find((l) => l.startsWith(`${tag} `)).slice(tag.length + 1));
const ours = (dir) => readdirSync(join(dir, "node_modules", "@marlin")).sort();

/** `ln -s <model> models/tiny-llama`: the README's examples use that path. */
function linkModel(dir) {
  mkdirSync(join(dir, "models"), { recursive: true });
  symlinkSync(model, join(dir, "models", "tiny-llama"));
}

async function kernelStep() {
  const dir = consumerDir("kernel");
  const log = await npmInstall(dir, ["@marlin/kernel"]);
  const got = ours(dir);
  if (got.join() !== "core,format,kernel") throw new Error(`npm install @marlin/kernel brought @marlin/{${got}}`);
  const lock = readFileSync(join(dir, "package-lock.json"), "utf8");
  if (!lock.includes(`${registry.url}/@marlin/kernel/-/kernel-`)) throw new Error("@marlin/kernel was not resolved from the local registry");
  const postinstall = log.split("\n").filter((l) => l.startsWith("[marlin]"));
  for (const l of postinstall) console.log(`  install: ${l}`);
  const out = await node(dir, [consumer(dir, "kernel-matmul.mjs"), matmulDevice]);
  console.log(out.trim().replace(/^/gm, "  "));
  const r = tagged(out, "MATMUL");
  step("kernel", "ok", `@marlin/{${got}}; ${r.device} matmul [${r.m}x${r.k}]x[${r.k}x${r.n}] rel. error ${r.relErr.toExponential(2)} (seed ${r.seed}) with ${r.origin} ${basename(r.addon)}`);
}

async function engineSteps(want) {
  if (!existsSync(join(model, "config.json"))) {
    for (const s of want) step(s, "SKIP", `no model at ${model} (set MARLIN_MODEL)`);
    return;
  }
  const dir = consumerDir("engine");
  await npmInstall(dir, ["@marlin/engine"]);
  if (want.includes("engine")) {
    const r = tagged(await node(dir, [consumer(dir, "engine-generate.mjs"), model]), "GENERATE");
    step("engine", "ok", `@marlin/{${ours(dir)}}; greedy: ${JSON.stringify(r.text)}`);
  }
  if (want.includes("cjs")) {
    const r = tagged(await node(dir, [consumer(dir, "consumer.cjs"), model]), "CJS");
    step("cjs", "ok", `require(): matmul rel. error ${r.relErr.toExponential(2)}, text ${JSON.stringify(r.text)}`);
  }
  if (want.includes("ts")) await tsStep(dir);
}

async function tsStep(dir) {
  const snippets = readmeTs();
  for (const [i, s] of snippets.entries()) writeFileSync(join(dir, `readme-${i + 1}.ts`), s);
  const tsconfig = {
    compilerOptions: {
      strict: true,
      module: "nodenext",
      moduleResolution: "nodenext",
      target: "es2022",
      lib: ["es2022"],
      types: ["node"],
      typeRoots: [join(repoRoot, "node_modules", "@types")],
      outDir: "out",
      noEmitOnError: true,
    },
    include: ["readme-*.ts"],
  };
  writeFileSync(join(dir, "tsconfig.json"), JSON.stringify(tsconfig, null, 2));
  const tsc = createRequire(join(repoRoot, "package.json")).resolve("typescript/bin/tsc");
  const r = await run(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: dir, timeoutS: 300 });
  if (r.code !== 0) throw new Error(`the README's TypeScript does not type-check (strict, nodenext):\n${r.out}`);
  linkModel(dir);
  const outputs = [];
  for (let i = 1; i <= snippets.length; i++) outputs.push((await node(dir, [join("out", `readme-${i}.js`)])).replace(/\s+/g, " ").trim().slice(-90));
  step("ts", "ok", `${snippets.length} README snippets type-check and run: ${outputs.map((o) => JSON.stringify(o)).join(", ")}`);
}

async function cliStep(tarballs) {
  const cli = tarballs.find((t) => t.name === "@marlin/cli");
  if (!cli) return step("cli", "SKIP", "no @marlin/cli package in this workspace (it comes with the CLI branch)");
  const dir = consumerDir("cli");
  await npmInstall(dir, ["@marlin/cli"]);
  const npx = (args) => run("npx", ["--no-install", ...args], { cwd: dir, env: cleanEnv(), timeoutS: 900 });
  const v = await npx(["marlin", "--version"]);
  if (v.code !== 0 || !v.out.includes(cli.version)) throw new Error(`npx marlin --version: ${v.code} ${v.out}`);
  const h = await npx(["marlin", "quantize", "--help"]);
  if (h.code !== 0 || !h.out.includes("--calib")) throw new Error(`npx marlin quantize --help: ${h.code} ${h.out}`);
  const lines = readmeCliLines();
  if (lines.length && existsSync(join(model, "config.json"))) linkModel(dir);
  for (const line of lines) {
    const r = await run("sh", ["-c", line], { cwd: dir, env: cleanEnv(), timeoutS: 900 });
    if (r.code !== 0) throw new Error(`README: ${line}: exit ${r.code}\n${r.out.slice(-2000)}`);
  }
  step("cli", "ok", `marlin --version: ${v.out.trim()}; quantize --help lists --calib; ${lines.length} README command(s) ran`);
}

async function sourceStep() {
  const dir = consumerDir("source");
  const env = sourceBuild === "cuda" ? { MARLIN_BUILD_FROM_SOURCE: "1", MARLIN_CUDA_ARCHS: process.env.MARLIN_CUDA_ARCHS || "90" } : { MARLIN_BUILD_FROM_SOURCE: "1", MARLIN_NO_CUDA: "1" };
  const started = Date.now();
  const log = await npmInstall(dir, ["@marlin/kernel"], env, sourceBuild === "cuda" ? 3600 : 1200); // a CUDA build takes minutes
  const secs = ((Date.now() - started) / 1000).toFixed(0);
  for (const l of log.split("\n").filter((x) => x.startsWith("[marlin]"))) console.log(`  install: ${l}`);
  const meta = JSON.parse(readFileSync(join(dir, "node_modules", "@marlin", "kernel", "prebuilds", `${process.platform}-${process.arch}`, "marlin.json"), "utf8"));
  const want = sourceBuild === "cuda" ? "cuda" : "cpu";
  if (meta.backend !== want) throw new Error(`built a ${meta.backend} addon, expected ${want}`);
  const r = tagged(await node(dir, [consumer(dir, "kernel-matmul.mjs"), "cpu"]), "MATMUL");
  if (r.origin !== "local") throw new Error(`the matmul used ${r.origin} ${r.addon}, not the local build`);
  step("source", "ok", `npm install built a ${meta.backend}${meta.cudaArchs ? ` (${meta.cudaArchs}, CUDA ${meta.cudaVersion})` : ""} addon from the shipped sources in ${secs} s; cpu matmul rel. error ${r.relErr.toExponential(2)} with it`);
}

/** The kernel tarball needs release prebuilds: without any, a CPU-only one (what CI can build). */
async function ensurePrebuilds() {
  const dir = join(repoRoot, "packages", "kernel", "prebuilds", `${process.platform}-${process.arch}`);
  if (existsSync(dir) && readdirSync(dir).some((f) => /^marlin-.*\.node$/.test(f))) return;
  console.log("[check] no release prebuilds: building a CPU-only one");
  const r = await run(process.execPath, [join(repoRoot, "tools", "release", "build-prebuilds.mjs"), "--cpu-only"], { cwd: repoRoot, env: cleanEnv(), timeoutS: 1200 });
  if (r.code !== 0) throw new Error(`build-prebuilds.mjs --cpu-only failed:\n${r.out.slice(-3000)}`);
}

async function main() {
  console.log(`[check] steps ${steps.join(",")}; temp ${work}`);
  let tarballs;
  const given = value("--tarballs");
  if (given) {
    tarballs = readdirSync(given)
      .filter((f) => f.endsWith(".tgz"))
      .map((f) => {
        const r = checkTarball(join(given, f));
        return { name: r.json.name, version: r.json.version, file: join(given, f), packed: r.packed, unpacked: r.unpacked, problems: r.problems, count: r.files.length };
      });
  } else {
    await ensurePrebuilds();
    tarballs = packAll(join(work, "tarballs"), repoRoot);
  }
  console.log(packReport(tarballs));
  const bad = tarballs.filter((t) => t.problems.length);
  step("pack", bad.length ? "FAIL" : "ok", `${tarballs.length} tarballs${bad.length ? `; problems in ${bad.map((t) => t.name).join(", ")}` : ""}`);
  if (bad.length) return;

  const storage = value("--storage");
  if (storage) cpSync(storage, join(work, "verdaccio", "storage"), { recursive: true });
  const uplink = argv.includes("--offline") ? undefined : npmRegistry(value("--registry"));
  registry = await startVerdaccio({ dir: join(work, "verdaccio"), uplink, log: console.log });
  publishAll(tarballs, `${registry.url}/`, ["--userconfig", registry.npmrc], console.log);
  step("publish", "ok", `${tarballs.map((t) => `${t.name}@${t.version}`).join(", ")} to ${registry.url}`);

  const guarded = async (name, fn) => {
    try {
      await fn();
    } catch (err) {
      step(name, "FAIL", err instanceof Error ? err.message : String(err));
    }
  };
  if (steps.includes("kernel")) await guarded("kernel", kernelStep);
  const eng = steps.filter((s) => ["engine", "cjs", "ts"].includes(s));
  if (eng.length) await guarded(eng.join("+"), () => engineSteps(eng));
  if (steps.includes("cli")) await guarded("cli", () => cliStep(tarballs));
  if (steps.includes("source")) await guarded("source", sourceStep);

  const save = value("--save-storage");
  if (save) {
    // Third-party packages only: ours are published again by the offline run.
    rmSync(save, { recursive: true, force: true });
    cpSync(join(work, "verdaccio", "storage"), save, { recursive: true, filter: (p) => !/\/storage\/@marlin(\/|$)/.test(p) });
    console.log(`[check] saved the registry storage (without @marlin) to ${save}`);
  }
}

let failed = true;
try {
  await main();
  failed = results.some((r) => r.status === "FAIL");
} catch (err) {
  step("setup", "FAIL", err instanceof Error ? err.stack : String(err));
} finally {
  clearTimeout(deadline);
  await cleanup();
}
const by = (s) => results.filter((r) => r.status === s).map((r) => r.name);
console.log(`REGISTRY-CHECK ${JSON.stringify({ ok: by("ok"), failed: by("FAIL"), skipped: by("SKIP") })}`);
process.exit(failed ? 1 : 0);
