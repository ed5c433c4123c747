// A consumer of @marlin/kernel installed alone: one Marlin matmul (4-bit, group 128) on the device
// given as argv[2] ("cpu" or "cuda"), checked against an fp64 reference of the dequantized weights.
// Prints one line: MATMUL {json}. Exit 1 when the error is too large or the device is not used.
import { Rng, relativeError, runSeed } from "@marlin/core";
import { dequantize, f16ToF32, f32ToF16, quantizeRtn } from "@marlin/format";
import { DeviceBuffer, deviceReport, MarlinLayer, nativeInfo } from "@marlin/kernel";

const device = process.argv[2] ?? "cpu";
const seed = runSeed();
const rng = new Rng(seed);
const [m, k, n] = [16, 512, 256];
const w = rng.fillNormal(new Float32Array(k * n), 0.05);
const x = f32ToF16(rng.fillNormal(new Float32Array(m * k)));
const q = quantizeRtn(w, k, n, { bits: 4, groupSize: 128, symmetric: true });

// fp64 reference: x (as fp16 values) times the dequantized weights.
const xf = f16ToF32(x);
const wq = dequantize(q);
const ref = new Float64Array(m * n);
for (let i = 0; i < m; i++)
  for (let p = 0; p < k; p++) {
    const a = xf[i * k + p];
    for (let j = 0; j < n; j++) ref[i * n + j] += a * wq[p * n + j];
  }

const layer = MarlinLayer.fromQuantized(q, { device });
let out;
if (device === "cuda") {
  const dx = DeviceBuffer.from(x);
  const dy = DeviceBuffer.alloc(m * n * 2);
  dy.fillBytes(0x7e); // fp16 NaN in every element until the kernel writes it
  layer.forward(dx, { out: dy });
  out = dy.download(new Uint16Array(m * n));
} else {
  out = new Uint16Array(m * n).fill(0x7e00); // NaN
  layer.forward(x, { out });
}
const err = relativeError(f16ToF32(out), ref);
const info = nativeInfo();
const result = { device: layer.placement, m, k, n, seed, relErr: err, addon: info.path, origin: info.origin, meta: info.meta };
console.log(deviceReport());
console.log(`MATMUL ${JSON.stringify(result)}`);
process.exit(Number.isFinite(err) && err < 1e-2 && layer.placement === device ? 0 : 1);
