/** Device memory owned by a JS object: freed by free() (or `using`) and also when garbage-collected. */
import { DisposedError, InvalidArgumentError } from "@marlin/core";
import { call } from "./native.js";
import type { Stream } from "./stream.js";

type HostData = ArrayBufferView | ArrayBuffer;

export class DeviceBuffer {
  /** The addon's buffer object, passed to native entry points. */
  readonly handle: any;

  private constructor(handle: any) {
    this.handle = handle;
  }

  /** Allocates `byteLength` bytes on `device` (contents undefined). */
  static alloc(byteLength: number, device = 0): DeviceBuffer {
    if (!Number.isSafeInteger(byteLength) || byteLength <= 0)
      throw new InvalidArgumentError(`byteLength must be a positive integer, got ${byteLength}`);
    return new DeviceBuffer(call((n) => new n.DeviceBuffer(byteLength, device)));
  }

  /** Allocates a buffer holding a copy of `data`. */
  static from(data: HostData, device = 0): DeviceBuffer {
    const buf = DeviceBuffer.alloc(data.byteLength, device);
    try {
      buf.upload(data);
    } catch (err) {
      buf.free();
      throw err;
    }
    return buf;
  }

  get byteLength(): number {
    return this.handle.byteLength;
  }
  get device(): number {
    return this.handle.device;
  }
  get freed(): boolean {
    return this.handle.freed;
  }

  private live(): any {
    if (this.handle.freed) throw new DisposedError("DeviceBuffer");
    return this.handle;
  }

  /** Copies host data into the buffer at `byteOffset` (synchronous). */
  upload(src: HostData, byteOffset = 0): void {
    const h = this.live();
    call(() => h.upload(src, byteOffset));
  }

  /** Copies from the buffer at `byteOffset` into `dst` (waits for queued device work). */
  download<T extends HostData>(dst: T, byteOffset = 0): T {
    const h = this.live();
    call(() => h.download(dst, byteOffset));
    return dst;
  }

  /** Device-to-device copy, queued on `stream`. */
  copyFrom(src: DeviceBuffer, srcByteOffset: number, dstByteOffset: number, byteLength: number, stream?: Stream): void {
    const h = this.live();
    call(() => h.copyFrom(src.handle, srcByteOffset, dstByteOffset, byteLength, stream?.handle));
  }

  /** Sets bytes to `value` (e.g. 0xff to poison fp16 outputs with NaN), queued on `stream`. */
  fillBytes(value: number, byteOffset = 0, byteLength?: number, stream?: Stream): void {
    const h = this.live();
    call(() => h.fillBytes(value, byteOffset, byteLength ?? this.byteLength - byteOffset, stream?.handle));
  }

  /** Frees the memory now; later use throws DisposedError. Idempotent. */
  free(): void {
    this.handle.free();
  }

  [Symbol.dispose](): void {
    this.free();
  }
}
