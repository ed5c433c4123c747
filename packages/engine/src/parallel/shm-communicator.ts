/**
 * The CPU communicator: ranks are worker threads of one process sharing one SharedArrayBuffer.
 * Each rank copies its part into its own slot, a barrier, then each rank sums one slice of the
 * elements over the slots in rank order into the result area, a barrier, and every rank copies the
 * result back. Sums therefore never depend on which rank arrived first, and every rank ends with
 * the same bits. Buffers larger than the slots go through in chunks.
 *
 * The model's own arrays stay ordinary (the addon's ops do not take SharedArrayBuffer views in
 * Node 20), which is why a collective copies in and out rather than working in place.
 */
import { InvalidArgumentError } from "@marlin/core";
import { type Communicator, CommunicatorError } from "./communicator.js";

/** What every rank needs to join: made once by createShmState, passed to workers as workerData. */
export interface ShmState {
  worldSize: number;
  /** Elements per slot (a chunk of a collective). */
  capacity: number;
  control: SharedArrayBuffer;
  data: SharedArrayBuffer;
}

// control words
const COUNT = 0;
const GEN = 1;
const ABORTED = 2; // 1 + the rank that aborted, 0 while healthy
const REASON_LEN = 3;
const SIZES = 4; // one per rank: the element count it brought to the current collective
const REASON_BYTES = 1024;

export function createShmState(worldSize: number, capacity = 1 << 18): ShmState {
  if (!Number.isSafeInteger(worldSize) || worldSize < 1 || worldSize > 64) throw new InvalidArgumentError(`worldSize must be an integer in [1, 64], got ${worldSize}`);
  if (!Number.isSafeInteger(capacity) || capacity < worldSize) throw new InvalidArgumentError(`capacity must be an integer >= worldSize, got ${capacity}`);
  return {
    worldSize,
    capacity,
    control: new SharedArrayBuffer((SIZES + worldSize) * 4 + REASON_BYTES),
    data: new SharedArrayBuffer((worldSize + 1) * capacity * 4),
  };
}

export interface ShmOptions {
  /** A rank waiting longer than this for its peers aborts the group (default 300 s). */
  timeoutMs?: number;
}

export class ShmCommunicator implements Communicator<Float32Array> {
  readonly rank: number;
  readonly worldSize: number;
  private readonly ctl: Int32Array;
  private readonly reason: Uint8Array;
  private readonly slots: Float32Array[];
  private readonly result: Float32Array;
  private readonly cap: number;
  private readonly timeoutMs: number;

  constructor(state: ShmState, rank: number, opts: ShmOptions = {}) {
    if (!Number.isInteger(rank) || rank < 0 || rank >= state.worldSize) throw new InvalidArgumentError(`rank ${rank} is outside [0, ${state.worldSize})`);
    this.rank = rank;
    this.worldSize = state.worldSize;
    this.cap = state.capacity;
    this.ctl = new Int32Array(state.control, 0, SIZES + state.worldSize);
    this.reason = new Uint8Array(state.control, (SIZES + state.worldSize) * 4, REASON_BYTES);
    this.slots = Array.from({ length: state.worldSize }, (_, r) => new Float32Array(state.data, r * state.capacity * 4, state.capacity));
    this.result = new Float32Array(state.data, state.worldSize * state.capacity * 4, state.capacity);
    this.timeoutMs = opts.timeoutMs ?? 300_000;
  }

  allReduceSum(buf: Float32Array, count = buf.length): void {
    this.checkCount(buf, count);
    const N = this.worldSize;
    if (N === 1) return;
    const mine = this.slots[this.rank];
    for (let at = 0; at < count || (count === 0 && at === 0); at += this.cap) {
      const len = Math.min(this.cap, count - at);
      mine.set(buf.subarray(at, at + len));
      this.arrive(len);
      // this rank's slice of the chunk, summed over ranks in rank order
      const per = Math.ceil(len / N);
      const lo = Math.min(len, this.rank * per);
      const hi = Math.min(len, lo + per);
      const res = this.result;
      res.set(this.slots[0].subarray(lo, hi), lo);
      for (let r = 1; r < N; r++) {
        const s = this.slots[r];
        for (let i = lo; i < hi; i++) res[i] += s[i];
      }
      this.barrier();
      buf.set(res.subarray(0, len), at);
      if (count === 0) break;
    }
  }

