import { Rng, runSeed } from "@marlin/core";
import { describe, expect, it } from "vitest";
import { choleskyLower, invertSpd, lowerTriangularInverse, NotPositiveDefiniteError, upperCholeskyOfInverse } from "../src/index.js";
import { identityError, randomSpd, relErr } from "./helpers.js";

const seed = runSeed();
console.log(`linalg: MARLIN_SEED=${seed}`);

describe("float64 linear algebra", () => {
  const rng = new Rng(seed);
  for (const k of [1, 7, 64, 129]) {
    it(`Cholesky, inverse and the upper factor of the inverse (k=${k})`, () => {
      const a = randomSpd(rng, k);
      const l = choleskyLower(a, k);
      // L L^T = A and L is lower triangular
      const llt = new Float64Array(k * k);
      for (let i = 0; i < k; i++) {
        for (let j = 0; j < k; j++) {
          let s = 0;
          for (let m = 0; m < k; m++) s += l[i * k + m] * l[j * k + m];
          llt[i * k + j] = s;
          if (j > i) expect(l[i * k + j]).toBe(0);
        }
      }
      expect(relErr(llt, a)).toBeLessThan(1e-13);
      expect(identityError(lowerTriangularInverse(l, k), l, k)).toBeLessThan(1e-10);
      const inv = invertSpd(a, k);
      expect(identityError(inv, a, k)).toBeLessThan(1e-10);
      expect(identityError(a, inv, k)).toBeLessThan(1e-10);
      const u = upperCholeskyOfInverse(a, k);
      // U^T U A = I, U upper with a positive diagonal, and it is GPTQ's chol(inv(A))^T
      const utu = new Float64Array(k * k);
      for (let i = 0; i < k; i++) {
        expect(u[i * k + i]).toBeGreaterThan(0);
        for (let j = 0; j < k; j++) {
          if (j < i) expect(u[i * k + j]).toBe(0);
          let s = 0;
          for (let m = 0; m < k; m++) s += u[m * k + i] * u[m * k + j];
          utu[i * k + j] = s;
        }
      }
      expect(identityError(utu, a, k)).toBeLessThan(1e-10);
      const lInv = choleskyLower(inv, k);
      const uRef = new Float64Array(k * k);
      for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) uRef[i * k + j] = lInv[j * k + i];
      expect(relErr(u, uRef)).toBeLessThan(1e-10);
    });
  }

  it("refuses a matrix that is not positive definite, naming the pivot", () => {
    const a = Float64Array.from([4, 2, 0, 2, 1, 0, 0, 0, 1]);
    try {
      choleskyLower(a, 3);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(NotPositiveDefiniteError);
      expect((e as NotPositiveDefiniteError).code).toBe("ERR_MARLIN_NOT_POSITIVE_DEFINITE");
      expect((e as NotPositiveDefiniteError).pivot).toBe(1);
    }
    expect(() => choleskyLower(new Float64Array(5), 2)).toThrow(/2 x 2/);
  });
});
