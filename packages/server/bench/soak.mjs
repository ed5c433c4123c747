// The soak (issue 15): 1000 streaming requests at concurrency 64 against a server on loopback,
// 30% of the clients hanging up at random points, 429s retried after a pause. Checks that every
// request not hung up ended with a finish reason and [DONE], that no KV block leaked, that the
// waiting queue stayed within maxQueued, and that the server's resident memory grew < 50 MB after
// the first 100 requests; then stops the server with SIGTERM (it must exit 0). Writes
// bench/results/server-soak-<device>.json.
//
// The KV cache is sized for the batch (--kv-cache-tokens 4096): the CPU runner's cache pages are
// committed as blocks are first used, and the free list rotates through every block, so a cache
// far larger than the work makes resident memory climb until every block was touched once (not
// a leak: it stops there). A cache the first 100 requests cycle through measures the steady state.
//
//   node bench/soak.mjs [--model DIR] [--device cpu|cuda] [--requests 1000] [--concurrency 64]
//       [--disconnect 0.3] [--max-num-seqs 16] [--max-queued 32] [--kv-cache-tokens 4096] [--seed N]
//       [--base-url URL]
// With --base-url it soaks a server already running (and does not stop it).
import { execSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Rng } from "@marlin/core";
import { runSoak } from "../dist/soak.js";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../../..");
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const modelDir = resolve(opt("model", process.env.MARLIN_FIXTURE_DIR ?? join(root, "../shared/models/tiny-llama")));
const device = opt("device", "cpu");
const requests = Number(opt("requests", 1000));
const concurrency = Number(opt("concurrency", 64));
const maxNumSeqs = Number(opt("max-num-seqs", 16));
const maxQueued = Number(opt("max-queued", 32));
const kvCacheTokens = Number(opt("kv-cache-tokens", 4096));
const seed = Number(opt("seed", (Math.random() * 2 ** 32) >>> 0));
let baseUrl = opt("base-url", undefined);
console.log(`soak seed ${seed}: ${requests} requests, concurrency ${concurrency}, model ${modelDir} on ${device}`);

let child;
if (!baseUrl) {
  const serverOpts = { maxQueued, load: { device, maxNumSeqs, kvCacheTokens } };
  child = spawn(process.execPath, [join(here, "soak-server.mjs"), modelDir, JSON.stringify(serverOpts)], { stdio: ["ignore", "pipe", "inherit"] });
  const first = await new Promise((ok, fail) => {
    createInterface({ input: child.stdout }).once("line", ok);
    child.once("exit", (c) => fail(new Error(`the server exited (${c}) before listening`)));
  });
  baseUrl = JSON.parse(first).url;
}

// Prompts: seeded lines (or their beginnings) of the fixture's calibration text, else random words.
const rng = new Rng(seed);
const calib = join(modelDir, "calib.txt");
const lines = existsSync(calib) ? readFileSync(calib, "utf8").split("\n").filter((l) => l.length > 30) : [];
const prompts = Array.from({ length: 256 }, () => {
  if (!lines.length) return Array.from({ length: rng.int(4, 40) }, () => String.fromCharCode(97 + rng.int(0, 26)).repeat(rng.int(1, 8))).join(" ");
  const words = lines[rng.int(0, lines.length)].split(" ");
  return words.slice(0, rng.int(3, Math.min(words.length, 60) + 1)).join(" ");
});

let last = 0;
const report = await runSoak({
  baseUrl,
  prompts,
  requests,
  concurrency,
  disconnectFraction: Number(opt("disconnect", 0.3)),
  maxTokens: [8, 64],
  seed,
  maxQueued,
  warmup: 100,
  deadlineMs: 20 * 60_000,
  onProgress: (done, total) => {
    if (done - last >= total / 10 || done === total) {
      last = done;
      console.log(`  ${done}/${total}`);
    }
  },
});

let exitCode;
if (child) {
  child.kill("SIGTERM");
  exitCode = await new Promise((r) => child.once("exit", (c) => r(c)));
  if (exitCode !== 0) report.failures.push(`the server exited ${exitCode} after SIGTERM (want 0)`);
  report.ok = report.failures.length === 0;
}
const commit = process.env.MARLIN_COMMIT ?? (() => {
  try {
    return execSync("git rev-parse --short HEAD", { cwd: root }).toString().trim();
  } catch {
    return "unknown";
  }
})();
const out = {
  bench: "server-soak",
  date: new Date().toISOString(),
  commit,
  device: device === "cpu" ? `${cpus()[0]?.model?.trim()} (${cpus().length} cores)` : device,
  model: modelDir,
  seed,
  settings: { requests, concurrency, maxNumSeqs, maxQueued, kvCacheTokens, disconnectFraction: Number(opt("disconnect", 0.3)), maxTokens: [8, 64] },
  serverExitAfterSigterm: exitCode,
  report,
};
const dir = join(root, "bench/results");
mkdirSync(dir, { recursive: true });
const file = join(dir, `server-soak-${device}.json`);
writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
const r = report;
console.log(
  `completed ${r.completed}, hung up ${r.disconnected}, lost ${r.lost}, 429s ${r.rejected429} (gave up ${r.gaveUp}), max waiting ${r.maxWaitingSeen}/${maxQueued}, ` +
    `KV free ${r.kvBlocksFreeAtEnd}/${r.kvBlocksTotal}, RSS ${r.rssBaselineMb.toFixed(1)} -> ${r.rssEndMb.toFixed(1)} MB (+${r.rssGrowthMb.toFixed(1)}), ${r.seconds.toFixed(1)} s`,
);
console.log(r.ok ? "soak: ok" : `soak: FAILED\n  ${r.failures.join("\n  ")}`);
console.log(`wrote ${file}`);
process.exit(r.ok ? 0 : 1);
