#include "kernel/runtime/pattern.h"

#include "common/args.h"
#include "common/device_buffer.h"
#include "common/errors.h"
#include "common/module.h"

namespace marlin {

// writePattern(buffer, byteOffset, count, seed, stream?): GPU kernel writing out[i] = pattern(i, seed).
static Napi::Value WritePattern(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t off = ArgByteOffset(info, 1, "byteOffset");
  int64_t count = ArgInt(info, 2, "count", 0, int64_t{1} << 44);
  uint32_t seed = static_cast<uint32_t>(ArgInt(info, 3, "seed", 0, 0xffffffffll));
  void* p = DevicePtr(info, 0, "buffer", static_cast<size_t>(off), static_cast<size_t>(count) * 4, 4);
#ifdef MARLIN_WITH_CUDA
  cudaStream_t s = ArgStream(info, 4);
  CUDA_CHECK(env, LaunchPattern(static_cast<uint32_t*>(p), static_cast<size_t>(count), seed, s));
#else
  (void)p;
  (void)seed;
  ThrowNoDevice(env, "writePattern");
#endif
  return env.Undefined();
}

// patternHost(out: Uint32Array, seed): the same function on the CPU.
static Napi::Value PatternHost(const Napi::CallbackInfo& info) {
  HostView h = ArgTyped(info, 0, "out", napi_uint32_array, 0);
  uint32_t seed = static_cast<uint32_t>(ArgInt(info, 1, "seed", 0, 0xffffffffll));
  auto* out = static_cast<uint32_t*>(h.data);
  for (size_t i = 0; i < h.elements; i++) out[i] = PatternValue(i, seed);
  return info[0];
}

static void InitPattern(Napi::Env env, Napi::Object exports) {
  exports.Set("writePattern", Napi::Function::New<WritePattern>(env, "writePattern"));
  exports.Set("patternHost", Napi::Function::New<PatternHost>(env, "patternHost"));
}
MARLIN_MODULE(pattern, InitPattern);

}  // namespace marlin
