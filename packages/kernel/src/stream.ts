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
