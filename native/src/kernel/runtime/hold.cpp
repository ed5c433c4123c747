#include "kernel/runtime/hold.h"

#include "common/args.h"
#include "common/errors.h"
#include "common/module.h"
#include "common/device_buffer.h"

namespace marlin {

// holdDevice(microseconds, stream?): queue a kernel that keeps the stream busy that long.
static Napi::Value HoldDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t us = ArgInt(info, 0, "microseconds", 0, 10'000'000);
#ifdef MARLIN_WITH_CUDA
  cudaStream_t s = ArgStream(info, 1);
  if (!s) RequireDevice(env, "holdDevice");  // a Stream exists only where a device does
  CUDA_CHECK(env, LaunchHold(static_cast<unsigned>(us), s));
#else
  (void)us;
  ThrowNoDevice(env, "holdDevice");
#endif
  return env.Undefined();
}

static void InitHold(Napi::Env env, Napi::Object exports) { exports.Set("holdDevice", Napi::Function::New<HoldDevice>(env, "holdDevice")); }
MARLIN_MODULE(hold, InitHold);

}  // namespace marlin
