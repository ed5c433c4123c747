import { MarlinError } from "@marlin/core";

/**
 * A matrix that must be symmetric positive definite (a damped Hessian) is not: Cholesky met a
 * non-positive pivot. `pivot` is the row where it stopped. More damping (percDamp) or more
 * calibration tokens usually cure it.
 */
export class NotPositiveDefiniteError extends MarlinError {
  readonly pivot: number;
  constructor(pivot: number, what = "matrix") {
    super(
      "ERR_MARLIN_NOT_POSITIVE_DEFINITE",
      `${what} is not positive definite (Cholesky pivot ${pivot} is not > 0); raise percDamp or use more calibration tokens`,
    );
    this.pivot = pivot;
  }
}
