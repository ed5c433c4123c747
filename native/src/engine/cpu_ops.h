#pragma once
// The engine's CPU ops (fp32 activations). Shapes are validated by the bindings in cpu_bindings.cpp;
// these functions trust their arguments. All are batch-invariant: a row's result never depends on
// the other rows of the call.
#include <cstdint>

#include "engine/sample_hash.h"

namespace marlin {
namespace ops {

// Packs w[n, k] into 16-column panels for LinearF32; PackedLinearSize floats.
int64_t PackedLinearSize(int64_t n, int64_t k);
void PackLinearF32(const float* w, int64_t n, int64_t k, float* packed);
// out[m, n] = x[m, k] . w[n, k]^T (+ bias[n]), w packed by PackLinearF32.
void LinearF32(const float* x, const float* packed, const float* bias, float* out, int64_t m, int64_t n, int64_t k);

// out[t, :] = table[ids[t], :]
void EmbeddingF32(const int32_t* ids, int64_t t, const float* table, int64_t hidden, float* out);

// out = x / rms(x) * weight, per row of `hidden`.
void RmsNormF32(const float* x, const float* weight, float eps, int64_t rows, int64_t hidden, float* out);
// residual += x; x = rmsnorm(residual) * weight (in place), per row.
void AddRmsNormF32(float* x, float* residual, const float* weight, float eps, int64_t rows, int64_t hidden);

// Rotates (neox / rotate-half style) `heads` heads of `head_dim` starting at column 0 of each row
// of x (row stride `stride`), at the row's position, with cos/sin tables [positions, rot_dim / 2].
void RopeF32(float* x, int64_t rows, int64_t stride, int64_t heads, int64_t head_dim, int64_t rot_dim,
             const int32_t* positions, const float* cos_table, const float* sin_table);

// out[t, i] = silu(gu[t, i]) * gu[t, inter + i]
void SiluMulF32(const float* gu, int64_t rows, int64_t inter, float* out);

// Writes the k and v parts of each row of qkv into the caches at slot[t] (kv_dim floats per slot);
// a negative slot skips the row.
void StoreKvF32(const float* qkv, int64_t rows, int64_t stride, int64_t k_offset, int64_t v_offset, int64_t kv_dim,
                const int32_t* slots, float* k_cache, float* v_cache);

// Causal attention of each query row over its sequence's paged cache (keys 0..pos[t]).
struct PagedAttentionArgs {
  const float* q;  // row t, head h at q + t * q_stride + h * head_dim
  int64_t rows, q_stride;
  int64_t heads, kv_heads, head_dim;
  const float* k_cache;
  const float* v_cache;
  const int32_t* block_tables;  // [seqs, max_blocks]
  int64_t max_blocks, block_size;
  const int32_t* seq_of_row;
  const int32_t* pos_of_row;
  float scale;
  float* out;  // [rows, heads * head_dim]
};
void PagedAttentionF32(const PagedAttentionArgs& a);

// Per-row token choice: greedy when temperature <= 0, else a seeded draw from the softmax of
// logits / temperature restricted by top_k (0 = off) and top_p (1 = off).
struct SampleArgs {
  const float* logits;
  int64_t rows, vocab;
  const float* temperature;
  const int32_t* top_k;
  const float* top_p;
  const uint32_t* seeds;    // [rows, 2]: 64-bit seed, low word first
  const int32_t* counters;  // [rows]: the index of the token being drawn
  int32_t* out;
};
void SampleF32(const SampleArgs& a);

// out[t] = log softmax(logits[t])[targets[t]], in fp64.
void LogprobsF32(const float* logits, int64_t rows, int64_t vocab, const int32_t* targets, double* out);

// The uniform draw in (0, 1) the samplers use (shared with the CUDA sampler).
inline double SampleUniform(uint64_t seed, uint32_t counter, uint32_t index) { return SampleUniformHD(seed, counter, index); }

}  // namespace ops
}  // namespace marlin
