// Dense fp16/bf16 matmul for the engine: "cublas.fp16" (cuBLAS loaded at run time) and "dense.cpu".
// Layout: row-major C[m, n] = A[m, k] * W[k, n] (+ bias[n]), W row-major [k, n] (the transpose of a
// torch Linear weight), fp32 accumulation.
#include <napi.h>

#include <string>

#include "kernel/blas/bias.h"
#include "kernel/blas/cublas_loader.h"
#include "common/args.h"
#include "common/device_buffer.h"
#include "common/device_guard.h"
#include "common/errors.h"
#include "common/module.h"
#include "kernel/marlin/cpu_gemm.h"

namespace marlin {
namespace {

// cublasStatus() -> { available, reason? }
Napi::Value Status(const Napi::CallbackInfo& info) {
#ifdef MARLIN_WITH_CUDA
  std::string why;
  const bool ok = blas::Load(&why) != nullptr;
  return LibraryStatus(info.Env(), ok, why);
#else
  return LibraryStatus(info.Env(), false, kBuiltWithoutCuda);
#endif
}

// denseGemm(a, aOffset, w, bias|null, c, cOffset, m, n, k, act (0 fp16 | 1 bf16), stream?,
//           wTransposed? (W stored [n, k] as a torch Linear weight))
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef MARLIN_WITH_CUDA
  const int64_t m = ArgInt(info, 6, "m", 1, kMaxDim);
  const int64_t n = ArgInt(info, 7, "n", 1, kMaxDim);
  const int64_t k = ArgInt(info, 8, "k", 1, kMaxDim);
  const bool bf16 = ArgInt(info, 9, "act", 0, 1) == 1;
  if (n % 8 != 0 || k % 8 != 0) ThrowTyped(env, kErrShape, "dense matmul needs n and k to be multiples of 8");
  const int64_t a_off = ArgByteOffset(info, 1, "aOffset");
  const int64_t c_off = ArgByteOffset(info, 5, "cOffset");
  const void* a = DevicePtr(info, 0, "a", a_off, size_t(m) * k * 2, 16);
  const void* w = DevicePtr(info, 2, "w", 0, size_t(k) * n * 2, 16);
  const void* bias = IsAbsent(info, 3) ? nullptr : DevicePtr(info, 3, "bias", 0, size_t(n) * 2, 16);
  void* c = DevicePtr(info, 4, "c", c_off, size_t(m) * n * 2, 16);
  const int dev = DeviceBuffer::From(env, info[0], "a")->device();
  for (size_t i : {size_t(2), size_t(4)})
    if (DeviceBuffer::From(env, info[i], i == 2 ? "w" : "c")->device() != dev) ThrowTyped(env, kErrInvalidArgument, "buffers are on different devices");
  cudaStream_t stream = ArgStream(info, 10);
  DeviceGuard guard(env, dev);  // first: a handle is created on the current device
  std::string why;
  blas::Handle h = blas::HandleFor(dev, &why);
  if (!h) ThrowTyped(env, kErrNoDevice, "cuBLAS is not available: " + why);
  const bool w_nk = info.Length() > 11 && info[11].IsBoolean() && info[11].As<Napi::Boolean>().Value();
  const int st = blas::Gemm(h, stream, bf16, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), a, w, w_nk, c);
  if (st != 0) ThrowTyped(env, kErrCuda, "cublasGemmEx failed with status " + std::to_string(st));
  if (bias) {
    const cudaError_t err = blas::LaunchAddBias(bf16, c, bias, static_cast<int>(m), static_cast<int>(n), stream);
    if (err != cudaSuccess) ThrowCuda(env, err, "dense bias");
  }
  return env.Undefined();
#else
  ThrowNoDevice(env, "denseGemm");
#endif
}

// denseCpu(a: Uint16Array, w: Uint16Array, bias: Uint16Array|null, c: Uint16Array, m, n, k, act)
Napi::Value Cpu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t m = ArgInt(info, 4, "m", 1, kMaxDim);
  const int64_t n = ArgInt(info, 5, "n", 1, kMaxDim);
  const int64_t k = ArgInt(info, 6, "k", 1, kMaxDim);
  const int64_t act = ArgInt(info, 7, "act", 0, 1);
  auto a = static_cast<const uint16_t*>(ArgTyped(info, 0, "a", napi_uint16_array, size_t(m) * k).data);
  auto w = static_cast<const uint16_t*>(ArgTyped(info, 1, "w", napi_uint16_array, size_t(k) * n).data);
  const uint16_t* bias = IsAbsent(info, 2) ? nullptr : static_cast<const uint16_t*>(ArgTyped(info, 2, "bias", napi_uint16_array, size_t(n)).data);
  auto c = static_cast<uint16_t*>(ArgTyped(info, 3, "c", napi_uint16_array, size_t(m) * n).data);
  CpuDenseGemm(static_cast<ActType>(act), static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), a, w, bias, c);
  return env.Undefined();
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("cublasStatus", Napi::Function::New(env, Status, "cublasStatus"));
  exports.Set("denseGemm", Napi::Function::New(env, Gemm, "denseGemm"));
  exports.Set("denseCpu", Napi::Function::New(env, Cpu, "denseCpu"));
}

}  // namespace
}  // namespace marlin

MARLIN_MODULE(blas, marlin::Init);
