// JS entry points of GPTQ on the GPU (exports.gptq): Hessian accumulation through cuBLAS, the
// factor U through cuSOLVER (both loaded at run time), group params and the column loop with the
// lazy trailing update as a cuBLAS fp32 GEMM. packages/gptq/src/gpu.ts drives them.
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/args.h"
#include "common/device_buffer.h"
#include "common/errors.h"
#include "common/module.h"

#ifdef MARLIN_WITH_CUDA
#include "kernel/blas/cublas_loader.h"
#include "common/device_guard.h"
#include "gptq/cusolver_loader.h"
#include "gptq/gptq_kernels.h"
#endif

namespace marlin {
namespace {

// Sizes the GPTQ calls take: k * k and k * n stay below 2^36 elements, so every byte count below
// (size_t products of at most three of these) is exact; the kernels index with int64.
constexpr int64_t kMaxK = 65536;
constexpr int64_t kMaxN = int64_t{1} << 20;

#ifdef MARLIN_WITH_CUDA
// cudaMalloc'd scratch freed on every exit path (C++ exceptions carry JS errors out).
struct Scratch {
  void* p = nullptr;
  explicit Scratch(Napi::Env env, size_t bytes) { CUDA_CHECK(env, cudaMalloc(&p, bytes ? bytes : 1)); }
  ~Scratch() {
    if (p) cudaFree(p);
  }
  template <class T>
  T* as() const {
    return static_cast<T*>(p);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

blas::Handle Cublas(Napi::Env env, int dev, cudaStream_t s) {
  std::string why;
  blas::Handle h = blas::HandleFor(dev, &why);
  if (!h) ThrowTyped(env, kErrNoDevice, "cuBLAS is not available: " + why);
  const int st = blas::Load(nullptr)->set_stream(h, s);
  if (st != 0) ThrowTyped(env, kErrCuda, "cublasSetStream failed with status " + std::to_string(st));
  return h;
}

void CheckBlas(Napi::Env env, int st, const char* what) {
  if (st != 0) ThrowTyped(env, kErrCuda, std::string(what) + " failed with cuBLAS status " + std::to_string(st));
}
void CheckSolver(Napi::Env env, int st, const char* what) {
  if (st != 0) ThrowTyped(env, kErrCuda, std::string(what) + " failed with cuSOLVER status " + std::to_string(st));
}
#endif

// status() -> { available, reason? }: cuBLAS and cuSOLVER both loadable.
Napi::Value Status(const Napi::CallbackInfo& info) {
#ifdef MARLIN_WITH_CUDA
  std::string why;
  const bool ok = blas::Load(&why) != nullptr && gptq::LoadSolver(&why) != nullptr;
  return LibraryStatus(info.Env(), ok, why);
#else
  return LibraryStatus(info.Env(), false, kBuiltWithoutCuda);
#endif
}

// hessianAdd(h fp32 [k, k], x fp16 [tokens, k], xByteOffset, tokens, k, alpha, beta, stream?):
// H = beta * H + alpha * X^T X on tensor cores (fp16 inputs, fp32 accumulation and output).
Napi::Value HessianAdd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef MARLIN_WITH_CUDA
  const int64_t tokens = ArgInt(info, 3, "tokens", 1, int64_t{1} << 30);
  const int64_t k = ArgInt(info, 4, "k", 1, kMaxK);
  const float alpha = float(ArgFinite(info, 5, "alpha", -1e30, 1e30));
  const float beta = float(ArgFinite(info, 6, "beta", -1e30, 1e30));
  const int64_t xoff = ArgByteOffset(info, 2, "xByteOffset");
  void* h = DevicePtr(info, 0, "h", 0, size_t(k) * k * 4, 16);
  const void* x = DevicePtr(info, 1, "x", xoff, size_t(tokens) * k * 2, 16);
  const int dev = DeviceBuffer::From(env, info[0], "h")->device();
  if (DeviceBuffer::From(env, info[1], "x")->device() != dev) ThrowTyped(env, kErrInvalidArgument, "h and x are on different devices");
  DeviceGuard guard(env, dev);
  cudaStream_t s = ArgStream(info, 7);
  blas::Handle bh = Cublas(env, dev, s);
  // Column-major: X is k x tokens (ld k); H (k x k) = alpha X X^T + beta H (symmetric: layout-free).
  const int st = blas::Load(nullptr)->gemm_ex(bh, blas::kOpN, blas::kOpT, int(k), int(k), int(tokens), &alpha, x, blas::kR16F,
                                               int(k), x, blas::kR16F, int(k), &beta, h, blas::kR32F, int(k), blas::kCompute32F,
                                               blas::kGemmDefault);
  CheckBlas(env, st, "Hessian GEMM");
  return env.Undefined();
#else
  ThrowNoDevice(env, "gptq.hessianAdd");
#endif
}

// diag(h fp32 [k, k], k) -> Float32Array [k] (waits for queued work).
Napi::Value Diag(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef MARLIN_WITH_CUDA
  const int64_t k = ArgInt(info, 1, "k", 1, kMaxK);
  const void* h = DevicePtr(info, 0, "h", 0, size_t(k) * k * 4, 4);
  DeviceGuard guard(env, DeviceBuffer::From(env, info[0], "h")->device());
  Napi::Float32Array out = Napi::Float32Array::New(env, size_t(k));
  CUDA_CHECK(env, cudaDeviceSynchronize());
  CUDA_CHECK(env, cudaMemcpy2D(out.Data(), 4, h, size_t(k + 1) * 4, 4, size_t(k), cudaMemcpyDeviceToHost));
  return out;
#else
  ThrowNoDevice(env, "gptq.diag");
#endif
}

// factor(h fp32 [k, k], k, perm Int32Array [k], damp, u fp32 [k, k], stream?) -> info:
// U = upper Cholesky factor of (P^T H P with dead inputs' diagonal 1, + damp I)^-1, in fp64 through
// cuSOLVER (potrf, potri, potrf: the inverse's lower factor read row-major is U). Returns 0, or
// the pivot (> 0) where a Cholesky failed (the caller raises damping and retries). h is unchanged.
Napi::Value Factor(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef MARLIN_WITH_CUDA
  const int64_t k = ArgInt(info, 1, "k", 1, kMaxK);
  const HostView perm = ArgTyped(info, 2, "perm", napi_int32_array, size_t(k));
  const double damp = ArgFinite(info, 3, "damp", 0, 1e30);
  const float* h = static_cast<const float*>(DevicePtr(info, 0, "h", 0, size_t(k) * k * 4, 16));
  float* u = static_cast<float*>(DevicePtr(info, 4, "u", 0, size_t(k) * k * 4, 16));
  const int32_t* p = static_cast<const int32_t*>(perm.data);
  std::vector<char> seen(size_t(k), 0);
  for (int64_t i = 0; i < k; i++) {
    if (p[i] < 0 || p[i] >= k || seen[size_t(p[i])]) ThrowTyped(env, kErrInvalidArgument, "perm is not a permutation of 0..k-1");
    seen[size_t(p[i])] = 1;
  }
  const int dev = DeviceBuffer::From(env, info[0], "h")->device();
  DeviceGuard guard(env, dev);
  cudaStream_t s = ArgStream(info, 5);
  std::string why;
  gptq::SolverHandle sh = gptq::SolverFor(dev, &why);
  if (!sh) ThrowTyped(env, kErrNoDevice, "cuSOLVER is not available: " + why);
  const gptq::SolverApi* api = gptq::LoadSolver(nullptr);
  CheckSolver(env, api->set_stream(sh, s), "cusolverDnSetStream");
  Scratch a(env, size_t(k) * k * 8), dperm(env, size_t(k) * 4), dinfo(env, 4);
  CUDA_CHECK(env, cudaMemcpyAsync(dperm.p, p, size_t(k) * 4, cudaMemcpyHostToDevice, s));
  CUDA_CHECK(env, gptq::LaunchPrepare(h, dperm.as<int>(), a.as<double>(), int(k), damp, s));
  int lw1 = 0, lw2 = 0;
  CheckSolver(env, api->dpotrf_buffer_size(sh, gptq::kFillLower, int(k), a.as<double>(), int(k), &lw1), "Dpotrf_bufferSize");
  CheckSolver(env, api->dpotri_buffer_size(sh, gptq::kFillLower, int(k), a.as<double>(), int(k), &lw2), "Dpotri_bufferSize");
  const int lwork = lw1 > lw2 ? lw1 : lw2;
  Scratch work(env, size_t(lwork) * 8);
  int hinfo = 0;
  auto step = [&](bool potri, const char* what) {
    const int st = potri ? api->dpotri(sh, gptq::kFillLower, int(k), a.as<double>(), int(k), work.as<double>(), lwork, dinfo.as<int>())
                         : api->dpotrf(sh, gptq::kFillLower, int(k), a.as<double>(), int(k), work.as<double>(), lwork, dinfo.as<int>());
    CheckSolver(env, st, what);
    CUDA_CHECK(env, cudaMemcpyAsync(&hinfo, dinfo.p, 4, cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(env, cudaStreamSynchronize(s));
    if (hinfo < 0) ThrowTyped(env, kErrCuda, std::string(what) + " rejected argument " + std::to_string(-hinfo));
    return hinfo;
  };
  if (step(false, "Dpotrf") != 0) return Napi::Number::New(env, hinfo);
  if (step(true, "Dpotri") != 0) return Napi::Number::New(env, hinfo);
  if (step(false, "Dpotrf (inverse)") != 0) return Napi::Number::New(env, hinfo);
  CUDA_CHECK(env, gptq::LaunchUpperToF32(a.as<double>(), u, int(k), s));
  CUDA_CHECK(env, cudaStreamSynchronize(s));  // scratch is freed on return
  return Napi::Number::New(env, 0);
#else
  ThrowNoDevice(env, "gptq.factor");
#endif
}

#ifdef MARLIN_WITH_CUDA
// The range search arguments (clipSteps, clipGrid) at i, i + 1: steps 0 = none.
gptq::ClipSearch ArgClip(const Napi::CallbackInfo& info, size_t i) {
  gptq::ClipSearch c;
  c.steps = int(ArgInt(info, i, "clipSteps", 0, 1 << 20));
  c.grid = float(ArgFinite(info, i + 1, "clipGrid", 1, 1 << 20));
  return c;
}

bool IsNothing(const Napi::CallbackInfo& info, size_t i) { return info.Length() <= i || info[i].IsNull() || info[i].IsUndefined(); }
#endif

// params(w fp32 [k, n], k, n, r0, r1, bits, sym, scales fp32 [groups, n], zeros fp32, g,
//        rowWeights fp32 | null, rowStride, rowInvSq, clipSteps, clipGrid, stream?)
// With clipSteps > 0 the range search weighs row r's error by rowWeights[r * rowStride] (or its
// inverse square when rowInvSq: U's diagonal, stride k + 1); rowWeights null: no search.
Napi::Value Params(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef MARLIN_WITH_CUDA
  const int64_t k = ArgInt(info, 1, "k", 1, kMaxK);
  const int64_t n = ArgInt(info, 2, "n", 1, kMaxN);
  const int64_t r0 = ArgInt(info, 3, "r0", 0, k - 1);
  const int64_t r1 = ArgInt(info, 4, "r1", r0 + 1, k);
  const int64_t bits = ArgInt(info, 5, "bits", 4, 8);
  if (bits != 4 && bits != 8) ThrowTyped(env, kErrInvalidArgument, "bits must be 4 or 8");
  const bool sym = ArgBool(info, 6, "sym");
  const int64_t g = ArgInt(info, 9, "g", 0, k);
  const float* w = static_cast<const float*>(DevicePtr(info, 0, "w", 0, size_t(k) * n * 4, 4));
  float* sc = static_cast<float*>(DevicePtr(info, 7, "scales", 0, size_t(g + 1) * n * 4, 4));
  float* zr = static_cast<float*>(DevicePtr(info, 8, "zeros", 0, size_t(g + 1) * n * 4, 4));
  const int64_t rs = ArgInt(info, 11, "rowStride", 1, kMaxK + 1);
  const bool inv_sq = ArgBool(info, 12, "rowInvSq");
  const gptq::ClipSearch clip = ArgClip(info, 13);
  const float* rw = IsNothing(info, 10) ? nullptr
                                        : static_cast<const float*>(DevicePtr(info, 10, "rowWeights", 0, size_t((r1 - 1) * rs + 1) * 4, 4));
  if (clip.steps > 0 && rw == nullptr) ThrowTyped(env, kErrInvalidArgument, "a range search (clipSteps > 0) needs rowWeights");
  DeviceGuard guard(env, DeviceBuffer::From(env, info[0], "w")->device());
  cudaStream_t s = ArgStream(info, 15);
  CUDA_CHECK(env, gptq::LaunchGroupParams(w, int(n), int(r0), int(r1), int(bits), sym, sc, zr, int(g), clip, rw, rs, inv_sq, s));
  return env.Undefined();
#else
  ThrowNoDevice(env, "gptq.params");
#endif
}

// loop(w fp32 [k, n] (consumed), u fp32 [k, k], k, n, bits, sym, groupSize, dynamic, gperm Int32Array [k],
//      scales fp32 [groups, n], zeros fp32 [groups, n], q uint8 [k, n], blockSize,
//      mask uint8 [k, n] | null, sparseMode (0 none, 1 SparseGPT select: mask written, 2 fixed: mask read),
//      clipSteps, clipGrid, stream?) -> loss
// Rows in blocks: quantize (and prune 2:4) with in-block error feedback (kernel), then
// W[i2:, :] -= U[i1:i2, i2:]^T Err as one fp32 GEMM. Returns sum over rows of ||err||^2.
Napi::Value Loop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef MARLIN_WITH_CUDA
  const int64_t k = ArgInt(info, 2, "k", 1, kMaxK);
  const int64_t n = ArgInt(info, 3, "n", 1, kMaxN);
  const int64_t bits = ArgInt(info, 4, "bits", 4, 8);
  if (bits != 4 && bits != 8) ThrowTyped(env, kErrInvalidArgument, "bits must be 4 or 8");
  const bool sym = ArgBool(info, 5, "sym");
  const int64_t gs = ArgInt(info, 6, "groupSize", -1, k);
  if (gs == 0) ThrowTyped(env, kErrInvalidArgument, "groupSize must be -1 or positive");
  const bool dynamic = ArgBool(info, 7, "dynamic");
  const HostView gperm = ArgTyped(info, 8, "gperm", napi_int32_array, size_t(k));
  const int64_t bs = ArgInt(info, 12, "blockSize", 1, gptq::kMaxBlock);
  if (gs > 0 && dynamic && bs % gs != 0) ThrowTyped(env, kErrInvalidArgument, "blockSize must be a multiple of groupSize");
  const int64_t groups = gs > 0 ? (k + gs - 1) / gs : 1;
  const int32_t* gp = static_cast<const int32_t*>(gperm.data);
  for (int64_t i = 0; i < k; i++)
    if (gp[i] < 0 || gp[i] >= groups) ThrowTyped(env, kErrInvalidArgument, "gperm holds a group out of range");
  float* w = static_cast<float*>(DevicePtr(info, 0, "w", 0, size_t(k) * n * 4, 16));
  const float* u = static_cast<const float*>(DevicePtr(info, 1, "u", 0, size_t(k) * k * 4, 16));
  float* sc = static_cast<float*>(DevicePtr(info, 9, "scales", 0, size_t(groups) * n * 4, 4));
  float* zr = static_cast<float*>(DevicePtr(info, 10, "zeros", 0, size_t(groups) * n * 4, 4));
  uint8_t* q = static_cast<uint8_t*>(DevicePtr(info, 11, "q", 0, size_t(k) * n, 1));
  const int64_t mode = ArgInt(info, 14, "sparseMode", 0, 2);
  uint8_t* mask = IsNothing(info, 13) ? nullptr : static_cast<uint8_t*>(DevicePtr(info, 13, "mask", 0, size_t(k) * n, 1));
  if (mode != 0) {
    if (mask == nullptr) ThrowTyped(env, kErrInvalidArgument, "2:4 pruning (sparseMode != 0) needs a mask buffer");
    if (k % 4 != 0 || bs % 4 != 0) ThrowTyped(env, kErrShape, "2:4 pruning needs k and blockSize to be multiples of 4");
  }
  const gptq::ClipSearch clip = ArgClip(info, 15);
  const int dev = DeviceBuffer::From(env, info[0], "w")->device();
  DeviceGuard guard(env, dev);
  cudaStream_t s = ArgStream(info, 17);
  blas::Handle bh = Cublas(env, dev, s);
  Scratch err(env, size_t(bs) * n * 4), dg(env, size_t(k) * 4), loss(env, 8);
  CUDA_CHECK(env, cudaMemcpyAsync(dg.p, gp, size_t(k) * 4, cudaMemcpyHostToDevice, s));
  CUDA_CHECK(env, cudaMemsetAsync(loss.p, 0, 8, s));
  const float minus_one = -1.f, one = 1.f;
  for (int64_t i1 = 0; i1 < k; i1 += bs) {
    const int64_t i2 = i1 + bs < k ? i1 + bs : k;
    CUDA_CHECK(env, gptq::LaunchBlockQuant(w, u, int(k), int(n), int(i1), int(i2), int(bits), sym, int(gs), dynamic, dg.as<int>(), sc,
                                           zr, q, err.as<float>(), loss.as<double>(), clip, gptq::SparseMode(mode), mask, s));
    if (i2 < k) {
      // Column-major: W2^T (n x (k-i2), ld n) -= Err^T (n x rows, ld n) * Ublk^T, Ublk = U[i1:i2, i2:] (ld k).
      const int st = blas::Load(nullptr)->gemm_ex(bh, blas::kOpN, blas::kOpT, int(n), int(k - i2), int(i2 - i1), &minus_one, err.p,
                                                   blas::kR32F, int(n), u + i1 * k + i2, blas::kR32F, int(k), &one,
                                                   w + i2 * n, blas::kR32F, int(n), blas::kCompute32F, blas::kGemmDefault);
      CheckBlas(env, st, "GPTQ lazy update GEMM");
    }
  }
  double total = 0;
  CUDA_CHECK(env, cudaMemcpyAsync(&total, loss.p, 8, cudaMemcpyDeviceToHost, s));
  CUDA_CHECK(env, cudaStreamSynchronize(s));  // scratch is freed on return
  return Napi::Number::New(env, total);
#else
  ThrowNoDevice(env, "gptq.loop");
#endif
}

void Init(Napi::Env env, Napi::Object exports) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("status", Napi::Function::New(env, Status, "status"));
  o.Set("hessianAdd", Napi::Function::New(env, HessianAdd, "hessianAdd"));
  o.Set("diag", Napi::Function::New(env, Diag, "diag"));
  o.Set("factor", Napi::Function::New(env, Factor, "factor"));
  o.Set("params", Napi::Function::New(env, Params, "params"));
  o.Set("loop", Napi::Function::New(env, Loop, "loop"));
  exports.Set("gptq", o);
}

}  // namespace
}  // namespace marlin

MARLIN_MODULE(gptq, marlin::Init);
