// Which addon the package loads: host checks (glibc, NVIDIA driver, device nodes), the child-process
// self-test passing over addons that do not load, and a package that still imports without any.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NativeLoadError } from "@marlin/core";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type AddonMeta, type HostFacts, hostFacts, hostRefusal, selectAddon, versionLess } from "../src/addon-select.js";
import { nativeInfo } from "../src/native.js";

const host: HostFacts = { platform: "linux-x64", glibc: "2.36", nvidiaDriver: "580.82.07", gpuNodes: true };
const cuda: AddonMeta = { backend: "cuda", cudaArchs: "80-real;86-real;89-real;90", cudaVersion: "13.0", minDriver: 580, glibc: "2.34", platform: "linux-x64" };

describe("host checks before loading", () => {
  it("compares versions numerically", () => {
    expect(versionLess("2.9", "2.34")).toBe(true);
    expect(versionLess("2.36", "2.34")).toBe(false);
    expect(versionLess("2.34", "2.34")).toBe(false);
  });

  it("passes a prebuild that fits and says why one does not", () => {
    expect(hostRefusal(cuda, host)).toBeUndefined();
    expect(hostRefusal(cuda, { ...host, glibc: "2.31" })).toBe("needs glibc >= 2.34, this system has 2.31");
    expect(hostRefusal(cuda, { ...host, glibc: undefined })).toMatch(/no glibc/);
    expect(hostRefusal(cuda, { ...host, gpuNodes: false })).toMatch(/no NVIDIA GPU device nodes/);
    expect(hostRefusal(cuda, { ...host, nvidiaDriver: "550.54.15" })).toBe("NVIDIA driver 550.54.15 is older than the 580 that CUDA 13.0 needs");
    // An unknown driver (no /proc entry, e.g. WSL) is left to the self-test.
    expect(hostRefusal(cuda, { ...host, nvidiaDriver: undefined })).toBeUndefined();
    expect(hostRefusal({ ...cuda, platform: "linux-arm64" }, host)).toMatch(/built for linux-arm64/);
    // A CPU prebuild does not care about GPUs.
    expect(hostRefusal({ backend: "cpu", glibc: "2.34" }, { ...host, gpuNodes: false, nvidiaDriver: undefined })).toBeUndefined();
  });

  it("reads this host", () => {
    const h = hostFacts();
    expect(h.platform).toBe(`${process.platform}-${process.arch}`);
    console.log(`this host: ${JSON.stringify(h)}`);
  });
});

describe("selection with self-tests in a child process", () => {
  const real = nativeInfo().path!;
  let dir: string;
  let cache: string | undefined;
  const prebuild = (pkg: string, name: string, content: "real" | "garbage", meta?: AddonMeta) => {
    const plat = join(pkg, "prebuilds", "linux-x64");
    mkdirSync(plat, { recursive: true });
    if (content === "real") copyFileSync(real, join(plat, `${name}.node`));
    else writeFileSync(join(plat, `${name}.node`), "not an ELF file");
    if (meta) writeFileSync(join(plat, `${name}.json`), JSON.stringify(meta));
  };
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "marlin-addons-"));
    cache = process.env.XDG_CACHE_HOME;
    process.env.XDG_CACHE_HOME = join(dir, "cache"); // fresh self-tests, not this user's cache
  });
  afterAll(() => {
    if (cache === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = cache;
    rmSync(dir, { recursive: true, force: true });
  });

  it("passes over a prebuild that does not load and uses the next one", () => {
    const pkg = join(dir, "a");
    prebuild(pkg, "marlin-cuda", "garbage", cuda);
    prebuild(pkg, "marlin-cpu", "real", { backend: "cpu", platform: "linux-x64" });
    const c = selectAddon(pkg, host);
    expect(c.path).toBe(join(pkg, "prebuilds", "linux-x64", "marlin-cpu.node"));
    expect(c.origin).toBe("prebuild");
    expect(c.rejected).toHaveLength(1);
    expect(c.rejected[0].reason).toMatch(/^self-test failed: .*(invalid ELF|file too short|not an ELF)/i);
    console.log(`rejected: ${c.rejected[0].reason}`);
  });

  it("skips a CUDA prebuild on a host without GPU device nodes without loading it", () => {
    const pkg = join(dir, "b");
    prebuild(pkg, "marlin-cuda", "garbage", cuda);
    prebuild(pkg, "marlin-cpu", "real", { backend: "cpu" });
    const c = selectAddon(pkg, { ...host, gpuNodes: false });
    expect(c.path).toMatch(/marlin-cpu\.node$/);
    expect(c.rejected[0].reason).toMatch(/no NVIDIA GPU device nodes/);
  });

  it("prefers a local build that loads, and falls back from one that does not", () => {
    const pkg = join(dir, "c");
    prebuild(pkg, "marlin", "real");
    prebuild(pkg, "marlin-cpu", "real", { backend: "cpu" });
    expect(selectAddon(pkg, host)).toMatchObject({ origin: "local", path: join(pkg, "prebuilds", "linux-x64", "marlin.node") });
    const broken = join(dir, "d");
    prebuild(broken, "marlin", "garbage");
    prebuild(broken, "marlin-cpu", "real", { backend: "cpu" });
    const c = selectAddon(broken, host);
    expect(c.origin).toBe("prebuild");
    expect(c.rejected[0].path).toMatch(/marlin\.node$/);
  });

  it("reports every reason when nothing fits", () => {
    const pkg = join(dir, "e");
    prebuild(pkg, "marlin-cpu", "garbage", { backend: "cpu" });
    const c = selectAddon(pkg, host);
    expect(c.path).toBeUndefined();
    expect(c.rejected).toHaveLength(1);
    const none = selectAddon(pkg, { ...host, platform: "linux-arm64" });
    expect(none.rejected[0].reason).toBe("no addon for linux-arm64 (prebuilt: linux-x64)");
  });
});

describe("without a usable addon", () => {
  it("imports, reports why in deviceReport(), and throws NativeLoadError from native calls", async () => {
    vi.resetModules();
    process.env.MARLIN_NATIVE_PATH = join(tmpdir(), "marlin-does-not-exist.node");
    try {
      const k = await import("../src/index.js");
      expect(k.nativeInfo().path).toBeUndefined();
      const report = k.deviceReport();
      expect(report).toMatch(/^addon: none; neither the GPU nor the CPU path can run \(could not load .*marlin-does-not-exist\.node/);
      expect(k.hasGpu()).toBe(false);
      // The re-imported modules have their own @marlin/core: compare by name and code.
      const err = (() => {
        try {
          k.native();
        } catch (e) {
          return e as Error & { code?: string };
        }
      })();
      expect(err).toMatchObject({ name: NativeLoadError.name, code: "ERR_MARLIN_NATIVE_LOAD" });
      expect(() => k.patternHost(4, 1)).toThrow(/npm rebuild @marlin\/kernel/);
      console.log(report);
    } finally {
      delete process.env.MARLIN_NATIVE_PATH;
      vi.resetModules();
    }
  });
});
