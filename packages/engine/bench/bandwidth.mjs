// Device copy bandwidth for the engine benches' floors: one 2 GiB device-to-device copy, bytes
// read + written per second, median of five.
import { CudaEvent, DeviceBuffer } from "@marlin/kernel";

export function copyBandwidth() {
  const bytes = 2 ** 31;
  const a = DeviceBuffer.alloc(bytes);
  const b = DeviceBuffer.alloc(bytes);
  const e0 = new CudaEvent();
  const e1 = new CudaEvent();
  b.copyFrom(a, 0, 0, bytes);
  const times = [];
  for (let i = 0; i < 5; i++) {
    e0.record();
    b.copyFrom(a, 0, 0, bytes);
    e1.record();
    times.push(CudaEvent.elapsedMs(e0, e1));
  }
  a.free();
  b.free();
  times.sort((x, y) => x - y);
  return (2 * bytes) / (times[2] / 1000);
}
