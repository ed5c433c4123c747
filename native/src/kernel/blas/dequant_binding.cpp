// JS entry points of the dequantize-then-cuBLAS path: dequantGemm, dequantScratchBytes.
#include <napi.h>

#include <string>

#include "common/args.h"
#include "common/device_buffer.h"
#include "common/device_guard.h"
#include "common/errors.h"
#include "common/module.h"
#include "kernel/blas/cublas_loader.h"
#include "kernel/blas/dequant.h"
#include "kernel/hopper/quant_args.h"

namespace marlin {
namespace {


// The Marlin kernel's shape rules (this path reads the same layout).
std::string Refusal(int n, int k, int group, WeightKind) {
  if (n % 64 != 0) return "n = " + std::to_string(n) + " must be a multiple of 64";
  if (k % 128 != 0) return "k = " + std::to_string(k) + " must be a multiple of 128";
  const bool per_channel = group == -1 || group >= k;
  if (!per_channel && group != 32 && group != 64 && group != 128)
    return "group size " + std::to_string(group) + " is not supported (-1, 32, 64, 128)";
  if (!per_channel && k % group != 0) return "k is not a multiple of the group size";
  return "";
}

// dequantScratchBytes(n, k): scratch that holds the whole layer decoded (a smaller one works a
// column slice at a time, at least k * 128 bytes).
Napi::Value ScratchBytes(const Napi::CallbackInfo& info) {
  const int64_t n = ArgInt(info, 0, "n", 1, kMaxDim);
  const int64_t k = ArgInt(info, 1, "k", 1, kMaxDim);
  return Napi::Number::New(info.Env(), static_cast<double>(blas::DequantScratchBytes(static_cast<int>(n), static_cast<int>(k))));
}

// dequantGemm(a, aOffset, b, scales, zeros|null, perm|null, bias|null, c, cOffset, scratch,
//             m, n, k, groupSize, act, weight, stream?) — marlinGemm's arguments, a scratch buffer
// in place of the workspace.
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef MARLIN_WITH_CUDA
  QuantCall q = ArgQuantCall(info, Refusal);
  GemmArgs& g = q.g;
  DeviceBuffer* scratch = DeviceBuffer::From(env, info[9], "scratch");
  const size_t min_bytes = size_t(g.k) * 64 * 2;
  void* sp = DevicePtr(info, 9, "scratch", 0, min_bytes, 256);
  DeviceGuard guard(env, q.device);  // first: the cuBLAS handle belongs to the current device
  std::string why;
  blas::Handle h = blas::HandleFor(q.device, &why);
  if (!h) ThrowTyped(env, kErrNoDevice, "cuBLAS is not available: " + why);
  cudaStream_t stream = ArgStream(info, 16);
  int st = 0;
  const cudaError_t err = blas::DequantGemm(g, sp, scratch->bytes(), h, stream, &st);
  if (err != cudaSuccess) ThrowCuda(env, err, "dequantize + cuBLAS");
  if (st != 0) ThrowTyped(env, kErrCuda, "cublasGemmEx failed with status " + std::to_string(st));
  return env.Undefined();
#else
  ThrowNoDevice(env, "dequantGemm");
#endif
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("dequantGemm", Napi::Function::New(env, Gemm, "dequantGemm"));
  exports.Set("dequantScratchBytes", Napi::Function::New(env, ScratchBytes, "dequantScratchBytes"));
}

}  // namespace
}  // namespace marlin

MARLIN_MODULE(dequant, marlin::Init);