  allGather(part: Float32Array, out: Float32Array, count = part.length): void {
    this.checkCount(part, count);
    const N = this.worldSize;
    if (out.length < count * N) throw new InvalidArgumentError(`allGather: out has ${out.length} elements, needs ${count} x ${N}`);
    const mine = this.slots[this.rank];
    for (let at = 0; at < count || (count === 0 && at === 0); at += this.cap) {
      const len = Math.min(this.cap, count - at);
      mine.set(part.subarray(at, at + len));
      this.arrive(len);
      for (let r = 0; r < N; r++) out.set(this.slots[r].subarray(0, len), r * count + at);
      this.barrier();
      if (count === 0) break;
    }
  }

  barrier(): void {
    const ctl = this.ctl;
    this.checkAborted();
    const gen = Atomics.load(ctl, GEN);
    if (Atomics.add(ctl, COUNT, 1) === this.worldSize - 1) {
      Atomics.store(ctl, COUNT, 0);
      Atomics.add(ctl, GEN, 1);
      Atomics.notify(ctl, GEN);
    } else {
      const deadline = Date.now() + this.timeoutMs;
      while (Atomics.load(ctl, GEN) === gen) {
        this.checkAborted();
        const left = deadline - Date.now();
        if (left <= 0) {
          const msg = `timed out after ${this.timeoutMs} ms waiting for the other ranks`;
          this.abort(msg);
          throw new CommunicatorError(this.rank, msg);
        }
        Atomics.wait(ctl, GEN, gen, Math.min(left, 1000));
      }
    }
    this.checkAborted();
  }

  abort(reason: string): void {
    const ctl = this.ctl;
    if (Atomics.compareExchange(ctl, ABORTED, 0, this.rank + 1) === 0) {
      const bytes = new TextEncoder().encode(reason).subarray(0, REASON_BYTES);
      this.reason.set(bytes);
      Atomics.store(ctl, REASON_LEN, bytes.length);
    }
    Atomics.add(ctl, GEN, 1); // wakes every waiter; they see ABORTED
    Atomics.notify(ctl, GEN);
  }

  /** The rank that aborted the group and why, or undefined while it is healthy. */
  aborted(): { rank: number; reason: string } | undefined {
    const who = Atomics.load(this.ctl, ABORTED);
    if (who === 0) return undefined;
    const len = Atomics.load(this.ctl, REASON_LEN);
    return { rank: who - 1, reason: new TextDecoder().decode(this.reason.slice(0, len)) };
  }

  dispose(): void {}

  /** Barrier that also checks every rank brought the same element count. */
  private arrive(len: number): void {
    Atomics.store(this.ctl, SIZES + this.rank, len);
    this.barrier();
    for (let r = 0; r < this.worldSize; r++) {
      const other = Atomics.load(this.ctl, SIZES + r);
      if (other !== len) throw new CommunicatorError(this.rank, `collective size mismatch: rank ${this.rank} brought ${len} elements, rank ${r} ${other}`);
    }
  }

  private checkAborted(): void {
    const a = this.aborted();
    if (a) throw new CommunicatorError(this.rank, a.rank === this.rank ? `this rank aborted: ${a.reason}` : `rank ${a.rank} aborted: ${a.reason}`);
  }

  private checkCount(buf: Float32Array, count: number): void {
    if (!(buf instanceof Float32Array)) throw new InvalidArgumentError("collectives take Float32Array buffers");
    if (!Number.isSafeInteger(count) || count < 0 || count > buf.length) throw new InvalidArgumentError(`count ${count} is outside [0, ${buf.length}]`);
  }
}
