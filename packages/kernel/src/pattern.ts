/** A trivial GPU kernel writing every element of a uint32 range, and its CPU twin: used to prove the
 * upload -> kernel -> download path end to end. */

import type { DeviceBuffer } from "./buffer.js";
import { call } from "./native.js";
import type { Stream } from "./stream.js";

export function writePattern(buf: DeviceBuffer, byteOffset: number, count: number, seed: number, stream?: Stream): void {
  call((n) => n.writePattern(buf.handle, byteOffset, count, seed >>> 0, stream?.handle));
}

export function patternHost(count: number, seed: number): Uint32Array {
  return call((n) => n.patternHost(new Uint32Array(count), seed >>> 0));
}
