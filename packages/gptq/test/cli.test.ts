import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseQuantizeArgs, runCli, UsageError } from "../src/index.js";
import { FIXTURE, hasFixture, leftovers } from "./fixture.js";

const work = mkdtempSync(join(tmpdir(), "gptq-cli-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function cli(args: string[]): Promise<{ code: number; err: string; out: string }> {
  let err = "";
  let out = "";
  const code = await runCli(args, { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) } });
  return { code, err, out };
}

describe("marlin CLI arguments", () => {
  it("parses every option", () => {
    const p = parseQuantizeArgs(["m", "--out=o", "--bits", "8", "--group-size", "-1", "--act-order", "--asym", "--damp", "0.1", "--calib", "c.txt", "--samples", "4", "--seqlen", "64", "--seed", "7", "--method", "rtn", "--format", "gptq", "--force"]);
    expect(p).toEqual({
      modelDir: "m",
      outDir: "o",
      quiet: false,
      opts: { bits: 8, groupSize: -1, actOrder: true, symmetric: false, percDamp: 0.1, calib: "c.txt", nsamples: 4, seqlen: 64, seed: 7, method: "rtn", format: "gptq", force: true },
    });
  });
  it("parses the pruning and range search flags", () => {
    expect(parseQuantizeArgs(["m", "--out", "o", "--sparsity", "2:4", "--prune", "magnitude", "--clip"]).opts).toEqual({ sparsity: "2:4", prune: "magnitude", clip: true });
    expect(parseQuantizeArgs(["m", "--out", "o", "--sparsity=2:4"]).opts).toEqual({ sparsity: "2:4" });
    expect(parseQuantizeArgs(["m", "--out", "o", "--damp", "0.01", "--no-clip"]).opts).toEqual({ percDamp: 0.01, clip: false });
  });
  it("refuses malformed arguments with a usage error", () => {
    for (const bad of [
      ["m"],
      ["--out", "o"],
      ["m", "--out", "o", "--bits", "3"],
      ["m", "--out", "o", "--bogus"],
      ["m", "--out", "o", "--samples", "1.5"],
      ["m", "--out", "o", "--sym", "--asym"],
      ["m", "--out"],
      ["m", "--out", "o", "--sparsity", "1:4"],
      ["m", "--out", "o", "--sparsity", "2:4", "--prune", "wanda"],
      ["m", "--out", "o", "--prune", "magnitude"],
      ["m", "--out", "o", "--clip", "--no-clip"],
      ["m", "--out", "o", "--clip=1"],
    ]) {
      expect(() => parseQuantizeArgs(bad)).toThrow(UsageError);
    }
  });
  it("documents the recipe, the old defaults and pruning in --help", async () => {
    const out = (await cli(["quantize", "--help"])).out;
    expect(out).toMatch(/--damp F\s+relative Hessian damping \(0\.1\)/);
    expect(out).toMatch(/--damp 0\.01 --no-clip/);
    expect(out).toMatch(/--sparsity 2:4/);
    expect(out).toMatch(/--prune sparsegpt\|magnitude/);
  });
  it("exits 2 with one clear line for a bad model directory, writing nothing", async () => {
    const out = join(work, "o1");
    let r = await cli(["quantize", join(work, "nope"), "--out", out]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/does not exist/);
    mkdirSync(join(work, "empty"));
    r = await cli(["quantize", join(work, "empty"), "--out", out]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/no config.json/);
    mkdirSync(join(work, "notllama"));
    writeFileSync(join(work, "notllama", "config.json"), JSON.stringify({ model_type: "bert", hidden_size: 8 }));
    r = await cli(["quantize", join(work, "notllama"), "--out", out]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/not a Llama-family model/);
    expect(leftovers(work, "o1")).toEqual([]);
    expect((await cli(["frobnicate"])).code).toBe(2);
    expect((await cli(["quantize", "--help"])).out).toMatch(/--group-size/);
  });
});

describe.skipIf(!hasFixture)("marlin CLI refusals on tiny-llama", () => {
  const calib = join(FIXTURE, "calib.txt");
  const cases: [string, string[], RegExp][] = [
    ["group size not dividing k", ["--format", "gptq", "--group-size", "256"], /group size 256 does not divide k = 384/],
    ["a group size without Marlin kernel", ["--group-size", "16"], /no Marlin kernel/],
    ["8-bit as a Marlin checkpoint", ["--bits", "8"], /8-bit.*Marlin checkpoint/],
    ["asymmetric as a Marlin checkpoint", ["--asym"], /asymmetric.*Marlin/],
    ["dynamic act-order groups as a Marlin checkpoint", ["--act-order"], /g_idx/],
    ["a window longer than the model's positions", ["--seqlen", "4096"], /exceeds the model's max_position_embeddings 1024/],
    ["GPTQ without calibration text", ["--calib", join(work, "missing.txt")], /calibration file .* does not exist/],
    ["negative damping", ["--damp", "-1"], /damping/],
    ["2:4 sparsity with act-order", ["--sparsity", "2:4", "--act-order", "--static-groups"], /2:4 sparsity with act-order/],
    ["2:4 sparsity with RTN", ["--sparsity", "2:4", "--method", "rtn"], /2:4 sparsity needs method gptq/],
  ];
  for (const [what, extra, msg] of cases) {
    it(`refuses ${what}`, async () => {
      const r = await cli(["quantize", FIXTURE, "--out", join(work, "o2"), "--calib", calib, ...extra]);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(msg);
      expect(r.err.trim().split("\n").length).toBeLessThanOrEqual(2);
      expect(leftovers(work, "o2")).toEqual([]);
    });
  }
  it("refuses GPTQ with no --calib at all", async () => {
    const r = await cli(["quantize", FIXTURE, "--out", join(work, "o2")]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/needs a calibration text file/);
  });
  it("refuses a non-empty output directory unless --force, and leaves it alone", async () => {
    const out = join(work, "full");
    mkdirSync(out);
    writeFileSync(join(out, "keep.txt"), "mine");
    const r = await cli(["quantize", FIXTURE, "--out", out, "--method", "rtn"]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/not empty.*--force/);
    expect(leftovers(work, "full")).toEqual(["full"]);
  });
  it("quantizes with RTN through the CLI, replacing a directory with --force", async () => {
    const out = join(work, "full");
    const r = await cli(["quantize", FIXTURE, "--out", out, "--method", "rtn", "--force", "--quiet"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/wrote .*rtn, 4-bit, group 128, marlin format/);
    expect(leftovers(work, "full")).toEqual(["full"]);
  });
  it("exits 130 and leaves nothing when interrupted", async () => {
    const ac = new AbortController();
    ac.abort();
    let err = "";
    const code = await runCli(["quantize", FIXTURE, "--out", join(work, "o3"), "--method", "rtn", "--quiet"], {
      stdout: { write: () => true },
      stderr: { write: (s: string) => (err += s) },
      signal: ac.signal,
    });
    expect(code).toBe(130);
    expect(err).toMatch(/nothing was written/);
    expect(leftovers(work, "o3")).toEqual([]);
  });
});
