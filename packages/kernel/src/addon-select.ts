/**
 * Which marlin.node this machine can use. The package ships prebuilt addons in
 * prebuilds/<platform>-<arch>/ (a CUDA one and a CPU-only one, each with a .json saying what it was
 * built for); a local build (the dev build, or the install script's build from the shipped sources)
 * is prebuilds/<platform>-<arch>/marlin.node. Each candidate is checked against the host (glibc,
 * NVIDIA driver) and then loaded once in a child process (addon-selftest.ts) before this process
 * loads it, so an addon that would crash or cannot run here is passed over with a reason.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type SelfTestResult, selfTest } from "./addon-selftest.js";

/** What a build wrote beside its .node file (scripts/build-native.mjs). */
export interface AddonMeta {
  backend: "cuda" | "cpu";
  /** CMake CUDA architectures, e.g. "80-real;86-real;89-real;90" (90 = SASS + PTX). */
  cudaArchs?: string;
  /** CUDA toolkit of the build, e.g. "13.0". */
  cudaVersion?: string;
  /** Oldest NVIDIA driver (major) that runs that toolkit's code, e.g. 580. */
  minDriver?: number;
  /** Newest GLIBC symbol version the addon needs, e.g. "2.34". */
  glibc?: string;
  platform?: string;
  /** "prebuild" (release pipeline) or "local" (built on this machine). */
  source?: string;
}

export type AddonOrigin = "env" | "local" | "prebuild";

export interface Rejection {
  path: string;
  reason: string;
}

export interface AddonChoice {
  /** The addon to load; undefined when none fits (see `rejected`). */
  path?: string;
  origin?: AddonOrigin;
  meta?: AddonMeta;
  test?: SelfTestResult;
  /** Addons passed over, each with the reason, in the order they were considered. */
  rejected: Rejection[];
}

export interface HostFacts {
  platform: string;
  /** glibc of this process (undefined on musl and other libcs). */
  glibc?: string;
  /** NVIDIA kernel driver version from /proc/driver/nvidia/version, e.g. "580.82.07". */
  nvidiaDriver?: string;
  /** Whether NVIDIA device nodes exist (/dev/nvidia0.. or WSL's /dev/dxg). */
  gpuNodes: boolean;
}

export const NATIVE_PATH_ENV = "MARLIN_NATIVE_PATH";
/** The file name of a local build (dev build or build from source at install). */
export const LOCAL_ADDON = "marlin.node";

/** The package folder (src/ and dist/ are both one level below it). */
export function packageDir(): string {
  return join(dirname(fileURLToPath(import.meta.url)), "..");
}

export function hostFacts(): HostFacts {
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  let nvidiaDriver: string | undefined;
  try {
    nvidiaDriver = /Kernel Module\s+(?:for\s+\S+\s+)?(\d+\.\d+(?:\.\d+)?)/.exec(readFileSync("/proc/driver/nvidia/version", "utf8"))?.[1];
  } catch {}
  let gpuNodes = existsSync("/dev/dxg");
  try {
    gpuNodes ||= readdirSync("/dev").some((f) => /^nvidia\d+$/.test(f));
  } catch {}
  return { platform: `${process.platform}-${process.arch}`, glibc: report?.header?.glibcVersionRuntime, nvidiaDriver, gpuNodes };
}

/** "2.34" < "2.36": compares dotted version numbers. */
export function versionLess(a: string, b: string): boolean {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0;
  }
  return false;
}

/** Why a prebuilt addon cannot run on this host before even loading it, or undefined. */
export function hostRefusal(meta: AddonMeta | undefined, host: HostFacts): string | undefined {
  if (!meta) return undefined;
  if (meta.platform && meta.platform !== host.platform) return `built for ${meta.platform}, this is ${host.platform}`;
  if (meta.glibc) {
    if (!host.glibc) return `needs glibc >= ${meta.glibc}; this system has no glibc (musl?)`;
    if (versionLess(host.glibc, meta.glibc)) return `needs glibc >= ${meta.glibc}, this system has ${host.glibc}`;
  }
  if (meta.backend === "cuda") {
    if (!host.gpuNodes) return "no NVIDIA GPU device nodes (/dev/nvidia*)";
    const major = host.nvidiaDriver ? Number.parseInt(host.nvidiaDriver, 10) : undefined;
    if (major !== undefined && meta.minDriver && major < meta.minDriver)
      return `NVIDIA driver ${host.nvidiaDriver} is older than the ${meta.minDriver} that CUDA ${meta.cudaVersion ?? "(its toolkit)"} needs`;
  }
  return undefined;
}

