// The `marlin` command's surface: --version, --help everywhere, exit 2 for bad arguments (nothing
// done), and the benchmark's pieces (dataset, arrivals, percentiles, tables, chart) without a server.
import { runSeed } from "@marlin/core";
import { describe, expect, test } from "vitest";
import { compareReports, dist, formatReport, makeDataset, parseServeArgs, percentile, poissonGaps, type RateResult, runCli, type ServeReport, serveChart, version } from "../src/index.js";
import { FIXTURE, hasFixture, run } from "./helpers.js";

const seed = runSeed();

describe("marlin command line", () => {
  test("--version and --help on every command", async () => {
    expect((await run(["--version"])).out).toBe(`marlin ${version()} (node ${process.version})\n`);
    const top = await run(["--help"]);
    expect(top.code).toBe(0);
    for (const c of ["serve", "generate", "quantize", "bench serve", "bench compare", "bench random-model"]) expect(top.out).toContain(c);
    const want: [string[], RegExp][] = [
      [["serve", "--help"], /--max-num-seqs/],
      [["generate", "--help"], /--max-tokens/],
      [["quantize", "--help"], /--group-size/],
      [["quantize", "--help"], /--sparsity 2:4/],
      [["quantize", "--help"], /--clip \| --no-clip/],
      [["bench", "--help"], /--request-rate/],
      [["bench", "serve", "--help"], /--goodput/],
      [["bench", "compare", "-h"], /compare/],
      [["bench", "random-model", "--help"], /--hidden-size/],
    ];
    for (const [args, re] of want) {
      const r = await run(args);
      expect(r.code, args.join(" ")).toBe(0);
      expect(r.out, args.join(" ")).toMatch(re);
    }
    expect((await run([])).code).toBe(2);
  });

  test("bad arguments exit 2 with one clear line", async () => {
    const cases: [string[], RegExp][] = [
      [["frobnicate"], /unknown command frobnicate/],
      [["serve"], /missing <model-dir>/],
      [["serve", "/nonexistent/model"], /does not exist/],
      [["serve", FIXTURE, "--port", "70000"], /--port must be <= 65535/],
      [["serve", FIXTURE, "--device", "tpu"], /--device must be auto \| cpu \| cuda/],
      [["serve", FIXTURE, "--bogus"], /Unknown option '--bogus'/],
      [["serve", FIXTURE, "--chat-template", "/nonexistent.jinja"], /cannot read/],
      [["generate", FIXTURE], /missing <prompt>/],
      [["generate", FIXTURE, "hi", "--temperature", "x"], /--temperature needs a number/],
      [["bench", "serve", "--request-rate", "0"], /positive numbers or inf/],
      [["bench", "serve", "--goodput", "ttfb:3"], /unknown metric "ttfb"/],
      [["bench", "serve", "--base-url", "http://127.0.0.1:9"], /cannot reach/],
      [["bench", "compare", "a.json"], /two or more/],
      [["bench", "nope"], /unknown bench command/],
      [["quantize", FIXTURE], /missing --out/],
      [["quantize", FIXTURE, "--out", "/tmp/x", "--prune", "magnitude"], /--prune needs --sparsity 2:4/],
      [["quantize", FIXTURE, "--out", "/tmp/x", "--sparsity", "4:8"], /--sparsity must be 2:4/],
    ];
    for (const [args, re] of cases) {
      const r = await run(args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.err, args.join(" ")).toMatch(re);
      expect(r.err.trim().split("\n").length, args.join(" ")).toBeLessThanOrEqual(2);
    }
  });

  test.skipIf(!hasFixture)("serve options map onto the server's", () => {
    const a = parseServeArgs(
      [FIXTURE, "--host", "0.0.0.0", "--port", "0", "--device", "cpu", "--tensor-parallel-size", "2", "--max-num-seqs", "8", "--max-model-len", "512", "--api-key", "k", "--served-model-name", "m", "--max-queued", "9", "--idle-timeout", "1.5", "--shutdown-timeout", "2"],
      {},
    );
    if (a === "help") throw new Error("unexpected help");
    expect(a.host).toBe("0.0.0.0");
    expect(a.port).toBe(0);
    expect(a.options).toMatchObject({ apiKey: "k", servedModelName: "m", maxQueued: 9, idleTimeoutMs: 1500, shutdownTimeoutMs: 2000, load: { device: "cpu", tensorParallelSize: 2, maxNumSeqs: 8, maxModelLen: 512 } });
    const env = parseServeArgs([FIXTURE], { MARLIN_API_KEY: "from-env" });
    expect(env !== "help" && env.options.apiKey).toBe("from-env");
  });
});

