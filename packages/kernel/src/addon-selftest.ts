/**
 * Loads an addon in a child process and makes a tiny call (a host pattern, and on a GPU a pattern
 * kernel checked against it), so an addon that crashes on load (wrong glibc or libstdc++, illegal
 * instruction, a driver fault) or has no kernel image for this GPU never takes down the caller.
 * Passing results are cached per file and host in ~/.cache/marlin (one child per new addon or driver).
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

export interface SelfTestResult {
  ok: boolean;
  error?: string;
  builtWithCuda?: boolean;
  modules?: string[];
  cuda?: { builtWithCuda: boolean; deviceCount: number; error?: string; message?: string; runtimeVersion?: number; driverVersion?: number };
  /** GPU 0, e.g. "NVIDIA H200 (sm_90)". */
  device?: string;
  /** "ok", or why the pattern kernel failed on GPU 0. */
  gpuProbe?: string;
}

const MARK = "@@marlin-selftest ";
const TIMEOUT_MS = 120_000;

// Runs in the child (CommonJS, argv[1] = the addon). Prints one marked JSON line.
const CHILD = `
const out = { ok: false };
try {
  const a = require(process.argv[1]);
  out.builtWithCuda = a.builtWithCuda === true;
  out.modules = a.modules;
  const host = a.patternHost(new Uint32Array(64), 20261201);
  if (host.length !== 64) throw new Error("patternHost returned " + host.length + " values");
  out.cuda = a.cudaStatus();
  if (out.builtWithCuda && out.cuda.deviceCount > 0) {
    try {
      const d = a.deviceInfo(0);
      out.device = d.name + " (sm_" + d.major + d.minor + ")";
      const buf = new a.DeviceBuffer(256, 0);
      a.writePattern(buf, 0, 64, 20261201, undefined);
      const back = new Uint32Array(64);
      buf.download(back, 0);
      buf.free();
      out.gpuProbe = back.every((v, i) => v === host[i]) ? "ok" : "the pattern kernel wrote wrong values";
    } catch (e) {
      out.gpuProbe = String((e && (e.cudaError || e.message)) || e);
    }
  }
  out.ok = true;
} catch (e) {
  out.error = String((e && e.message) || e);
}
process.stdout.write("\\n${MARK}" + JSON.stringify(out) + "\\n");
`;

function cacheFile(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "marlin", "addon-checks.json");
}

/** What a cached result depends on: the file, this Node, the driver and the visible GPUs. */
function cacheKey(path: string): string | undefined {
  try {
    const st = statSync(path);
    let driver = "";
    try {
      driver = readFileSync("/proc/driver/nvidia/version", "utf8");
    } catch {}
    let gpus: string[] = [];
    try {
      gpus = readdirSync("/proc/driver/nvidia/gpus");
    } catch {}
    const parts = [path, st.size, st.mtimeMs, process.version, process.arch, driver, gpus.join(","), process.env.CUDA_VISIBLE_DEVICES ?? "*"];
    return createHash("sha256").update(JSON.stringify(parts)).digest("hex");
  } catch {
    return undefined;
  }
}

function readCache(): Record<string, SelfTestResult> {
  try {
    return JSON.parse(readFileSync(cacheFile(), "utf8"));
  } catch {
    return {};
  }
}

function writeCache(key: string, r: SelfTestResult): void {
  try {
    const file = cacheFile();
    mkdirSync(join(file, ".."), { recursive: true });
    const all = Object.fromEntries(Object.entries({ ...readCache(), [key]: r }).slice(-32)); // newest 32
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(all));
    renameSync(tmp, file);
  } catch {
    // A read-only home only costs a child process per run.
  }
}

/** Runs the child check (no cache). */
export function runSelfTest(path: string): SelfTestResult {
  const env = { ...process.env };
  delete env.NODE_OPTIONS; // no loaders or inspectors of the parent in the child
  const r = spawnSync(process.execPath, ["-e", CHILD, path], { env, encoding: "utf8", timeout: TIMEOUT_MS, killSignal: "SIGKILL", maxBuffer: 16 << 20 });
  const line = r.stdout?.split("\n").find((l) => l.startsWith(MARK));
  if (line) {
    try {
      return JSON.parse(line.slice(MARK.length)) as SelfTestResult;
    } catch {}
  }
  const stderr = (r.stderr ?? "").trim().split("\n").filter(Boolean).slice(-3).join(" | ");
  if (r.error) return { ok: false, error: `${(r.error as NodeJS.ErrnoException).code === "ETIMEDOUT" ? `timed out after ${TIMEOUT_MS / 1000} s` : r.error.message}` };
  const how = r.signal ? `killed by ${r.signal}` : `exited with code ${r.status}`;
  return { ok: false, error: `the child process ${how}${stderr ? `: ${stderr}` : ""}` };
}

/** The self-test of `path`, from the cache when this file already passed on this host. */
export function selfTest(path: string): SelfTestResult {
  const key = cacheKey(path);
  if (key) {
    const hit = readCache()[key];
    if (hit?.ok) return hit;
  }
  const r = runSelfTest(path);
  if (key && r.ok) writeCache(key, r);
  return r;
}