function readMeta(file: string): AddonMeta | undefined {
  try {
    return JSON.parse(readFileSync(file.replace(/\.node$/, ".json"), "utf8")) as AddonMeta;
  } catch {
    return undefined;
  }
}

/** Why a self-tested addon should not be used, or undefined when it passed. */
function testRefusal(t: SelfTestResult, meta: AddonMeta | undefined): string | undefined {
  if (!t.ok) return `self-test failed: ${t.error}`;
  if (meta?.backend !== "cuda") return undefined;
  if (!t.cuda || t.cuda.deviceCount === 0)
    return `the CUDA build sees no usable GPU (${t.cuda?.error ?? "no device"}${t.cuda?.message ? `: ${t.cuda.message}` : ""})`;
  if (t.gpuProbe !== "ok") return `a test kernel did not run on ${t.device ?? "GPU 0"}: ${t.gpuProbe}`;
  return undefined;
}

/**
 * Picks the addon: MARLIN_NATIVE_PATH as given; else the local build when it loads; else the first
 * shipped prebuild (CUDA before CPU-only) that fits the host and passes its self-test.
 */
export function selectAddon(dir = packageDir(), host = hostFacts()): AddonChoice {
  const env = process.env[NATIVE_PATH_ENV];
  if (env) return { path: env, origin: "env", meta: readMeta(env), rejected: [] };
  const rejected: Rejection[] = [];
  const plat = join(dir, "prebuilds", host.platform);
  let files: string[] = [];
  try {
    files = readdirSync(plat).filter((f) => f.endsWith(".node"));
  } catch {}
  if (!files.length) {
    let shipped: string[] = [];
    try {
      shipped = readdirSync(join(dir, "prebuilds"));
    } catch {}
    rejected.push({ path: plat, reason: `no addon for ${host.platform}${shipped.length ? ` (prebuilt: ${shipped.join(", ")})` : ""}` });
    return { rejected };
  }
  const local = files.includes(LOCAL_ADDON) ? [join(plat, LOCAL_ADDON)] : [];
  const shipped = files
    .filter((f) => f !== LOCAL_ADDON)
    .map((f) => ({ path: join(plat, f), meta: readMeta(join(plat, f)) }))
    .sort((a, b) => Number(a.meta?.backend !== "cuda") - Number(b.meta?.backend !== "cuda"));
  for (const path of local) {
    const meta = readMeta(path);
    const t = selfTest(path);
    // A local build is used as built (a CUDA build without a GPU still serves the CPU paths).
    if (t.ok) return { path, origin: "local", meta, test: t, rejected };
    rejected.push({ path, reason: `self-test failed: ${t.error}` });
  }
  let fallback: AddonChoice | undefined;
  for (const c of shipped) {
    const pre = hostRefusal(c.meta, host);
    if (pre) {
      rejected.push({ path: c.path, reason: pre });
      continue;
    }
    const t = selfTest(c.path);
    const why = testRefusal(t, c.meta);
    if (!why) return { path: c.path, origin: "prebuild", meta: c.meta, test: t, rejected };
    rejected.push({ path: c.path, reason: why });
    // A CUDA prebuild that loads but has no usable GPU still serves the CPU paths if nothing else does.
    fallback ??= t.ok ? { path: c.path, origin: "prebuild", meta: c.meta, test: t, rejected: [] } : undefined;
  }
  if (fallback) return { ...fallback, rejected: rejected.filter((r) => r.path !== fallback.path) };
  return { rejected };
}
