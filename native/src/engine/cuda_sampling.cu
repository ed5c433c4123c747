// Token choice and log-probabilities on the GPU, one block per row. Greedy is an argmax (lowest id
// on ties). Sampling keeps the tokens above a threshold found by bisection (top-k: at least k
// tokens; top-p: the smallest set by logit with mass >= p; ties at a threshold are all kept), then
// draws by the exponential race argmax p_i / E_i with E_i from the hash the CPU sampler uses.
#include "common/pdl.cuh"
#include "engine/cuda_common.cuh"
#include "engine/cuda_ops.h"
#include "engine/sample_hash.h"

namespace marlin {
namespace ops {
namespace cuda {

constexpr int kSampleThreads = 1024;
constexpr int kBisect = 40;

struct Best {
  float v;
  int i;
};
__device__ __forceinline__ Best Better(Best a, Best b) { return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a; }

__device__ Best BlockArgmax(Best b, float* sv, int* si) {
  for (int o = 16; o > 0; o >>= 1) {
    Best x{__shfl_xor_sync(0xffffffffu, b.v, o), __shfl_xor_sync(0xffffffffu, b.i, o)};
    b = Better(b, x);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) {
    sv[warp] = b.v;
    si[warp] = b.i;
  }
  __syncthreads();
  b = lane < warps ? Best{sv[lane], si[lane]} : Best{-FLT_MAX, 0x7fffffff};
  for (int o = 16; o > 0; o >>= 1) {
    Best x{__shfl_xor_sync(0xffffffffu, b.v, o), __shfl_xor_sync(0xffffffffu, b.i, o)};
    b = Better(b, x);
  }
  return b;
}

__global__ void __launch_bounds__(kSampleThreads) SampleKernel(SampleArgs a) {
  PdlTrigger();  // see common/pdl.cuh: launched with LaunchPdl
  PdlWait();
  __shared__ float scratch[32];
  __shared__ int iscratch[32];
  const int r = blockIdx.x;
  const float* l = a.logits + static_cast<size_t>(r) * a.vocab;
  const float temp = a.temperature[r];
  if (!(temp > 0.f)) {
    Best b{-FLT_MAX, 0x7fffffff};
    for (int i = threadIdx.x; i < a.vocab; i += blockDim.x) b = Better(b, Best{l[i], i});
    b = BlockArgmax(b, scratch, iscratch);
    if (threadIdx.x == 0) a.out[r] = b.i < a.vocab ? b.i : 0;  // all-NaN rows still give a valid id
    return;
  }
  const float inv_t = 1.f / temp;
  float mx = -FLT_MAX, mn = FLT_MAX;
  for (int i = threadIdx.x; i < a.vocab; i += blockDim.x) {
    const float x = l[i] * inv_t;
    mx = fmaxf(mx, x);
    mn = fminf(mn, x);
  }
  mx = BlockMax(mx, scratch);
  mn = -BlockMax(-mn, scratch);
  float tau = -FLT_MAX;
  const int k = a.top_k[r];
  if (k > 0 && k < a.vocab) {
    float lo = mn, hi = mx;  // invariant: count(x >= lo) >= k
    for (int it = 0; it < kBisect; it++) {
      const float mid = 0.5f * (lo + hi);
      float c = 0;
      for (int i = threadIdx.x; i < a.vocab; i += blockDim.x) c += (l[i] * inv_t >= mid) ? 1.f : 0.f;
      c = BlockSum(c, scratch);
      if (c >= k) lo = mid;
      else hi = mid;
    }
    tau = lo;
  }
  const float p = a.top_p[r];
  if (p < 1.f) {
    auto mass = [&](float th) {
      float m = 0;
      for (int i = threadIdx.x; i < a.vocab; i += blockDim.x) {
        const float x = l[i] * inv_t;
        if (x >= th) m += __expf(x - mx);
      }
      return BlockSum(m, scratch);
    };
    const float z = mass(tau);
    float lo = fmaxf(tau, mn), hi = mx;  // invariant: mass(lo) >= p * z
    for (int it = 0; it < kBisect; it++) {
      const float mid = 0.5f * (lo + hi);
      if (mass(mid) >= p * z) lo = mid;
      else hi = mid;
    }
    tau = lo;
  }
  const uint64_t seed = static_cast<uint64_t>(a.seeds[2 * r]) | static_cast<uint64_t>(a.seeds[2 * r + 1]) << 32;
  const uint32_t counter = static_cast<uint32_t>(a.counters[r]);
  Best b{-FLT_MAX, 0x7fffffff};
  for (int i = threadIdx.x; i < a.vocab; i += blockDim.x) {
    const float x = l[i] * inv_t;
    if (x < tau) continue;
    const double e = -log(SampleUniformHD(seed, counter, static_cast<uint32_t>(i)));
    b = Better(b, Best{static_cast<float>((x - mx) - log(e)), i});
  }
  b = BlockArgmax(b, scratch, iscratch);
  if (threadIdx.x == 0) a.out[r] = b.i < a.vocab ? b.i : 0;  // all-NaN rows still give a valid id
}

cudaError_t Sample(const SampleArgs& a, cudaStream_t s) {
  if (a.rows == 0) return cudaSuccess;
  return LaunchPdl(SampleKernel, dim3(a.rows), dim3(kSampleThreads), 0, s, a);
}

__global__ void LogprobsKernel(const float* logits, int vocab, const int32_t* targets, float* out) {
  PdlTrigger();  // see common/pdl.cuh: launched with LaunchPdl
  PdlWait();
  __shared__ float scratch[32];
  const int r = blockIdx.x;
  const float* l = logits + static_cast<size_t>(r) * vocab;
  float mx = -FLT_MAX;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) mx = fmaxf(mx, l[i]);
  mx = BlockMax(mx, scratch);
  float sum = 0;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) sum += expf(l[i] - mx);
  sum = BlockSum(sum, scratch);
  if (threadIdx.x == 0) out[r] = l[targets[r]] - mx - logf(sum);
}

cudaError_t Logprobs(const float* logits, int rows, int vocab, const int32_t* targets, float* out, cudaStream_t s) {
  if (rows == 0) return cudaSuccess;
  return LaunchPdl(LogprobsKernel, dim3(rows), dim3(256), 0, s, logits, vocab, targets, out);
}

}  // namespace cuda
}  // namespace ops
}  // namespace marlin
