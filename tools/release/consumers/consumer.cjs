// A CommonJS consumer: require() of @marlin/kernel, @marlin/format and @marlin/engine (their
// "require" exports), one CPU matmul and a model load. Prints one line: CJS {json}.
const { relativeError } = require("@marlin/core");
const { dequantize, f16ToF32, f32ToF16, quantizeRtn } = require("@marlin/format");
const { MarlinLayer } = require("@marlin/kernel");
const { LLM } = require("@marlin/engine");

async function main() {
  const [m, k, n] = [4, 256, 128];
  const w = Float32Array.from({ length: k * n }, (_, i) => Math.sin(i * 0.37) * 0.1);
  const x = f32ToF16(Float32Array.from({ length: m * k }, (_, i) => Math.cos(i * 0.11)));
  const q = quantizeRtn(w, k, n, { bits: 4, groupSize: 128, symmetric: true });
  const y = f16ToF32(MarlinLayer.fromQuantized(q, { device: "cpu" }).forward(x));
  const wq = dequantize(q);
  const xf = f16ToF32(x);
  const ref = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) ref[i * n + j] += xf[i * k + p] * wq[p * n + j];
  const relErr = relativeError(y, ref);
  const llm = await LLM.load(process.argv[2], { device: "cpu" });
  const [r] = await llm.generate(["Hello"], { temperature: 0, maxTokens: 8 });
  llm.dispose();
  console.log(`CJS ${JSON.stringify({ relErr, text: r.text })}`);
  process.exit(relErr < 1e-2 && r.tokenIds.length > 0 ? 0 : 1);
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
