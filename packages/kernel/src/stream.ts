/** CUDA streams and events. */
import { DisposedError } from "@marlin/core";
import { call } from "./native.js";

export class Stream {
  readonly handle: any;
  private destroyed = false;
  constructor(device = 0) {
    this.handle = call((n) => new n.Stream(device));
  }
  synchronize(): void {
    if (this.destroyed) throw new DisposedError("Stream");
    call(() => this.handle.synchronize());
  }
  destroy(): void {
    this.destroyed = true;
    this.handle.destroy();
  }
  [Symbol.dispose](): void {
    this.destroy();
  }
}

export class CudaEvent {
  readonly handle: any;
  constructor() {
    this.handle = call((n) => new n.Event());
  }
  record(stream?: Stream): void {
    call(() => this.handle.record(stream?.handle));
  }
  synchronize(): void {
    call(() => this.handle.synchronize());
  }
  /** Milliseconds from `start` to `end` (waits for `end`). */
  static elapsedMs(start: CudaEvent, end: CudaEvent): number {
    return call((n) => n.Event.elapsedMs(start.handle, end.handle));
  }
}

/**
 * Queues a kernel that keeps `stream` busy for `microseconds`. Benchmarks put one before a timed
 * batch so the host queues the whole batch meanwhile: the events then time the GPU's work, not
 * the host's launch latency (as nvbench's blocking kernel does).
 */
export function holdDevice(microseconds: number, stream?: Stream): void {
  call((n) => n.holdDevice(microseconds, stream?.handle));
}
