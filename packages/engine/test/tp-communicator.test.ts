// The shared-memory communicator between worker threads: all-reduce and all-gather results, the
// same bits on every rank whatever the arrival order (sums in rank order), chunking past the slot
// size, and the failures (size mismatch, a peer's abort, a timeout) as CommunicatorErrors.
import { Worker } from "node:worker_threads";
import { Rng } from "@marlin/core";
import { describe, expect, test } from "vitest";
import { CommunicatorError, createShmState, ShmCommunicator, type ShmState, SoloCommunicator } from "../src/index.js";

const SEED = Number(process.env.MARLIN_SEED ?? 1234);
console.log(`tp-communicator seed ${SEED} (MARLIN_SEED)`);
const workerUrl = new URL("./fixtures/comm-rank.mjs", import.meta.url);

type Step =
  | { op: "allReduce" | "allGather"; inputs: number[][]; count?: number; delayMs?: number[] }
  | { op: "barrier"; delayMs?: number[] }
  | { op: "abort"; rank: number; reason: string };
interface RankResult {
  rank: number;
  results: number[][];
  error?: { code: string; message: string };
}

/** Ranks 1..N-1 in workers; rank 0 runs `main` on this thread. */
async function group(state: ShmState, plan: Step[], main: (c: ShmCommunicator) => void, timeoutMs = 20_000): Promise<RankResult[]> {
  const workers = Array.from({ length: state.worldSize - 1 }, (_, i) => new Worker(workerUrl, { workerData: { state, rank: i + 1, plan, timeoutMs } }));
  const done = workers.map((w) => new Promise<RankResult>((res, rej) => {
        w.once("message", res);
        w.once("error", rej);
      }));
  try {
    main(new ShmCommunicator(state, 0, { timeoutMs }));
    return await Promise.all(done);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

function inputs(rng: Rng, N: number, len: number): number[][] {
  return Array.from({ length: N }, () => Array.from(Float32Array.from({ length: len }, () => (rng.next() * 2 - 1) * 10 ** Math.floor(rng.next() * 6 - 3))));
}

/** fp32 sum in rank order: the reference every rank must match bit for bit. */
function rankOrderSum(xs: number[][]): Float32Array {
  const out = Float32Array.from(xs[0]);
  for (let r = 1; r < xs.length; r++) for (let i = 0; i < out.length; i++) out[i] += xs[r][i];
  return out;
}

describe("shared-memory communicator", () => {
  test.each([2, 3, 4])("all-reduce and all-gather over %i ranks, chunked, uneven arrival", async (N) => {
    const rng = new Rng(SEED + N);
    const state = createShmState(N, 64); // 64-element slots: 1000 elements go in 16 chunks
    const plan: Step[] = [];
    for (let t = 0; t < 4; t++) plan.push({ op: "allReduce", inputs: inputs(rng, N, t === 0 ? 1000 : 37 + t), delayMs: Array.from({ length: N }, () => Math.floor(rng.next() * 5)) });
    plan.push({ op: "allGather", inputs: inputs(rng, N, 150) });
    plan.push({ op: "allReduce", inputs: inputs(rng, N, 0) });
    plan.push({ op: "barrier" });
    const mine: number[][] = [];
    const others = await group(state, plan, (c) => {
      for (const s of plan) {
        if (s.op === "allReduce") {
          const b = Float32Array.from(s.inputs[0]);
          c.allReduceSum(b);
          mine.push(Array.from(b));
        } else if (s.op === "allGather") {
          const out = new Float32Array(s.inputs[0].length * N);
          c.allGather(Float32Array.from(s.inputs[0]), out);
          mine.push(Array.from(out));
        } else if (s.op === "barrier") c.barrier();
      }
    });
    for (const o of others) expect(o.error).toBeUndefined();
    let at = 0;
    for (const s of plan) {
      if (s.op === "barrier" || s.op === "abort") continue;
      const want = s.op === "allReduce" ? Array.from(rankOrderSum(s.inputs)) : s.inputs.flat();
      expect(mine[at]).toEqual(want);
      for (const o of others) expect(o.results[at]).toEqual(want); // identical bits on every rank
      at++;
    }
  });

  test("size mismatch: every rank gets a CommunicatorError", async () => {
    const state = createShmState(2, 64);
    const plan: Step[] = [{ op: "allReduce", inputs: [[1, 2, 3], [1, 2]] }];
    let err: unknown;
    const [w] = await group(state, plan, (c) => {
      try {
        c.allReduceSum(Float32Array.from([1, 2, 3]));
      } catch (e) {
        err = e;
      }
    });
    expect(err).toBeInstanceOf(CommunicatorError);
    expect(String((err as Error).message)).toMatch(/size mismatch/);
    expect(w.error?.code).toBe("ERR_MARLIN_COMMUNICATOR");
  });

  test("a peer's abort ends rank 0's pending all-reduce with its reason", async () => {
    const state = createShmState(2, 64);
    const plan: Step[] = [{ op: "abort", rank: 1, reason: "out of memory in layer 3" }];
    let err: unknown;
    await group(state, plan, (c) => {
      try {
        c.allReduceSum(new Float32Array(8));
      } catch (e) {
        err = e;
      }
    });
    expect(err).toBeInstanceOf(CommunicatorError);
    expect((err as Error).message).toMatch(/rank 1 aborted: out of memory in layer 3/);
  });

  test("a missing peer times out instead of hanging", () => {
    const c = new ShmCommunicator(createShmState(2, 64), 0, { timeoutMs: 200 });
    const t0 = Date.now();
    expect(() => c.allReduceSum(new Float32Array(4))).toThrow(/timed out after 200 ms/);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(() => c.barrier()).toThrow(CommunicatorError); // the group stays aborted
  });

  test("argument errors", () => {
    expect(() => createShmState(0)).toThrow(/worldSize/);
    const c = new ShmCommunicator(createShmState(1, 8), 0);
    expect(() => c.allReduceSum(new Float32Array(2), 3)).toThrow(/count 3/);
    expect(() => new ShmCommunicator(createShmState(2, 8), 2)).toThrow(/rank 2/);
    const solo = new SoloCommunicator();
    const out = new Float32Array(2);
    solo.allGather(Float32Array.from([1, 2]), out);
    expect(Array.from(out)).toEqual([1, 2]);
  });
});
