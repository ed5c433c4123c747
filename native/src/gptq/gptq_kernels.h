#pragma once
// GPTQ's device steps (gptq_kernels.cu). Conventions as in packages/gptq/DESIGN.md: W [k, n]
// row-major fp32 (k inputs as rows, already permuted for act-order, dead rows zeroed), H and U
// [k, k] row-major, U the upper Cholesky factor of (H + damp I)^-1.
#ifdef MARLIN_WITH_CUDA
#include <cuda_runtime.h>

#include <cstdint>

namespace marlin {
namespace gptq {

// Rows per lazy block (and the shared tile's height).
constexpr int kMaxBlock = 128;

// 2:4 pruning in the column loop (rows 4t..4t+3 of each column: 2 of them at the zero code).
enum SparseMode : int {
  kSparseNone = 0,
  kSparseSelect = 1,  // SparseGPT: at each quad's first row prune the 2 smallest w^2 / U_rr^2; mask written
  kSparseFixed = 2,   // the mask is given (magnitude); pruned entries count as 0 in group params
};

// Range search (quantizer.ts findGroupParams, score "diag"): with clip_steps > 0, the shrunk
// ranges p * [lo, hi] for p = 1 - t / clip_grid, t < clip_steps, and per column the params whose
// weighted squared rounding error over the group's rows is lowest.
struct ClipSearch {
  int steps = 0;
  float grid = 100.f;
};

// a[i][j] = h[p[i]][p[j]] in fp64; on the diagonal a zero (dead input) becomes 1, then + damp.
cudaError_t LaunchPrepare(const float* h, const int* perm, double* a, int k, double damp, cudaStream_t s);

// u[r][c] = a[r][c] for c >= r, 0 below the diagonal (fp64 -> fp32). `a` holds, read column-major,
// the lower Cholesky factor of the inverse, i.e. read row-major, U.
cudaError_t LaunchUpperToF32(const double* a, float* u, int k, cudaStream_t s);

// Scale and zero per column j of rows [r0, r1) of w, into scales/zeros[g * n + j]. With a range
// search, row r's error weighs rw[r * rw_stride] (or 1 / rw[r * rw_stride]^2 when rw_inv_sq: U's
// diagonal read with stride k + 1).
cudaError_t LaunchGroupParams(const float* w, int n, int r0, int r1, int bits, bool sym, float* scales, float* zeros, int g,
                              ClipSearch clip, const float* rw, int64_t rw_stride, bool rw_inv_sq, cudaStream_t s);

// Rows [i1, i2) (at most kMaxBlock): quantize each row in turn with error feedback inside the block.
// Dynamic groups (gs > 0 && dynamic) choose params at each group start; otherwise row i uses
// group gperm[i] from scales/zeros (dynamic params use the range search `clip`, rows weighted by
// 1 / U_rr^2). Writes q rows, err [(i2 - i1), n] and adds sum(err^2) to *loss. With `sparse`,
// mask [k, n] (1 = pruned) is written (select) or read (fixed); a pruned entry's code is the zero
// point and its error is its whole value. Pruning needs i1 % 4 == 0 and (i2 - i1) % 4 == 0.
cudaError_t LaunchBlockQuant(const float* w, const float* u, int k, int n, int i1, int i2, int bits, bool sym, int gs,
                             bool dynamic, const int* gperm, float* scales, float* zeros, uint8_t* q, float* err,
                             double* loss, ClipSearch clip, SparseMode sparse, uint8_t* mask, cudaStream_t s);

}  // namespace gptq
}  // namespace marlin
#endif
