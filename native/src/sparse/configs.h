#pragma once
// The kernel configurations that are compiled, as X-macros of (depth, kwarps, halves, tiles): launch.cu
// instantiates them, the standalone harness sweeps and checks the same list.
// Those of Sparse24DefaultConfig, and the extra ones of the sweep.
#define SPARSE24_DEFAULTS(X) X(4, 2, 1, 1) X(4, 1, 1, 1) X(2, 2, 2, 2) X(2, 2, 2, 1) X(2, 1, 2, 2) X(2, 1, 4, 1)
#define SPARSE24_SWEEP_LIST(X)                                                                        \
  X(2, 1, 1, 1) X(4, 2, 2, 1) X(2, 2, 1, 1) X(4, 4, 1, 1) X(2, 4, 1, 1) X(2, 1, 2, 1) X(4, 1, 2, 1)  \
      X(1, 2, 2, 1) X(2, 4, 2, 1) X(4, 1, 4, 1) X(2, 2, 4, 1) X(1, 1, 8, 1) X(2, 1, 8, 1)              \
      X(2, 2, 1, 2) X(4, 2, 1, 2) X(4, 2, 2, 2) X(2, 1, 4, 2) X(1, 2, 2, 2) X(2, 4, 2, 2) X(1, 1, 4, 2) X(2, 2, 4, 2) X(1, 2, 2, 4)  \
      X(2, 1, 2, 4) X(1, 1, 4, 4) X(2, 2, 1, 4)
