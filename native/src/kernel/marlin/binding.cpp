// JS entry points of the Marlin kernel: marlinGemm (GPU), marlinCpu (CPU), marlinWorkspaceBytes.
// Every argument is checked here (after the TypeScript layer's own checks) before any launch.
#include <napi.h>

#include <string>

#include "common/args.h"
#include "common/device_buffer.h"
#include "common/device_guard.h"
#include "common/errors.h"
#include "common/module.h"
#include "kernel/marlin/cpu_gemm.h"
#include "kernel/marlin/gemm.h"

namespace marlin {
namespace {

struct Problem {
  int m, n, k, group, bits;
  ActType act;
  WeightKind weight;
  size_t groups;
};

// Shape rules shared by both paths; throws ERR_MARLIN_SHAPE / INVALID_ARGUMENT with the reason.
Problem CheckProblem(Napi::Env env, int64_t m, int64_t n, int64_t k, int64_t group, int64_t act, int64_t weight) {
  if (n % 64 != 0) ThrowTyped(env, kErrShape, "n = " + std::to_string(n) + " must be a multiple of 64");
  if (n > kMaxN) ThrowTyped(env, kErrShape, "n = " + std::to_string(n) + " exceeds " + std::to_string(kMaxN));
  if (k % 128 != 0) ThrowTyped(env, kErrShape, "k = " + std::to_string(k) + " must be a multiple of 128");
  const bool per_channel = group == -1 || group >= k;
  if (!per_channel && group != 32 && group != 64 && group != 128)
    ThrowTyped(env, kErrInvalidArgument, "group size " + std::to_string(group) + " is not supported (-1, 32, 64, 128)");
  if (!per_channel && k % group != 0) ThrowTyped(env, kErrShape, "k is not a multiple of the group size");
  if (group != -1 && group > k) ThrowTyped(env, kErrShape, "group size " + std::to_string(group) + " exceeds k");
  Problem p{static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), static_cast<int>(group), weight == 2 ? 8 : 4,
            static_cast<ActType>(act), static_cast<WeightKind>(weight), per_channel ? 1u : static_cast<size_t>(k / group)};
  return p;
}


// The problem arguments of either path (m, n, k, groupSize, act, weight from index `first` on), checked.
Problem ArgProblem(const Napi::CallbackInfo& info, size_t first) {
  const int64_t m = ArgInt(info, first, "m", 1, kMaxDim);
  const int64_t n = ArgInt(info, first + 1, "n", 64, kMaxDim);
  const int64_t k = ArgInt(info, first + 2, "k", 128, kMaxDim);
  const int64_t group = ArgInt(info, first + 3, "groupSize", -1, kMaxDim);
  const int64_t act = ArgInt(info, first + 4, "act", 0, 1);
  const int64_t weight = ArgInt(info, first + 5, "weight", 0, 2);
  return CheckProblem(info.Env(), m, n, k, group, act, weight);
}

// marlinGemm(a, aOffset, b, scales, zeros|null, perm|null, bias|null, c, cOffset, workspace,
//            m, n, k, groupSize, act (0 fp16 | 1 bf16), weight (0 u4 | 1 u4 zero points | 2 u8),
//            stream?, tuning? {tk, tn, blocksPerSm, batchInvariant})
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef MARLIN_WITH_CUDA
  const Problem p = ArgProblem(info, 10);
  const int64_t m = p.m, n = p.n, k = p.k;
  const int64_t a_off = ArgByteOffset(info, 1, "aOffset");
  const int64_t c_off = ArgByteOffset(info, 8, "cOffset");
  GemmArgs g{p.act, p.weight, p.m, p.n, p.k, p.group};  // act, weight, m, n, k, group_size; the rest zero
  g.a = DevicePtr(info, 0, "a", a_off, size_t(m) * k * 2, 16);
  g.b = DevicePtr(info, 2, "qweight", 0, size_t(k) * n * p.bits / 8, 16);
  g.scales = DevicePtr(info, 3, "scales", 0, p.groups * n * 2, 16);
  if (p.weight == WeightKind::kU4Zp) {
    if (IsAbsent(info, 4)) ThrowTyped(env, kErrInvalidArgument, "zero points are required for weight kind u4 with zero points");
    g.zeros = DevicePtr(info, 4, "zeros", 0, p.groups * n * p.bits / 8, 16);
  } else if (!IsAbsent(info, 4)) {
    ThrowTyped(env, kErrInvalidArgument, "zeros given for a symmetric weight kind");
  }
  if (!IsAbsent(info, 5)) g.perm = static_cast<const int32_t*>(DevicePtr(info, 5, "perm", 0, size_t(k) * 4, 16));
  if (!IsAbsent(info, 6)) g.bias = DevicePtr(info, 6, "bias", 0, size_t(n) * 2, 16);
  g.c = DevicePtr(info, 7, "c", c_off, size_t(m) * n * 2, 16);
  const int dev = DeviceOf(info, 0, "a");
  RequireSameDevice(info, dev, {{2, "qweight"}, {3, "scales"}, {4, "zeros"}, {5, "perm"}, {6, "bias"}, {7, "c"}});
  if (DeviceOf(info, 9, "workspace") != dev) ThrowTyped(env, kErrInvalidArgument, "workspace is on another device");
  DeviceGuard guard(env, dev);
  const WorkspaceLayout l = GemmWorkspaceLayout(p.m, p.n, p.k, SmCount(env, dev), g.perm != nullptr);
  g.workspace = DevicePtr(info, 9, "workspace", 0, l.total, 256);
  g.workspace_bytes = DeviceBuffer::From(env, info[9], "workspace")->bytes();
  cudaStream_t stream = ArgStream(info, 16);
  if (!IsAbsent(info, 17)) {
    if (!info[17].IsObject()) ThrowTyped(env, kErrInvalidArgument, "tuning must be an object");
    Napi::Object t = info[17].As<Napi::Object>();
    auto num = [&](const char* key) { return t.Has(key) && t.Get(key).IsNumber() ? t.Get(key).As<Napi::Number>().Int32Value() : 0; };
    g.tuning.tk = num("tk");
    g.tuning.tn = num("tn");
    g.tuning.blocks_per_sm = num("blocksPerSm");
    g.tuning.batch_invariant = t.Has("batchInvariant") && t.Get("batchInvariant").ToBoolean().Value();
  }
  const cudaError_t err = MarlinGemm(g, stream);
  if (err != cudaSuccess) ThrowCuda(env, err, "marlin kernel launch");
  return env.Undefined();
#else
  ThrowNoDevice(env, "marlinGemm");
#endif
}

