import { InvalidArgumentError, Rng, runSeed } from "@marlin/core";
import { describe, expect, it } from "vitest";
import { formatDuration, Progress, sampleCalibration, tokenStream } from "../src/index.js";

const seed = runSeed();
console.log(`pipeline-parts: MARLIN_SEED=${seed}`);

describe("calibration sampling", () => {
  it("concatenates lines with EOS and draws replayable in-range windows", () => {
    const rng = new Rng(seed);
    const lines = Array.from({ length: 50 }, () => Array.from({ length: rng.int(1, 40) }, () => rng.int(3, 4096)));
    const s = tokenStream(lines, 2);
    expect(s.length).toBe(lines.reduce((a, l) => a + l.length + 1, 0));
    expect(Array.from(s.subarray(0, lines[0].length + 1))).toEqual([...lines[0], 2]);
    const a = sampleCalibration(s, 16, 64, new Rng(seed));
    const b = sampleCalibration(s, 16, 64, new Rng(seed));
    expect(a.map((w) => Array.from(w))).toEqual(b.map((w) => Array.from(w)));
    const text = Array.from(s).join(",");
    for (const w of a) {
      expect(w.length).toBe(64);
      expect(text.includes(Array.from(w).join(","))).toBe(true);
    }
    // a stream of exactly one window gives that window every time
    expect(Array.from(sampleCalibration(s.subarray(0, 64), 3, 64, rng)[2])).toEqual(Array.from(s.subarray(0, 64)));
  });
  it("refuses text shorter than one window and bad counts", () => {
    const rng = new Rng(seed);
    expect(() => sampleCalibration(new Int32Array(10), 4, 64, rng)).toThrow(/fewer than one window/);
    expect(() => sampleCalibration(new Int32Array(100), 0, 64, rng)).toThrow(InvalidArgumentError);
    expect(() => sampleCalibration(new Int32Array(100), 4, 1, rng)).toThrow(InvalidArgumentError);
  });
});

describe("progress", () => {
  it("formats durations", () => {
    expect([formatDuration(9.4), formatDuration(75), formatDuration(3725), formatDuration(Number.NaN)]).toEqual(["9s", "1m15s", "1h02m05s", "?"]);
  });
  it("reports elapsed time and a weighted ETA, redrawing on a TTY", () => {
    let t = 0;
    const out: string[] = [];
    const p = new Progress(10, { label: "quantize", sink: { write: (s) => out.push(s), isTTY: true }, now: () => t, width: 10 });
    t = 30_000;
    p.tick(3, "layer 3");
    expect(out[0].startsWith("\rquantize [###-------] 3/10 layer 3  elapsed 30s  ETA 1m10s")).toBe(true);
    t = 100_000;
    p.tick(7);
    expect(out[1]).toContain("[##########] 10/10");
    expect(out[1]).toContain("done");
    expect(out[1].endsWith("\n")).toBe(true);
  });
  it("prints throttled lines when not a TTY, always the last", () => {
    let t = 0;
    const out: string[] = [];
    const p = new Progress(4, { sink: { write: (s) => out.push(s) }, now: () => t, minIntervalMs: 1000 });
    p.tick();
    t = 10;
    p.tick();
    t = 20;
    p.tick();
    expect(out.length).toBe(1);
    t = 30;
    p.tick();
    expect(out.length).toBe(2);
    expect(out[1]).toContain("4/4");
    expect(() => new Progress(0)).toThrow(InvalidArgumentError);
  });
});
