/**
 * Dense float64 linear algebra for the reference path: Cholesky, triangular inverse, SPD inverse
 * and the upper Cholesky factor of an inverse. Row-major k x k matrices; inner loops run along
 * rows so they stay contiguous.
 */
import { ShapeError } from "@marlin/core";
import { NotPositiveDefiniteError } from "./errors.js";

function checkSquare(a: Float64Array, k: number, what: string): void {
  if (!Number.isInteger(k) || k <= 0 || a.length !== k * k) {
    throw new ShapeError(`${what}: expected a ${k} x ${k} matrix (${k * k} values), got ${a.length}`);
  }
}

/** Lower Cholesky factor L (A = L L^T) of a symmetric positive definite A; only A's lower half is read. */
export function choleskyLower(a: Float64Array, k: number, what = "matrix"): Float64Array {
  checkSquare(a, k, "choleskyLower");
  const l = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    const ri = i * k;
    for (let j = 0; j <= i; j++) {
      const rj = j * k;
      let s = a[ri + j];
      for (let m = 0; m < j; m++) s -= l[ri + m] * l[rj + m];
      if (i === j) {
        if (!(s > 0) || !Number.isFinite(s)) throw new NotPositiveDefiniteError(i, what);
        l[ri + i] = Math.sqrt(s);
      } else {
        l[ri + j] = s / l[rj + j];
      }
    }
  }
  return l;
}

/** Inverse of a lower triangular matrix (itself lower triangular), by rows: X_i = (e_i - sum_m<i L_im X_m) / L_ii. */
export function lowerTriangularInverse(l: Float64Array, k: number): Float64Array {
  checkSquare(l, k, "lowerTriangularInverse");
  const x = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    const ri = i * k;
    for (let m = 0; m < i; m++) {
      const c = l[ri + m];
      if (c === 0) continue;
      const rm = m * k;
      for (let j = 0; j <= m; j++) x[ri + j] -= c * x[rm + j];
    }
    x[ri + i] += 1;
    const inv = 1 / l[ri + i];
    for (let j = 0; j <= i; j++) x[ri + j] *= inv;
  }
  return x;
}

/** A^-1 from A's lower Cholesky factor: A^-1 = L^-T L^-1 (symmetric, both halves filled). */
export function choleskyInverse(l: Float64Array, k: number): Float64Array {
  const li = lowerTriangularInverse(l, k);
  const out = new Float64Array(k * k);
  // out[a][b] = sum_m li[m][a] li[m][b]; row m of li is nonzero in 0..m: rank-1 update of the leading block.
  for (let m = 0; m < k; m++) {
    const rm = m * k;
    for (let a = 0; a <= m; a++) {
      const c = li[rm + a];
      if (c === 0) continue;
      const ra = a * k;
      for (let b = 0; b <= a; b++) out[ra + b] += c * li[rm + b];
    }
  }
  for (let a = 0; a < k; a++) for (let b = 0; b < a; b++) out[b * k + a] = out[a * k + b];
  return out;
}

/** Inverse of a symmetric positive definite matrix through its Cholesky factor. */
export function invertSpd(a: Float64Array, k: number, what = "matrix"): Float64Array {
  return choleskyInverse(choleskyLower(a, k, what), k);
}

/**
 * Upper triangular U with A^-1 = U^T U (the upper Cholesky factor of the inverse), without forming
 * A^-1: with J the order reversal, J A J = L L^T gives A^-1 = (J L^-1 J)^T (J L^-1 J), and J L^-1 J
 * is upper triangular with a positive diagonal. One Cholesky and one triangular inverse instead of
 * GPTQ's usual Cholesky, inverse, Cholesky; the same U up to rounding (tested).
 */
export function upperCholeskyOfInverse(a: Float64Array, k: number, what = "matrix"): Float64Array {
  checkSquare(a, k, "upperCholeskyOfInverse");
  const r = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    const src = (k - 1 - i) * k;
    for (let j = 0; j < k; j++) r[i * k + j] = a[src + (k - 1 - j)];
  }
  const m = lowerTriangularInverse(choleskyLower(r, k, what), k);
  const u = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    const src = (k - 1 - i) * k;
    for (let j = i; j < k; j++) u[i * k + j] = m[src + (k - 1 - j)];
  }
  return u;
}

/** C = A B for row-major A [m, p], B [p, n] (float64, for tests and small reference work). */
export function matmul(a: Float64Array, b: Float64Array, m: number, p: number, n: number): Float64Array {
  if (a.length !== m * p || b.length !== p * n) throw new ShapeError(`matmul: ${a.length} != ${m}x${p} or ${b.length} != ${p}x${n}`);
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let t = 0; t < p; t++) {
      const v = a[i * p + t];
      if (v === 0) continue;
      const rb = t * n;
      const rc = i * n;
      for (let j = 0; j < n; j++) c[rc + j] += v * b[rb + j];
    }
  }
  return c;
}
