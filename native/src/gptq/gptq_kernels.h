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

// a[i][j] = h[p[i]][p[j]] in fp64; on the diagonal a zero (dead input) becomes 1, then + damp.
cudaError_t LaunchPrepare(const float* h, const int* perm, double* a, int k, double damp, cudaStream_t s);

// u[r][c] = a[r][c] for c >= r, 0 below the diagonal (fp64 -> fp32). `a` holds, read column-major,
// the lower Cholesky factor of the inverse, i.e. read row-major, U.
cudaError_t LaunchUpperToF32(const double* a, float* u, int k, cudaStream_t s);

// Scale and zero per column j of rows [r0, r1) of w, into scales/zeros[g * n + j].
cudaError_t LaunchGroupParams(const float* w, int n, int r0, int r1, int bits, bool sym, float* scales, float* zeros, int g,
                              cudaStream_t s);

// Rows [i1, i2) (at most kMaxBlock): quantize each row in turn with error feedback inside the block.
// Dynamic groups (gs > 0 && dynamic) choose params at each group start; otherwise row i uses
// group gperm[i] from scales/zeros. Writes q rows, err [(i2 - i1), n] and adds sum(err^2) to *loss.
cudaError_t LaunchBlockQuant(const float* w, const float* u, int k, int n, int i1, int i2, int bits, bool sym, int gs,
                             bool dynamic, const int* gperm, float* scales, float* zeros, uint8_t* q, float* err,
                             double* loss, cudaStream_t s);

}  // namespace gptq
}  // namespace marlin
#endif
