/** Summary statistics of latency samples, as `vllm bench serve` reports them (numpy's linear percentiles). */

export interface Dist {
  n: number;
  mean: number;
  std: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** The q-th percentile (0..100) of ascending `sorted`, interpolated linearly between ranks. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const at = (q / 100) * (n - 1);
  const lo = Math.floor(at);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
}

/** Mean, standard deviation, p50 / p90 / p99 and max; undefined for no samples. */
export function dist(values: number[]): Dist | undefined {
  if (values.length === 0) return undefined;
  const s = Float64Array.from(values).sort();
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  const std = Math.sqrt(s.reduce((a, b) => a + (b - mean) ** 2, 0) / s.length);
  return { n: s.length, mean, std, p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99), max: s[s.length - 1] };
}