describe("bench serve pieces", () => {
  test("percentiles interpolate like numpy; dist summarizes", () => {
    const s = [1, 2, 3, 4, 10];
    expect(percentile(s, 50)).toBe(3);
    expect(percentile(s, 90)).toBeCloseTo(7.6, 12); // rank 3.6: 4 + 0.6 * 6
    expect(percentile(s, 99)).toBeCloseTo(9.76, 12);
    expect(percentile([5], 99)).toBe(5);
    expect(dist([4, 2, 1, 3, 10])).toMatchObject({ n: 5, mean: 4, p50: 3, max: 10 });
    expect(dist([])).toBeUndefined();
  });

  test("datasets are seeded and sized as asked; Poisson gaps have mean 1/rate", () => {
    console.log(`bench seed ${seed} (MARLIN_SEED replays)`);
    const fixed = makeDataset({ kind: "fixed", numPrompts: 50, inputLen: 32, outputLen: 16, vocabSize: 4096, seed });
    expect(fixed.every((r) => r.promptIds.length === 32 && r.outputLen === 16)).toBe(true);
    expect(fixed.flatMap((r) => r.promptIds).every((t) => t >= 204 && t < 3892)).toBe(true);
    expect(makeDataset({ kind: "fixed", numPrompts: 50, inputLen: 32, outputLen: 16, vocabSize: 4096, seed })).toEqual(fixed);
    const random = makeDataset({ kind: "random", numPrompts: 400, inputLen: 100, outputLen: 40, rangeRatio: 0.5, vocabSize: 4096, seed });
    const lens = random.map((r) => r.promptIds.length);
    expect(Math.min(...lens)).toBeGreaterThanOrEqual(50);
    expect(Math.max(...lens)).toBeLessThanOrEqual(150);
    expect(new Set(lens).size).toBeGreaterThan(20);
    const gaps = poissonGaps(20000, 8, seed);
    const mean = gaps.reduce((a, b) => a + b, 0) / (gaps.length - 1);
    expect(Math.abs(mean - 1 / 8) / (1 / 8)).toBeLessThan(0.05);
    expect(poissonGaps(5, Number.POSITIVE_INFINITY, seed)).toEqual([0, 0, 0, 0, 0]);
    expect(() => poissonGaps(5, 0, seed)).toThrow(/rate/);
  });

  test("tables and the chart come from the JSON alone", () => {
    const d = { n: 10, mean: 5, std: 1, p50: 4, p90: 8, p99: 9, max: 9.5 };
    const row = (rate: number | "inf", tput: number): RateResult => ({
      requestRate: rate,
      numPrompts: 10,
      completed: 10,
      failed: 0,
      errors: {},
      durationS: 2,
      totalInputTokens: 100,
      totalOutputTokens: 200,
      requestThroughput: 5,
      outputThroughput: tput,
      totalTokenThroughput: 150,
      maxConcurrency: null,
      ttftMs: d,
      tpotMs: d,
      itlMs: d,
      e2elMs: d,
    });
    const run = (label: string, k: number): ServeReport => ({
      bench: "serve",
      label,
      date: "2026-12-01T00:00:00.000Z",
      commit: "abc1234",
      device: "test (cpu)",
      server: null,
      model: label,
      baseUrl: "http://x",
      dataset: { kind: "fixed", numPrompts: 10, inputLen: 10, outputLen: 20, vocabSize: 100 },
      seed: 0,
      maxConcurrency: null,
      results: [row(1, 10 * k), row("inf", 100 * k)],
    });
    expect(formatReport(run("dense", 1))).toMatch(/\| inf +\| 10 +\| 0 +\| 5\.00 +\| 100\.0/);
    const cmp = compareReports([run("dense", 1), run("marlin", 2)]);
    expect(cmp).toMatch(/marlin\/dense tok\/s/);
    expect(cmp).toMatch(/\| inf .*2\.00x/);
    const svg = serveChart([{ label: "dense", results: run("dense", 1).results }, { label: "marlin", results: run("marlin", 2).results }], "caption <&>");
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg).toContain("caption &lt;&amp;&gt;");
    expect(svg.match(/<polyline/g)!.length).toBe(2 + 4 + 4); // throughput: p50 only; TTFT and TPOT: p50 and p99, per run
  });

  test.skipIf(!hasFixture)("runCli dispatches to quantize with @marlin/gptq's exit codes", async () => {
    const r = await runCli(["quantize", FIXTURE, "--out", "/tmp/x", "--bits", "3"], { stdout: { write: () => true }, stderr: { write: () => true } });
    expect(r).toBe(2);
  });
});
