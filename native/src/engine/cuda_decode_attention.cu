// Decode attention (one query row per sequence), flash-decoding style: each (row, head) is split
// over blocks of `chunk` context positions, so a long context or a small batch still fills the GPU.
// Each block walks its chunk once (engine/online_softmax.cuh: the paged attention's arithmetic, so a
// row of one chunk gets the paged kernel's result bit for bit), writes a partial (max, sum,
// weighted values) when the row has several chunks, and the block that finishes last for a (row,
// head) combines them and resets its counter (the workspace is zero again after every launch:
// CUDA-graph safe).
//
// With `fuse` (a pure decode step), the block also does what RoPE + KV store would: it rotates the
// row's q (and, for the chunk holding the current position, the row's k) from the qkv row, uses the
// current k and v straight from registers, and one block per kv head stores them in the cache. No
// other block of the launch reads that cache slot: each sequence has one row.
#include <algorithm>

#include "common/pdl.cuh"
#include "common/smem_copy.cuh"
#include "engine/cuda_common.cuh"
#include "engine/cuda_ops.h"
#include "engine/online_softmax.cuh"

namespace marlin {
namespace ops {
namespace cuda {

namespace {

constexpr int kThreads = 256;
// With kv_ready, a launch prefetches its chunks' K/V into L2 only while they fit in this much.
constexpr int64_t kKvPrefetchBytes = int64_t{16} << 20;

// A hint only (nothing reaches registers): the line is fetched into L2 for the loads that follow.
__device__ __forceinline__ void PrefetchL2Line(const void* p) { asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p)); }

// Shared memory of a launch: the chunk's slots, then the cp.async stages (NS > 0), which the group
// values, maxima and sums reuse once the chunk's passes are done.
template <int L, int U, int NS>
constexpr size_t DecodeSmemBytes(int chunk) {
  constexpr size_t stages = static_cast<size_t>(NS) * U * 2 * kThreads * 16;
  constexpr size_t groups = static_cast<size_t>(kThreads / L) * (8 * L + 2) * sizeof(float);
  return static_cast<size_t>(chunk) * sizeof(int) + (stages > groups ? stages : groups);
}

// L lanes per key (head dim 8 L), U keys in flight per thread and pass, MINB blocks per SM asked of
// the register allocator. One pass over the chunk (GroupSoftmax): one memory round trip per U keys
// of a group, where two passes (scores, then values) cost two plus a block-wide softmax.
// NS > 0: the passes' K/V rows are copied by cp.async into a ring of NS passes in shared memory, NS - 1
// ahead of the one being summed, so NS * U keys per thread are in flight instead of U (at context 128
// the direct loads left a block 4 dependent round trips). Each thread copies exactly the 16-byte
// pieces it then reads (its group's keys, its lane's dimensions), so the ring needs no barrier, only
// the thread's own cp.async.wait_group; the arithmetic and key order are the direct loads' (NS = 0).
template <int L, int U, int MINB, int NS>
__global__ void __launch_bounds__(kThreads, MINB) DecodeAttentionKernel(DecodeAttentionArgs d) {
  PdlTrigger();  // see common/pdl.cuh: launched with LaunchPdl
  // kv_ready (the caller's promise, see cuda_ops.h): the slots are read and the chunk's cached K/V
  // prefetched into L2 before the wait; everything the previous kernels write (the qkv row) after it.
  if (!d.kv_ready) PdlWait();
  constexpr int D = 8 * L;
  constexpr int G = kThreads / L;  // key groups per block
  const AttentionArgs& a = d.attn;
  const int t = blockIdx.x, h = blockIdx.y;
  const int n = a.pos_of_row[t] + 1;
  // Chunks are fixed by position (chunk s covers [s * chunk, (s + 1) * chunk)), whatever the grid:
  // block z takes chunks z, z + gridDim.z, ..., so a row's arithmetic does not depend on how many
  // rows share the launch (a batch equals its rows one at a time).
  const int splits = (n + d.chunk - 1) / d.chunk;
  if (static_cast<int>(blockIdx.z) >= splits) return;
  const int active = min(splits, static_cast<int>(gridDim.z));  // blocks of this (row, head) that work
  const int group = a.heads / a.kv_heads, kvh = h / group;
  const int kv_dim = a.kv_heads * D;
  const bool cur = d.fuse && (splits - 1) % gridDim.z == blockIdx.z;  // this block has the current position

  // [chunk] slots, then (NS > 0) the ring [NS][U][k, v][kThreads] of 16-byte pieces, whose space the
  // [G][D] group values, [G] maxima and [G] sums take after the chunk's last pass.
  extern __shared__ __align__(16) float smem[];
  int* slots = reinterpret_cast<int*>(smem);
  uint4* ring = reinterpret_cast<uint4*>(slots + d.chunk);  // chunk is a multiple of 16: aligned
  float* part = reinterpret_cast<float*>(slots + d.chunk);
  float* gmax = part + G * D;
  float* gsum = gmax + G;
  __shared__ float qs[D], kc[D], vc[D];
  __shared__ int last;

  const int32_t* table = a.block_tables + static_cast<size_t>(a.seq_of_row[t]) * a.max_blocks;
  // The chunk's cache slots (one block-table read per position), read by the next pass.
  auto load_slots = [&](int s) {
    const int lo = s * d.chunk, hi = min(n, lo + d.chunk);
    for (int p = lo + threadIdx.x; p < hi; p += blockDim.x) slots[p - lo] = table[p / a.block_size] * a.block_size + p % a.block_size;
  };
  load_slots(blockIdx.z);  // in flight with the q (and k) reads below
  const int last_cached = d.fuse ? n - 1 : n;  // positions below this come from the cache
  constexpr int kRing = NS > 0 ? NS : 1;
  const int g = threadIdx.x / L, l = threadIdx.x % L;
  const half* kbase = a.k_cache + kvh * D + l * 8;
  const half* vbase = a.v_cache + kvh * D + l * 8;
  // NS > 0: pass i of chunk [lo, hi) into ring stage i % NS (a group with nothing to copy still
  // commits, so the thread's group count stays the pass count).
  auto issue = [&](int lo, int hi, int i) {
    const int base = lo + i * U * G;
#pragma unroll
    for (int u = 0; u < U; u++) {
      const int p = base + u * G + g;
      if (p < min(hi, last_cached)) {
        const size_t off = static_cast<size_t>(slots[p - lo]) * kv_dim;
        uint4* st = ring + ((i % kRing) * U + u) * 2 * kThreads + threadIdx.x;
        smem::CpAsync16(st, kbase + off, true);
        smem::CpAsync16(st + kThreads, vbase + off, true);
      }
    }
    smem::CpAsyncCommit();
  };
  auto prologue = [&](int s) {  // the first NS - 1 passes of chunk s (slots loaded and synced)
    const int lo = s * d.chunk, hi = min(n, lo + d.chunk);
    for (int i = 0; i < NS - 1; i++) issue(lo, hi, i);
  };
  if (NS > 0 && !d.kv_ready) {
    __syncthreads();
    prologue(blockIdx.z);  // in flight with the q (and k) reads below
  }
  // Prefetch only while the launch's chunks fit a part of L2 (kKvPrefetchBytes): past that the lines
  // are evicted before use (batch 64 at context 128 was 5% slower with it on the H100).
  const bool prefetch = d.kv_ready && static_cast<int64_t>(gridDim.x) * gridDim.y * gridDim.z * min(n, d.chunk) * D * 4 <= kKvPrefetchBytes;
  if (d.kv_ready) __syncthreads();
  if (NS > 0 && d.kv_ready) prologue(blockIdx.z);  // cached rows only: ready before the wait too
  if (prefetch) {
    const int lo = blockIdx.z * d.chunk, hi = min(last_cached, lo + d.chunk);
    constexpr int kLines = D * 2 / 128 > 0 ? D * 2 / 128 : 1;  // 128-byte lines of a head's row
    for (int i = threadIdx.x; i < (hi - lo) * kLines; i += blockDim.x) {
      const size_t off = static_cast<size_t>(slots[i / kLines]) * kv_dim + kvh * D + (i % kLines) * 64;
      PrefetchL2Line(a.k_cache + off);
      PrefetchL2Line(a.v_cache + off);
    }
  }
  if (d.kv_ready) PdlWait();

  const half* row = a.q + static_cast<size_t>(t) * a.q_stride;
  const half* qh = row + h * D;
  const half* kh = row + (a.heads + kvh) * D;
  const half* vh = row + (a.heads + a.kv_heads + kvh) * D;
  if (d.fuse) {  // rotate-half RoPE at the current position, fp16 rounding as the RoPE op does
    const float* c = d.cos_t + static_cast<size_t>(n - 1) * (D / 2);
    const float* sn = d.sin_t + static_cast<size_t>(n - 1) * (D / 2);
    for (int i = threadIdx.x; i < D / 2; i += blockDim.x) {
      half r0, r1;
      RopePair(__half2float(qh[i]), __half2float(qh[i + D / 2]), c[i], sn[i], &r0, &r1);
      qs[i] = __half2float(r0);
      qs[i + D / 2] = __half2float(r1);
      if (cur) {
        RopePair(__half2float(kh[i]), __half2float(kh[i + D / 2]), c[i], sn[i], &r0, &r1);
        kc[i] = __half2float(r0);
        kc[i + D / 2] = __half2float(r1);
      }
    }
    if (cur)
      for (int i = threadIdx.x; i < D; i += blockDim.x) vc[i] = __half2float(vh[i]);
  } else {
    for (int i = threadIdx.x; i < D; i += blockDim.x) qs[i] = __half2float(qh[i]);
  }
  __syncthreads();
  if (cur && h % group == 0) {  // one block per kv head stores the current k and v
    const int slot = d.slots[t];
    if (slot >= 0) {
      half* kd = const_cast<half*>(a.k_cache) + static_cast<size_t>(slot) * kv_dim + kvh * D;
      half* vd = const_cast<half*>(a.v_cache) + static_cast<size_t>(slot) * kv_dim + kvh * D;
      for (int i = threadIdx.x; i < D; i += blockDim.x) {
        kd[i] = __float2half(kc[i]);
        vd[i] = vh[i];
      }
    }
  }

  float qv[8];
#pragma unroll
  for (int j = 0; j < 8; j++) qv[j] = qs[l * 8 + j];
  const size_t rh = static_cast<size_t>(t) * a.heads + h;
  half* out = a.out + rh * D;

  for (int s = blockIdx.z; s < splits; s += gridDim.z) {
    const int lo = s * d.chunk;
    const int hi = min(n, lo + d.chunk);
    if (s != static_cast<int>(blockIdx.z)) {  // the previous chunk's slots and group values are read
      __syncthreads();
      load_slots(s);
      __syncthreads();
      if (NS > 0) prologue(s);
    }
    GroupSoftmax<U> gs;
    for (int base = lo, i = 0; base < hi; base += U * G, i++) {
      uint4 kv[U], vv[U];
      if (NS > 0) {
        issue(lo, hi, i + NS - 1);
        smem::CpAsyncWait<(NS > 0 ? NS - 1 : 0)>();  // this thread's copies of pass i have landed
      }
#pragma unroll
      for (int u = 0; u < U; u++) {
        const int p = base + u * G + g;
        if (p < min(hi, last_cached)) {
          if (NS > 0) {
            const uint4* st = ring + ((i % kRing) * U + u) * 2 * kThreads + threadIdx.x;
            kv[u] = st[0];
            vv[u] = st[kThreads];
          } else {
            const size_t off = static_cast<size_t>(slots[p - lo]) * kv_dim;
            kv[u] = *reinterpret_cast<const uint4*>(kbase + off);
            vv[u] = *reinterpret_cast<const uint4*>(vbase + off);
          }
        }
      }
      float sc[U];
      bool ok[U], cached[U];
#pragma unroll
      for (int u = 0; u < U; u++) {
        const int p = base + u * G + g;
        ok[u] = p < hi;
        cached[u] = p < last_cached;
        float x = 0;
        if (ok[u]) {
          float kf[8];
          if (cached[u]) Unpack8(kv[u], kf);
          else
#pragma unroll
            for (int j = 0; j < 8; j++) kf[j] = kc[l * 8 + j];
          x = Dot8(qv, kf);
        }
#pragma unroll
        for (int o = L / 2; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
        sc[u] = __fmul_rn(x, a.scale);
      }
      gs.Pass(sc, ok, vv, cached, vc + l * 8);
    }
    if (NS > 0) __syncthreads();  // the ring's space becomes the group values': every thread is done reading it
    gs.Store(part, gmax, gsum, g, l, D);
    __syncthreads();
    float cmax, den;
    CombineGroups(G, gmax, gsum, &cmax, &den);
    float* mine = d.partial + (rh * d.max_splits + s) * (D + 2);
    for (int dd = threadIdx.x; dd < D; dd += blockDim.x) {
      const float o = GroupValue(G, D, part, gmax, cmax, dd);
      if (splits == 1) out[dd] = __float2half(__fdiv_rn(o, den));
      else mine[2 + dd] = o;
    }
    if (splits == 1) return;
    // Several chunks: this one's (max, sum, values) go to its slot.
    if (threadIdx.x == 0) {
      mine[0] = cmax;
      mine[1] = den;
    }
  }
  // The last working block of the (row, head) combines every chunk in chunk order.
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    const int old = atomicAdd(d.counters + rh, 1);
    last = old == active - 1;
    if (last) atomicExch(d.counters + rh, 0);  // back to zero for the next launch
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  const float* all = d.partial + rh * d.max_splits * (D + 2);
  float gm = -FLT_MAX;
  for (int i = 0; i < splits; i++) gm = fmaxf(gm, __ldcg(all + i * (D + 2)));
  float den = 0;
  for (int i = 0; i < splits; i++) den += __ldcg(all + i * (D + 2) + 1) * __expf(__ldcg(all + i * (D + 2)) - gm);
  const float inv = 1.f / den;
  for (int dd = threadIdx.x; dd < D; dd += blockDim.x) {
    float o = 0;
    for (int i = 0; i < splits; i++) o += __ldcg(all + i * (D + 2) + 2 + dd) * __expf(__ldcg(all + i * (D + 2)) - gm);
    out[dd] = __float2half(o * inv);
  }
}

// 4 keys / values in flight per thread and pass, registers capped for 4 blocks per SM (64: a
// 44-byte spill). Measured on the H200 (bench/decode-attention.mjs, one run, us per launch) against
// 8 keys at 124 registers (2 blocks per SM): batch 16 context 4096 413 -> 314 (KV read 252), batch
// 64 context 128 75 -> 52 (32), batch 64 context 4096 1625 -> 1205 (1010); 4 keys at 76 registers
// (3 blocks) and 8 at 80 were in between or slower.
// 2 keys (k and v rows) in flight per thread and pass at 4 blocks per SM (64 registers, no spill).
// Measured on the H200 (bench/decode-attention.mjs, one run, us per launch, default grid) against
// the two-pass kernel (scores, block softmax, values; 4 keys, 4 blocks): batch 1 context 128 9.7
// -> 8.7, batch 16 context 4096 313 -> 271 (KV read 253), batch 64 context 4096 1207 -> 1054
// (1010). 4 keys at 3 blocks per SM, 8 at 2 were faster at batch 1 (6.8 us with 8) and slower
// from batch 16 on (343 / 285 us at batch 16 context 4096); 4 keys at 4 blocks spilled.
constexpr int kKeysInFlight = 2, kMinBlocks = 4;
// Ring stages when the caller leaves them to the launch (stages < 0): 0, the direct loads measured
// in sessions 5-10, until the ring has run on a GPU (session 11 got no device machine).
constexpr int kDefaultStages = 0;

template <int L, int NS>
cudaError_t Launch(const DecodeAttentionArgs& d, cudaStream_t s) {
  auto kernel = DecodeAttentionKernel<L, kKeysInFlight, kMinBlocks, NS>;
  const size_t smem = DecodeSmemBytes<L, kKeysInFlight, NS>(d.chunk);
  if (smem > 48 * 1024) {
    const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (e != cudaSuccess) return e;
  }
  int blocks = d.blocks;
  if (blocks <= 0) {
    // Blocks per (row, head): one wave of resident blocks in all when the rows and heads leave
    // room (a row's chunks then run side by side), at least one, at most one per chunk. One block
    // per chunk of the longest context (the grid before) launched 35k blocks per layer at batch
    // 64, nearly all finding no chunk of their row. Resident blocks per device, cached by chunk
    // (per instantiation: the ring's shared memory sets the occupancy).
    int dev = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e != cudaSuccess) return e;
    static int cache_chunk[64] = {0}, cache_resident[64] = {0};
    if (cache_chunk[dev & 63] != d.chunk) {
      int sms = 0, occ = 0;
      e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
      if (e == cudaSuccess) e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, kernel, kThreads, smem);
      if (e != cudaSuccess) return e;
      cache_resident[dev & 63] = std::max(occ, 1) * sms;
      cache_chunk[dev & 63] = d.chunk;
    }
    const long pairs = std::max(1L, static_cast<long>(d.attn.rows) * d.attn.heads);
    blocks = static_cast<int>(std::max(1L, std::min<long>(cache_resident[dev & 63] / pairs, d.max_splits)));
  }
  return LaunchPdl(kernel, dim3(d.attn.rows, d.attn.heads, blocks), dim3(kThreads), smem, s, d);
}

template <int L>
cudaError_t LaunchStages(const DecodeAttentionArgs& d, cudaStream_t s) {
  switch (d.stages < 0 ? kDefaultStages : d.stages) {
    case 0: return Launch<L, 0>(d, s);
    case 2: return Launch<L, 2>(d, s);
    case 3: return Launch<L, 3>(d, s);
    case 4: return Launch<L, 4>(d, s);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace

int DecodeAttentionSplits(int max_context, int chunk) { return (max_context + chunk - 1) / chunk; }

bool DecodeAttentionSupports(int head_dim) { return head_dim == 64 || head_dim == 128 || head_dim == 256; }

bool DecodeAttentionStages(int stages) { return stages < 0 || stages == 0 || (stages >= 2 && stages <= 4); }

cudaError_t DecodeAttention(const DecodeAttentionArgs& d, cudaStream_t s) {
  if (d.attn.rows == 0) return cudaSuccess;
  switch (d.attn.head_dim) {
    case 64: return LaunchStages<8>(d, s);
    case 128: return LaunchStages<16>(d, s);
    case 256: return LaunchStages<32>(d, s);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace cuda
}  // namespace ops
}  // namespace marlin
