/**
 * Scratch memory of the Marlin GPU kernel: per-column counters (zero between calls: the kernel
 * resets them itself, so one workspace can be reused and captured in CUDA graphs), fp32 partial
 * tiles of split columns, and the act-order copy of the activations. One workspace per stream:
 * two kernels running at once must not share one.
 */
import { DisposedError } from "@marlin/core";
import { DeviceBuffer } from "./buffer.js";
import { call } from "./native.js";
import type { Stream } from "./stream.js";

export class MarlinWorkspace {
  readonly device: number;
  private buf: DeviceBuffer | undefined;
  private disposed = false;

  constructor(device = 0) {
    this.device = device;
  }

  /** Bytes the kernel needs for this problem on this workspace's device. */
  static bytesFor(m: number, n: number, k: number, actOrder: boolean, device = 0): number {
    // Only m (act-order copy, capped at 1024 rows) and k matter: memoized, it is asked every call.
    const key = `${device}:${actOrder ? Math.min(m, 1024) : 0}:${actOrder ? k : 0}`;
    let v = MarlinWorkspace.sizes.get(key);
    if (v === undefined) {
      v = call((a) => a.marlinWorkspaceBytes(m, n, k, actOrder, device)) as number;
      if (MarlinWorkspace.sizes.size > 4096) MarlinWorkspace.sizes.clear();
      MarlinWorkspace.sizes.set(key, v);
    }
    return v;
  }
  private static sizes = new Map<string, number>();

  /**
   * The buffer, grown (and zeroed) when too small. Call it before capturing a graph: growing
   * allocates. Growing waits for queued work, so memory still in use is never freed under a kernel.
   */
  ensure(m: number, n: number, k: number, actOrder: boolean, stream?: Stream): DeviceBuffer {
    return this.ensureBytes(MarlinWorkspace.bytesFor(m, n, k, actOrder, this.device), stream);
  }

  /** The buffer grown (and zeroed) to at least `need` bytes: for other kernels sharing it (the Hopper kernel). */
  ensureBytes(need: number, stream?: Stream): DeviceBuffer {
    if (this.disposed) throw new DisposedError("MarlinWorkspace");
    if (!this.buf || this.buf.freed || this.buf.byteLength < need) {
      if (this.buf && !this.buf.freed) {
        call((a) => a.synchronize(this.device));
        this.buf.free();
      }
      const size = Math.max(need, this.buf ? this.buf.byteLength * 2 : 0);
      this.buf = DeviceBuffer.alloc(size, this.device);
      this.buf.fillBytes(0, 0, size, stream);
    }
    return this.buf;
  }

  get byteLength(): number {
    return this.buf && !this.buf.freed ? this.buf.byteLength : 0;
  }

  dispose(): void {
    this.disposed = true;
    this.buf?.free();
    this.buf = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  private static perStream = new WeakMap<object, MarlinWorkspace>();
  /** The workspace of a stream (kernels on one stream run in order, so they may share one); the device's for none. */
  static forStream(device = 0, stream?: Stream): MarlinWorkspace {
    if (!stream) return MarlinWorkspace.forDevice(device);
    let w = MarlinWorkspace.perStream.get(stream);
    if (!w || w.disposed) {
      w = new MarlinWorkspace(device);
      MarlinWorkspace.perStream.set(stream, w);
    }
    return w;
  }

  private static shared = new Map<number, MarlinWorkspace>();
  /** The process-wide workspace of a device, used when a call names none (legacy default stream). */
  static forDevice(device = 0): MarlinWorkspace {
    let w = MarlinWorkspace.shared.get(device);
    if (!w || w.disposed) {
      w = new MarlinWorkspace(device);
      MarlinWorkspace.shared.set(device, w);
    }
    return w;
  }
}
