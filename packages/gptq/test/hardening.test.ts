/**
 * Issue 14 on the `marlin quantize` side: unbounded --samples, special files, raw fs errors, the
 * hidden .partial-* folder of a killed run, and SIGTERM while loading. Each is refused with a typed
 * error and exit code 2 before any work or write, or cleaned up.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { removePartials, runCli } from "../src/index.js";
import { FIXTURE, hasFixture, leftovers } from "./fixture.js";

const work = mkdtempSync(join(tmpdir(), "gptq-hardening-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const hasMkfifo = spawnSync("mkfifo", [join(work, "probe")]).status === 0;

async function cli(args: string[]): Promise<{ code: number; err: string }> {
  let err = "";
  const code = await runCli(["quantize", ...args], { stdout: { write: () => true }, stderr: { write: (s: string) => (err += s) } });
  return { code, err };
}

/** A model directory linking the fixture's files, `fifo` (if any) replaced by a FIFO. */
function model(name: string, fifo?: string): string {
  const dir = join(work, name);
  mkdirSync(dir);
  for (const f of readdirSync(FIXTURE)) if (f !== fifo) symlinkSync(join(FIXTURE, f), join(dir, f));
  if (fifo) execFileSync("mkfifo", [join(dir, fifo)]);
  return dir;
}

describe.skipIf(!hasFixture)("marlin quantize refusals (exit 2, nothing written)", () => {
  it("--samples 1000000000 (a V8 heap abort before) is refused", async () => {
    const calib = join(FIXTURE, "calib.txt");
    const huge = await cli([FIXTURE, "--out", join(work, "s1"), "--calib", calib, "--samples", "1000000000"]);
    expect(huge.code).toBe(2);
    expect(huge.err).toMatch(/samples 1000000000 exceeds 1048576 calibration windows \[ERR_MARLIN_INVALID_ARGUMENT\]/);
    const big = await cli([FIXTURE, "--out", join(work, "s1"), "--calib", calib, "--samples", "1000000", "--seqlen", "1024"]);
    expect(big.code).toBe(2);
    expect(big.err).toMatch(/calibration tokens need about .* GiB of activations/);
    expect(leftovers(work, "s1")).toEqual([]);
  });
  it.skipIf(!hasMkfifo)("a FIFO as model.safetensors or as the calibration text (hung forever before)", async () => {
    const w = await cli([model("fifo-w", "model.safetensors"), "--out", join(work, "f1"), "--method", "rtn"]);
    expect(w.code).toBe(2);
    expect(w.err).toMatch(/model.safetensors: is not a regular file \[ERR_MARLIN_FORMAT\]/);
    const c = await cli([model("fifo-c", "calib.txt"), "--out", join(work, "f2"), "--calib", join(work, "fifo-c", "calib.txt")]);
    expect(c.code).toBe(2);
    expect(c.err).toMatch(/is not a regular file/);
    const cfg = await cli([model("fifo-cfg", "config.json"), "--out", join(work, "f3"), "--method", "rtn"]);
    expect(cfg.code).toBe(2);
    expect(cfg.err).toMatch(/config.json: is a FIFO, not a regular file/);
    expect([...leftovers(work, "f1"), ...leftovers(work, "f2"), ...leftovers(work, "f3")]).toEqual([]);
  });
  it("an output where nothing may be written is an IoError naming the path (raw EACCES/EROFS before)", async () => {
    const r = await cli([FIXTURE, "--out", "/proc/self/marlin-out", "--method", "rtn"]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/\/proc\/self: cannot write into this directory: .* \(E[A-Z]+\) \[ERR_MARLIN_IO\]/);
  });
});

describe.skipIf(!hasFixture)("a killed run's hidden .partial-* folder", () => {
  it("is removed by the next run into the same place; a live run's is kept", async () => {
    // A process that has exited: its pid names the stale folder (SIGKILL leaves exactly this).
    const dead = spawnSync(process.execPath, ["-e", "0"]).pid!;
    const stale = join(work, `.q.partial-${dead}-0badc0de`);
    const live = join(work, `.q.partial-${process.ppid}-0badc0de`);
    mkdirSync(stale);
    mkdirSync(live);
    const r = await cli([FIXTURE, "--out", join(work, "q"), "--method", "rtn", "--quiet"]);
    expect(r.code).toBe(0);
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(live)).toBe(true);
    expect(existsSync(join(work, "q", "model.safetensors"))).toBe(true);
    expect(await removePartials(join(work, "q"))).toEqual([]);
    rmSync(live, { recursive: true });
  }, 240_000);
});

const builtCli = resolve(dirname(fileURLToPath(import.meta.url)), "../dist/cli.js");
describe.skipIf(!hasFixture || !existsSync(builtCli))("the built marlin command", () => {
  it("exits 130 promptly on SIGTERM while the model is still loading, leaving nothing", async () => {
    const out = join(work, "early");
    const child = spawn(process.execPath, [builtCli, "quantize", FIXTURE, "--out", out, "--calib", join(FIXTURE, "calib.txt"), "--samples", "8", "--seqlen", "64"], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    // Signal once the CLI says it is loading the model (its handlers are installed by then).
    child.stderr.on("data", () => {
      if (err.includes("loading ") && !child.killed) child.kill("SIGTERM");
    });
    const code = await new Promise<number | null>((done) => child.on("exit", (c) => done(c)));
    expect(code).toBe(130);
    expect(err).toMatch(/SIGTERM, stopping/);
    expect(err).not.toMatch(/wrote /);
    expect(leftovers(work, "early")).toEqual([]);
  }, 60_000);
});
