/**
 * What tensor-parallel ranks exchange: the collectives of one step, in the same order on every
 * rank. Two implementations share this interface: the shared-memory one between worker threads
 * (CPU, shm-communicator.ts) and NCCL between GPUs (nccl-communicator.ts, one rank per device).
 *
 * Every rank must hold bit-identical results after a collective (the residual stream and the
 * logits are replicated), so reductions sum ranks in rank order, never in arrival order.
 */
import { MarlinError } from "@marlin/core";

export interface Communicator<B = Float32Array> {
  readonly rank: number;
  readonly worldSize: number;
  /** buf[0..count) = sum over ranks of each rank's buf[0..count), in rank order 0, 1, ... */
  allReduceSum(buf: B, count?: number): void;
  /** out = part(rank 0) ++ part(rank 1) ++ ...; every part has `count` elements (default part.length). */
  allGather(part: B, out: B, count?: number): void;
  /** Returns once every rank called it. */
  barrier(): void;
  /** Tells the other ranks that this one failed: their pending and later collectives throw. */
  abort(reason: string): void;
  dispose(): void;
}

/** A collective failed: a peer aborted, timed out, or was called with mismatched sizes. */
export class CommunicatorError extends MarlinError {
  readonly rank: number;
  constructor(rank: number, message: string, options?: { cause?: unknown }) {
    super("ERR_MARLIN_COMMUNICATOR", `rank ${rank}: ${message}`, options);
    this.rank = rank;
  }
}

/** The tensor-parallel size does not fit the model or the machine (heads, GPUs). */
export class TensorParallelError extends MarlinError {
  constructor(message: string) {
    super("ERR_MARLIN_TENSOR_PARALLEL", message);
  }
}

/** A single rank: every collective is the identity (tp = 1 runs the same code). */
export class SoloCommunicator implements Communicator<Float32Array> {
  readonly rank = 0;
  readonly worldSize = 1;
  allReduceSum(): void {}
  allGather(part: Float32Array, out: Float32Array, count = part.length): void {
    if (out !== part) out.set(part.subarray(0, count));
  }
  barrier(): void {}
  abort(): void {}
  dispose(): void {}
}