// marlinWorkspaceBytes(m, n, k, actOrder, device = 0)
Napi::Value WorkspaceBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t m = ArgInt(info, 0, "m", 1, kMaxDim);
  const int64_t n = ArgInt(info, 1, "n", 1, kMaxDim);
  const int64_t k = ArgInt(info, 2, "k", 1, kMaxDim);
  const bool ao = ArgBool(info, 3, "actOrder");
  const int64_t dev = ArgIntOr(info, 4, "device", 0, 1023, 0);
  int sms = 1;
#ifdef MARLIN_WITH_CUDA
  if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, static_cast<int>(dev)) != cudaSuccess) {
    cudaGetLastError();
    ThrowNoDevice(env, "marlinWorkspaceBytes");
  }
#else
  (void)dev;
  ThrowNoDevice(env, "marlinWorkspaceBytes");
#endif
  const WorkspaceLayout l = GemmWorkspaceLayout(static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), sms, ao);
  return Napi::Number::New(env, static_cast<double>(l.total));
}

// marlinCpu(a: Uint16Array, qweight: Int32Array, scales: Uint16Array, zeros: Int32Array|null,
//           perm: Int32Array|null, bias: Uint16Array|null, c: Uint16Array, m, n, k, groupSize, act, weight)
Napi::Value Cpu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Problem p = ArgProblem(info, 7);
  const int64_t m = p.m, n = p.n, k = p.k;
  CpuGemmArgs g{p.act, p.weight, p.m, p.n, p.k, p.group};  // act, weight, m, n, k, group_size; the rest zero
  g.a = static_cast<const uint16_t*>(ArgTyped(info, 0, "a", napi_uint16_array, size_t(m) * k).data);
  g.b = static_cast<const uint32_t*>(ArgTyped(info, 1, "qweight", napi_int32_array, size_t(k) * n * p.bits / 32).data);
  g.scales = static_cast<const uint16_t*>(ArgTyped(info, 2, "scales", napi_uint16_array, p.groups * n).data);
  if (p.weight == WeightKind::kU4Zp) {
    if (IsAbsent(info, 3)) ThrowTyped(env, kErrInvalidArgument, "zero points are required for weight kind u4 with zero points");
    g.zeros = static_cast<const uint32_t*>(ArgTyped(info, 3, "zeros", napi_int32_array, p.groups * n * p.bits / 32).data);
  }
  if (!IsAbsent(info, 4)) {
    HostView pv = ArgTyped(info, 4, "perm", napi_int32_array, size_t(k));
    g.perm = static_cast<const int32_t*>(pv.data);
    for (int64_t i = 0; i < k; i++)
      if (g.perm[i] < 0 || g.perm[i] >= k) ThrowTyped(env, kErrInvalidArgument, "perm[" + std::to_string(i) + "] is outside [0, k)");
  }
  if (!IsAbsent(info, 5)) g.bias = static_cast<const uint16_t*>(ArgTyped(info, 5, "bias", napi_uint16_array, size_t(n)).data);
  g.c = static_cast<uint16_t*>(ArgTyped(info, 6, "c", napi_uint16_array, size_t(m) * n).data);
  CpuMarlinGemm(g);
  return env.Undefined();
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("marlinGemm", Napi::Function::New(env, Gemm, "marlinGemm"));
  exports.Set("marlinCpu", Napi::Function::New(env, Cpu, "marlinCpu"));
  exports.Set("marlinWorkspaceBytes", Napi::Function::New(env, WorkspaceBytes, "marlinWorkspaceBytes"));
}

}  // namespace
}  // namespace marlin

MARLIN_MODULE(marlin, marlin::Init);
