/**
 * ||out - ref|| / ||ref|| over all elements: the error measure every kernel test in the project
 * uses against an fp32/fp64 reference. NaN when `out` holds a NaN (a NaN never passes a bound).
 */
export function relativeError(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (out.length !== ref.length) throw new RangeError(`relativeError: ${out.length} values against ${ref.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (out[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return Math.sqrt(num / den);
}
