#pragma once
// Launchers of the engine's CUDA ops (fp16 activations, fp32 math). Arguments are validated by
// cuda_bindings.cpp; these only queue kernels on `stream` and return the launch error.
#ifdef MARLIN_WITH_CUDA
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace marlin {
namespace ops {
namespace cuda {

// Rows start..start+vocab-1 of the vocabulary live in table; ids outside them get zeros.
cudaError_t Embedding(const int32_t* ids, int rows, const half* table, int hidden, int vocab, int start, half* out, cudaStream_t s);
cudaError_t RmsNorm(const half* x, const float* w, float eps, int rows, int hidden, half* out, cudaStream_t s);
// residual += x; x = rmsnorm(residual) * w
cudaError_t AddRmsNorm(half* x, half* residual, const float* w, float eps, int rows, int hidden, cudaStream_t s);
cudaError_t Rope(half* x, int rows, int stride, int heads, int head_dim, const int32_t* positions, const float* cos_t,
                 const float* sin_t, cudaStream_t s);
cudaError_t RopeStoreKv(half* qkv, int rows, int stride, int heads, int kv_heads, int head_dim, const int32_t* positions,
                        const float* cos_t, const float* sin_t, const int32_t* slots, half* k_cache, half* v_cache,
                        cudaStream_t s);
cudaError_t StoreKv(const half* qkv, int rows, int stride, int k_off, int v_off, int kv_dim, const int32_t* slots,
                    half* k_cache, half* v_cache, cudaStream_t s);
cudaError_t SiluMul(const half* gu, int rows, int inter, half* out, cudaStream_t s);
cudaError_t AddBias(half* x, const float* bias, int rows, int n, cudaStream_t s);
cudaError_t FillUniformHalf(half* out, size_t count, uint64_t seed, float lo, float hi, cudaStream_t s);
cudaError_t GatherRows(const half* x, const int32_t* rows_idx, int rows, int hidden, half* out, cudaStream_t s);

struct AttentionArgs {
  const half* q;
  int rows, q_stride, heads, kv_heads, head_dim;
  const half* k_cache;
  const half* v_cache;
  const int32_t* block_tables;
  int max_blocks, block_size;
  const int32_t* seq_of_row;
  const int32_t* pos_of_row;
  float scale;
  int max_context;  // upper bound of pos + 1 (shared memory size)
  half* out;
};
cudaError_t PagedAttention(const AttentionArgs& a, cudaStream_t s);
size_t AttentionSmemBytes(int max_context);

// Decode rows (one per sequence), split over chunks of the context (cuda_decode_attention.cu).
struct DecodeAttentionArgs {
  AttentionArgs attn;  // q = the qkv rows (q_stride = their width)
  int chunk;           // context positions per block
  int max_splits;      // ceil(max_context / chunk): partial slots per (row, head)
  int blocks;          // blocks per (row, head), 1..max_splits, 0: chosen at launch; block z takes chunks z, z + blocks, ...
  float* partial;      // [rows, heads, max_splits, head_dim + 2]
  int* counters;       // [rows, heads], zero between launches
  int fuse;            // 1: RoPE of q and the current k, and the KV store, done here
  int stages;          // K/V ring of that many passes in shared memory (2..4), 0: direct loads, < 0: the default
  int kv_ready;        // 1 (with fuse): positions, block tables and the cached KV were written before the
                       // previous kernel of the stream began, so they may be read before its end
  const float* cos_t;
  const float* sin_t;
  const int32_t* slots;
};
cudaError_t DecodeAttention(const DecodeAttentionArgs& d, cudaStream_t s);
int DecodeAttentionSplits(int max_context, int chunk);
bool DecodeAttentionSupports(int head_dim);
bool DecodeAttentionStages(int stages);

struct SampleArgs {
  const float* logits;
  int rows, vocab;
  const float* temperature;
  const int32_t* top_k;
  const float* top_p;
  const uint32_t* seeds;
  const int32_t* counters;
  int32_t* out;
};
cudaError_t Sample(const SampleArgs& a, cudaStream_t s);
cudaError_t Logprobs(const float* logits, int rows, int vocab, const int32_t* targets, float* out, cudaStream_t s);

}  // namespace cuda
}  // namespace ops
}  // namespace marlin
#endif
