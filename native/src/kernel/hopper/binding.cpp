// JS entry points of the Hopper wgmma kernel: hopperGemm, hopperWorkspaceBytes, hopperStatus.
// The kernel is in the addon only when CMake built it (90 among MARLIN_CUDA_ARCHS): MARLIN_WITH_HOPPER.
#include <napi.h>

#include <string>

#include "common/args.h"
#include "common/device_buffer.h"
#include "common/device_guard.h"
#include "common/errors.h"
#include "common/module.h"
#include "kernel/hopper/gemm.h"
#include "kernel/hopper/quant_args.h"

namespace marlin {
namespace {


#if defined(MARLIN_WITH_CUDA) && defined(MARLIN_WITH_HOPPER)
constexpr bool kBuilt = true;
#else
constexpr bool kBuilt = false;
#endif

int Sms(Napi::Env env, int dev) {
  int sms = 1;
#ifdef MARLIN_WITH_CUDA
  if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
    cudaGetLastError();
    ThrowNoDevice(env, "device " + std::to_string(dev));
  }
#else
  (void)dev;
  ThrowNoDevice(env, "the Hopper kernel");
#endif
  return sms;
}

// hopperStatus(device = 0) -> { built, available, reason?, capability? }: built = the addon holds the
// sm_90a kernel; available = it can run on that device now.
Napi::Value Status(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int dev = static_cast<int>(ArgIntOr(info, 0, "device", 0, 1023, 0));
  Napi::Object o = Napi::Object::New(env);
  o.Set("built", Napi::Boolean::New(env, kBuilt));
  std::string why;
#ifdef MARLIN_WITH_CUDA
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess &&
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) == cudaSuccess) {
    o.Set("capability", Napi::Number::New(env, major * 10 + minor));
  } else {
    cudaGetLastError();
  }
#if defined(MARLIN_WITH_HOPPER)
  why = hopper::DeviceRefusal(dev);
#else
  why = "the addon was built without sm_90a code (MARLIN_CUDA_ARCHS lacks 90)";
#endif
#else
  (void)dev;
  why = kBuiltWithoutCuda;
#endif
  o.Set("available", Napi::Boolean::New(env, why.empty()));
  if (!why.empty()) o.Set("reason", Napi::String::New(env, why));
  return o;
}

// hopperShapeRefusal(n, k, groupSize, weight) -> "" or why the kernel does not take the shape (all builds).
Napi::Value ShapeRefusalJs(const Napi::CallbackInfo& info) {
  const int64_t n = ArgInt(info, 0, "n", 1, kMaxDim);
  const int64_t k = ArgInt(info, 1, "k", 1, kMaxDim);
  const int64_t group = ArgInt(info, 2, "groupSize", -1, kMaxDim);
  const int64_t weight = ArgInt(info, 3, "weight", 0, 2);
  return Napi::String::New(info.Env(), hopper::ShapeRefusal(static_cast<int>(n), static_cast<int>(k), static_cast<int>(group), static_cast<WeightKind>(weight)));
}

// hopperWorkspaceBytes(m, n, k, actOrder, device = 0)
Napi::Value WorkspaceBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t m = ArgInt(info, 0, "m", 1, kMaxDim);
  ArgInt(info, 1, "n", 1, kMaxDim);
  const int64_t k = ArgInt(info, 2, "k", 1, kMaxDim);
  const bool ao = ArgBool(info, 3, "actOrder");
  const int dev = static_cast<int>(ArgIntOr(info, 4, "device", 0, 1023, 0));
  const hopper::WorkspaceLayout l = hopper::HopperWorkspaceLayout(static_cast<int>(m), static_cast<int>(k), Sms(env, dev), ao);
  return Napi::Number::New(env, static_cast<double>(l.total));
}

// hopperGemm(a, aOffset, b, scales, zeros|null, perm|null, bias|null, c, cOffset, workspace,
//            m, n, k, groupSize, act (0 fp16 | 1 bf16), weight (0 u4 | 1 u4 zero points | 2 u8),
//            stream?, tuning? {bm, maxGrid}) — the arguments of marlinGemm.
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#if defined(MARLIN_WITH_CUDA) && defined(MARLIN_WITH_HOPPER)
  QuantCall q = ArgQuantCall(info, hopper::ShapeRefusal);
  GemmArgs& g = q.g;
  const std::string why = hopper::DeviceRefusal(q.device);
  if (!why.empty()) ThrowTyped(env, kErrNoDevice, why);
  DeviceGuard guard(env, q.device);
  const hopper::WorkspaceLayout l = hopper::HopperWorkspaceLayout(g.m, g.k, Sms(env, q.device), g.perm != nullptr);
  g.workspace = DevicePtr(info, 9, "workspace", 0, l.total, 256);
  g.workspace_bytes = DeviceBuffer::From(env, info[9], "workspace")->bytes();
  cudaStream_t stream = ArgStream(info, 16);
  hopper::Tuning t;
  if (info.Length() > 17 && !info[17].IsUndefined() && !info[17].IsNull()) {
    if (!info[17].IsObject()) ThrowTyped(env, kErrInvalidArgument, "tuning must be an object");
    Napi::Object o = info[17].As<Napi::Object>();
    auto num = [&](const char* key) { return o.Has(key) && o.Get(key).IsNumber() ? o.Get(key).As<Napi::Number>().Int32Value() : 0; };
    t.bm = num("bm");
    t.max_grid = num("maxGrid");
    if (t.bm != 0 && t.bm != 64 && t.bm != 128) ThrowTyped(env, kErrInvalidArgument, "tuning.bm must be 64 or 128");
    if (t.max_grid < 0) ThrowTyped(env, kErrInvalidArgument, "tuning.maxGrid must be >= 0");
  }
  const cudaError_t err = hopper::HopperGemm(g, t, stream);
  if (err != cudaSuccess) ThrowCuda(env, err, "hopper kernel launch");
  return env.Undefined();
#else
  (void)kBuilt;
  ThrowNoDevice(env, kBuilt ? "hopperGemm" : "hopperGemm (the addon was built without sm_90a code)");
#endif
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("hopperGemm", Napi::Function::New(env, Gemm, "hopperGemm"));
  exports.Set("hopperStatus", Napi::Function::New(env, Status, "hopperStatus"));
  exports.Set("hopperShapeRefusal", Napi::Function::New(env, ShapeRefusalJs, "hopperShapeRefusal"));
  exports.Set("hopperWorkspaceBytes", Napi::Function::New(env, WorkspaceBytes, "hopperWorkspaceBytes"));
}

}  // namespace
}  // namespace marlin

MARLIN_MODULE(hopper, marlin::Init);
