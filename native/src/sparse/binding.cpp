// JS entry points of the 2:4 sparse GEMM: sparse24Gemm (GPU), sparse24Cpu (CPU),
// sparse24WorkspaceBytes. Every argument is checked here (after the TypeScript layer's own
// checks) before any launch, with the same typed errors as the dense Marlin binding.
#include <napi.h>

#include <string>

#include "common/args.h"
#include "common/device_buffer.h"
#include "common/device_guard.h"
#include "common/errors.h"
#include "common/module.h"
#include "sparse/cpu_gemm.h"
#include "sparse/gemm.h"

namespace marlin {
namespace {

struct Problem {
  int m, n, k, group;
  size_t groups;
};

// m, n, k, groupSize from index `first` on; n must be a multiple of `n_multiple` (16 for the layout,
// 64 for the GPU block).
Problem ArgProblem(const Napi::CallbackInfo& info, size_t first, int64_t n_multiple) {
  Napi::Env env = info.Env();
  const int64_t m = ArgInt(info, first, "m", 1, kMaxDim);
  const int64_t n = ArgInt(info, first + 1, "n", 16, kSparseMaxN);
  const int64_t k = ArgInt(info, first + 2, "k", 128, kMaxDim);
  const int64_t group = ArgInt(info, first + 3, "groupSize", -1, kMaxDim);
  if (n % n_multiple != 0) ThrowTyped(env, kErrShape, "n = " + std::to_string(n) + " must be a multiple of " + std::to_string(n_multiple));
  if (k % 128 != 0) ThrowTyped(env, kErrShape, "k = " + std::to_string(k) + " must be a multiple of 128");
  if (group != -1 && group != 128) ThrowTyped(env, kErrInvalidArgument, "group size " + std::to_string(group) + " is not supported (-1, 128)");
  if (group > k) ThrowTyped(env, kErrShape, "group size " + std::to_string(group) + " exceeds k");
  const size_t groups = group == -1 ? 1 : size_t(k / group);
  return Problem{int(m), int(n), int(k), int(group), groups};
}

// sparse24Gemm(a, aOffset, values, meta, scales, bias|null, c, cOffset, workspace,
//              m, n, k, groupSize, act (0 fp16 | 1 bf16), stream?)
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef MARLIN_WITH_CUDA
  const Problem p = ArgProblem(info, 9, kSparseBlockN);
  const int64_t act = ArgInt(info, 13, "act", 0, 1);
  const int64_t a_off = ArgByteOffset(info, 1, "aOffset");
  const int64_t c_off = ArgByteOffset(info, 7, "cOffset");
  Sparse24GemmArgs g{};
  g.m = p.m, g.n = p.n, g.k = p.k, g.group_size = p.group, g.bf16 = act == 1;
  g.a = DevicePtr(info, 0, "a", a_off, size_t(p.m) * p.k * 2, 16);
  g.values = static_cast<const uint32_t*>(DevicePtr(info, 2, "values", 0, size_t(p.k) * p.n / 4, 16));
  g.meta = static_cast<const uint32_t*>(DevicePtr(info, 3, "meta", 0, size_t(p.k) * p.n / 8, 16));
  g.scales = DevicePtr(info, 4, "scales", 0, p.groups * p.n * 2, 16);
  if (!IsAbsent(info, 5)) g.bias = DevicePtr(info, 5, "bias", 0, size_t(p.n) * 2, 16);
  g.c = DevicePtr(info, 6, "c", c_off, size_t(p.m) * p.n * 2, 16);
  const int dev = DeviceOf(info, 0, "a");
  RequireSameDevice(info, dev, {{2, "values"}, {3, "meta"}, {4, "scales"}, {5, "bias"}, {6, "c"}, {8, "workspace"}});
  DeviceGuard guard(env, dev);
  g.sms = SmCount(env, dev);
  const Sparse24Plan plan = PlanSparse24(p.m, p.n, p.k, g.sms);
  g.workspace = DevicePtr(info, 8, "workspace", 0, plan.total, 256);
  cudaStream_t stream = ArgStream(info, 14);
  const cudaError_t err = Sparse24Gemm(g, stream);
  if (err != cudaSuccess) ThrowCuda(env, err, "sparse24 kernel launch");
  return env.Undefined();
#else
  ThrowNoDevice(env, "sparse24Gemm");
#endif
}

// sparse24WorkspaceBytes(m, n, k, device = 0): bytes of (all-zero) workspace enough for any call
// of at most m rows.
Napi::Value WorkspaceBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t m = ArgInt(info, 0, "m", 1, kMaxDim);
  const int64_t n = ArgInt(info, 1, "n", 1, kSparseMaxN);
  const int64_t k = ArgInt(info, 2, "k", 1, kMaxDim);
  const int64_t dev = ArgIntOr(info, 3, "device", 0, 1023, 0);
#ifdef MARLIN_WITH_CUDA
  int sms = 1;
  if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, static_cast<int>(dev)) != cudaSuccess) {
    cudaGetLastError();
    ThrowNoDevice(env, "sparse24WorkspaceBytes");
  }
  return Napi::Number::New(env, static_cast<double>(Sparse24WorkspaceBound(m, n, k, sms)));
#else
  (void)m, (void)n, (void)k, (void)dev;
  ThrowNoDevice(env, "sparse24WorkspaceBytes");
#endif
}

// sparse24Cpu(a: Uint16Array, values: Int32Array, meta: Int32Array, scales: Uint16Array,
//             bias: Uint16Array|null, c: Uint16Array, m, n, k, groupSize)
Napi::Value Cpu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Problem p = ArgProblem(info, 6, 16);
  Sparse24CpuArgs g{p.m, p.n, p.k, p.group};
  g.a = static_cast<const uint16_t*>(ArgTyped(info, 0, "a", napi_uint16_array, size_t(p.m) * p.k).data);
  g.values = static_cast<const uint32_t*>(ArgTyped(info, 1, "values", napi_int32_array, size_t(p.k) * p.n / 16).data);
  g.meta = static_cast<const uint32_t*>(ArgTyped(info, 2, "meta", napi_int32_array, size_t(p.k) * p.n / 32).data);
  g.scales = static_cast<const uint16_t*>(ArgTyped(info, 3, "scales", napi_uint16_array, p.groups * p.n).data);
  if (!IsAbsent(info, 4)) g.bias = static_cast<const uint16_t*>(ArgTyped(info, 4, "bias", napi_uint16_array, size_t(p.n)).data);
  g.c = static_cast<uint16_t*>(ArgTyped(info, 5, "c", napi_uint16_array, size_t(p.m) * p.n).data);
  (void)env;
  CpuSparse24Gemm(g);
  return info.Env().Undefined();
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("sparse24Gemm", Napi::Function::New(env, Gemm, "sparse24Gemm"));
  exports.Set("sparse24Cpu", Napi::Function::New(env, Cpu, "sparse24Cpu"));
  exports.Set("sparse24WorkspaceBytes", Napi::Function::New(env, WorkspaceBytes, "sparse24WorkspaceBytes"));
}

}  // namespace
}  // namespace marlin

MARLIN_MODULE(sparse24, marlin::Init);
