// Device discovery. On a machine without a GPU (or driver) it reports zero devices and the
// reason, never an error.
#include <string>

#include "common/args.h"
#include "common/errors.h"
#include "common/module.h"
#ifdef MARLIN_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace marlin {

// cudaStatus() -> { builtWithCuda, deviceCount, error?: cudaErrorName, runtimeVersion, driverVersion }
static Napi::Value CudaStatus(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
#ifdef MARLIN_WITH_CUDA
  out.Set("builtWithCuda", true);
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    count = 0;
    out.Set("error", cudaGetErrorName(err));
    out.Set("message", cudaGetErrorString(err));
  }
  out.Set("deviceCount", count);
  int rt = 0, drv = 0;
  cudaRuntimeGetVersion(&rt);
  cudaDriverGetVersion(&drv);
  cudaGetLastError();
  out.Set("runtimeVersion", rt);
  out.Set("driverVersion", drv);
#else
  out.Set("builtWithCuda", false);
  out.Set("deviceCount", 0);
  out.Set("message", "the addon was built without CUDA");
#endif
  return out;
}

#ifdef MARLIN_WITH_CUDA
static int Attr(Napi::Env env, cudaDeviceAttr a, int dev) {
  int v = 0;
  CUDA_CHECK(env, cudaDeviceGetAttribute(&v, a, dev));
  return v;
}
#endif

// deviceInfo(index) -> { index, name, major, minor, smCount, totalMemory, l2CacheSize,
//   sharedMemPerBlockOptin, sharedMemPerSm, memoryBusWidth }
static Napi::Value DeviceInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t idx = ArgInt(info, 0, "index", 0, 1023);
#ifdef MARLIN_WITH_CUDA
  RequireDevice(env, "deviceInfo", static_cast<int>(idx));
  int d = static_cast<int>(idx);
  cudaDeviceProp p;
  CUDA_CHECK(env, cudaGetDeviceProperties(&p, d));
  Napi::Object o = Napi::Object::New(env);
  o.Set("index", d);
  o.Set("name", std::string(p.name));
  o.Set("major", p.major);
  o.Set("minor", p.minor);
  o.Set("smCount", Attr(env, cudaDevAttrMultiProcessorCount, d));
  o.Set("totalMemory", static_cast<double>(p.totalGlobalMem));
  o.Set("l2CacheSize", Attr(env, cudaDevAttrL2CacheSize, d));
  o.Set("sharedMemPerBlockOptin", Attr(env, cudaDevAttrMaxSharedMemoryPerBlockOptin, d));
  o.Set("sharedMemPerSm", Attr(env, cudaDevAttrMaxSharedMemoryPerMultiprocessor, d));
  o.Set("memoryBusWidth", Attr(env, cudaDevAttrGlobalMemoryBusWidth, d));
  return o;
#else
  (void)idx;
  ThrowNoDevice(env, "deviceInfo");
#endif
}

// memInfo(device = 0) -> { free, total } in bytes
static Napi::Value MemInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t idx = ArgIntOr(info, 0, "device", 0, 1023, 0);
#ifdef MARLIN_WITH_CUDA
  RequireDevice(env, "memInfo", static_cast<int>(idx));
  size_t fr = 0, total = 0;
  CUDA_CHECK(env, cudaSetDevice(static_cast<int>(idx)));
  CUDA_CHECK(env, cudaMemGetInfo(&fr, &total));
  Napi::Object o = Napi::Object::New(env);
  o.Set("free", static_cast<double>(fr));
  o.Set("total", static_cast<double>(total));
  return o;
#else
  (void)idx;
  ThrowNoDevice(env, "memInfo");
#endif
}

// synchronize(device = 0): waits for all work on the device; surfaces asynchronous faults.
static Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t idx = ArgIntOr(info, 0, "device", 0, 1023, 0);
  RequireDevice(env, "synchronize", static_cast<int>(idx));
#ifdef MARLIN_WITH_CUDA
  CUDA_CHECK(env, cudaSetDevice(static_cast<int>(idx)));
  CUDA_CHECK(env, cudaDeviceSynchronize());
#else
  (void)idx;
  ThrowNoDevice(env, "synchronize");
#endif
  return env.Undefined();
}

static void InitDevices(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaStatus", Napi::Function::New<CudaStatus>(env, "cudaStatus"));
  exports.Set("deviceInfo", Napi::Function::New<DeviceInfo>(env, "deviceInfo"));
  exports.Set("memInfo", Napi::Function::New<MemInfo>(env, "memInfo"));
  exports.Set("synchronize", Napi::Function::New<Synchronize>(env, "synchronize"));
}
MARLIN_MODULE(devices, InitDevices);

}  // namespace marlin
