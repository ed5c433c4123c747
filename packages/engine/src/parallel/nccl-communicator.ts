/**
 * NCCL between GPUs, one rank per device: the same Communicator as the CPU ranks, over device
 * buffers, each collective queued on the rank's stream (so it can sit inside a captured CUDA graph
 * of a decode step). NCCL is loaded at run time (libnccl.so.2, native/src/engine/parallel); nothing here
 * runs on a machine without it, and ncclStatus() says why.
 *
 * Sums are NCCL's: with a fixed topology, rank count, algorithm and protocol (NCCL_ALGO=Ring,
 * NCCL_PROTO=Simple for reproducible runs) every rank receives the same bits, but the order of the
 * additions is NCCL's ring order, not rank order. NVLink SHARP (NCCL_NVLS_ENABLE) stays off.
 */
import { DeviceBuffer, native, type Stream, typedError } from "@marlin/kernel";
import { type Communicator, CommunicatorError } from "./communicator.js";
import { type DeviceCommunicator, type DeviceRef, deviceRef as ref } from "./device-communicator.js";

export interface NcclStatus {
  available: boolean;
  reason?: string;
  /** NCCL_VERSION_CODE, e.g. 22805 for 2.28.5. */
  version?: number;
}

type Addon = Record<string, (...a: any[]) => any>;

function addon(): Addon {
  return native() as unknown as Addon;
}

function nccl<T>(fn: (n: Addon) => T): T {
  try {
    return fn(addon());
  } catch (e) {
    throw typedError(e);
  }
}

/** Whether NCCL can be used here, and why not. Never throws. */
export function ncclStatus(): NcclStatus {
  try {
    const n = addon();
    if (typeof n.ncclStatus !== "function") return { available: false, reason: "marlin.node predates NCCL support (rebuild @marlin/kernel)" };
    return n.ncclStatus() as NcclStatus;
  } catch (e) {
    return { available: false, reason: (e as Error).message };
  }
}

export type NcclDType = "float16" | "bfloat16" | "float32";
const DTYPE: Record<NcclDType, number> = { float16: 0, bfloat16: 1, float32: 2 };
const BYTES: Record<NcclDType, number> = { float16: 2, bfloat16: 2, float32: 4 };


export interface NcclRankOptions {
  /** The rank's stream: collectives are queued there (default: the legacy default stream). */
  stream?: Stream;
  /** Element type of the buffers (default float16, the activations). */
  dtype?: NcclDType;
}

export class NcclCommunicator implements Communicator<DeviceRef>, DeviceCommunicator {
  readonly capturable = true;
  readonly rank: number;
  readonly worldSize: number;
  readonly device: number;
  private readonly comm: bigint;
  private readonly stream?: Stream;
  private readonly dtype: NcclDType;
  private flag?: DeviceBuffer;
  private failed?: string;

  private constructor(comm: bigint, rank: number, worldSize: number, device: number, opts: NcclRankOptions) {
    this.comm = comm;
    this.rank = rank;
    this.worldSize = worldSize;
    this.device = device;
    this.stream = opts.stream;
    this.dtype = opts.dtype ?? "float16";
  }

  /** Made by rank 0 and handed to every rank (e.g. as workerData). */
  static uniqueId(): Uint8Array {
    return nccl((n) => n.ncclUniqueId() as Uint8Array);
  }

  /** Joins the group; blocks until all worldSize ranks joined, so each rank calls it from its own thread. */
  static initRank(id: Uint8Array, worldSize: number, rank: number, device: number, opts: NcclRankOptions = {}): NcclCommunicator {
    const comm = nccl((n) => n.ncclInitRank(id, worldSize, rank, device) as bigint);
    return new NcclCommunicator(comm, rank, worldSize, device, opts);
  }

  /** Every rank's communicator from one thread (ncclCommInitAll): rank i on devices[i]. */
  static initAll(devices: number[], opts: NcclRankOptions[] = []): NcclCommunicator[] {
    const comms = nccl((n) => n.ncclInitAll(devices) as bigint[]);
    return comms.map((c, i) => new NcclCommunicator(c, i, devices.length, devices[i], opts[i] ?? {}));
  }

  /** dtype: the element type of this call (default: the communicator's). */
  allReduceSum(buf: DeviceRef, count?: number, dtype: NcclDType = this.dtype): void {
    const [b, off] = ref(buf);
    const n = count ?? (b.byteLength - off) / BYTES[dtype];
    this.run(() => addon().ncclAllReduceSum(this.comm, b.handle, off, n, DTYPE[dtype], this.stream?.handle));
  }

  allGather(part: DeviceRef, out: DeviceRef, count?: number, dtype: NcclDType = this.dtype): void {
    const [s, so] = ref(part);
    const [r, ro] = ref(out);
    const n = count ?? (s.byteLength - so) / BYTES[dtype];
    this.run(() => addon().ncclAllGather(this.comm, s.handle, so, r.handle, ro, n, DTYPE[dtype], this.stream?.handle, this.worldSize));
  }

  /** A one-element all-reduce, waited for on the host. */
  barrier(): void {
    this.flag ??= DeviceBuffer.alloc(4, this.device);
    this.run(() => addon().ncclAllReduceSum(this.comm, this.flag!.handle, 0, 1, DTYPE.float32, this.stream?.handle));
    if (this.stream) this.stream.synchronize();
    else nccl((n) => n.synchronize(this.device));
  }

  abort(reason: string): void {
    this.failed ??= reason;
  }

  dispose(): void {
    this.flag?.free();
    nccl((n) => n.ncclDestroy(this.comm));
  }

  private run(fn: () => void): void {
    if (this.failed) throw new CommunicatorError(this.rank, `the group was aborted: ${this.failed}`);
    try {
      fn();
    } catch (e) {
      const err = typedError(e);
      this.failed = (err as Error)?.message ?? String(err);
      throw err;
    }
  }
}
