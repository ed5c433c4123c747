/**
 * Collectives over device buffers, for the GPU ranks of a tensor-parallel group (gpu-tp-runner.ts).
 * Two implementations:
 *
 * - NCCL (nccl-communicator.ts), one rank per GPU: queued on the rank's stream, so a decode step's
 *   collectives sit inside its CUDA graph.
 * - Host-staged (here): each collective waits for the rank's stream, copies the elements to the
 *   host, meets the other ranks in the shared-memory communicator (sums in rank order) and copies
 *   the result back. Slow and not capturable, but it needs neither NCCL nor one GPU per rank: ranks
 *   may share a device, which is how one GPU checks the sharded GPU runner against tp = 1.
 */
import { f16ToF32, f32ToF16 } from "@marlin/format";
import { DeviceBuffer, type Stream, synchronize } from "@marlin/kernel";
import type { ShmCommunicator } from "./shm-communicator.js";

export type CollectiveDType = "float16" | "float32";

/** A device buffer, or a buffer and a byte offset into it. */
export type DeviceRef = DeviceBuffer | readonly [DeviceBuffer, number];

export const deviceRef = (b: DeviceRef): [DeviceBuffer, number] => (b instanceof DeviceBuffer ? [b, 0] : [b[0], b[1]]);

export interface DeviceCommunicator {
  readonly rank: number;
  readonly worldSize: number;
  /** Whether the collectives only queue work on the rank's stream (they may be captured into a CUDA graph). */
  readonly capturable: boolean;
  /** buf[0..count) = the sum over ranks of each rank's buf[0..count); every rank ends with the same bits. */
  allReduceSum(buf: DeviceRef, count: number, dtype: CollectiveDType): void;
  /** out = part(rank 0) ++ part(rank 1) ++ ..., `count` elements per part. */
  allGather(part: DeviceRef, out: DeviceRef, count: number, dtype: CollectiveDType): void;
  /** Tells the other ranks that this one failed: their pending and later collectives throw. */
  abort(reason: string): void;
  dispose(): void;
}

export class HostStagedCommunicator implements DeviceCommunicator {
  readonly capturable = false;
  private f32 = new Float32Array(0);
  private all = new Float32Array(0);

  constructor(
    private readonly shm: ShmCommunicator,
    private readonly stream: Stream,
    private readonly gpu: number,
  ) {}

  get rank(): number {
    return this.shm.rank;
  }
  get worldSize(): number {
    return this.shm.worldSize;
  }

  allReduceSum(buf: DeviceRef, count: number, dtype: CollectiveDType): void {
    const x = this.download(buf, count, dtype);
    this.shm.allReduceSum(x, count);
    this.upload(buf, x, count, dtype);
  }

  allGather(part: DeviceRef, out: DeviceRef, count: number, dtype: CollectiveDType): void {
    const x = this.download(part, count, dtype);
    const n = count * this.worldSize;
    if (this.all.length < n) this.all = new Float32Array(n);
    this.shm.allGather(x, this.all, count);
    this.upload(out, this.all, n, dtype);
  }

  abort(reason: string): void {
    this.shm.abort(reason);
  }

  dispose(): void {
    this.shm.dispose();
  }

  /** The rank's elements as fp32 (waits for its stream: downloads run on the legacy stream). */
  private download(buf: DeviceRef, count: number, dtype: CollectiveDType): Float32Array {
    const [b, off] = deviceRef(buf);
    this.stream.synchronize();
    if (this.f32.length < count) this.f32 = new Float32Array(count);
    const x = this.f32.subarray(0, count);
    if (dtype === "float32") b.download(x, off);
    else x.set(f16ToF32(b.download(new Uint16Array(count), off)));
    return x;
  }

  private upload(buf: DeviceRef, x: Float32Array, count: number, dtype: CollectiveDType): void {
    const [b, off] = deviceRef(buf);
    const v = x.subarray(0, count);
    b.upload(dtype === "float32" ? v : f32ToF16(v), off);
    // a synchronous upload of pageable memory may still be in flight when it returns; the rank's
    // (non-blocking) stream must not read the buffer before it lands
    synchronize(this.gpu);
  }
}
