#include "common/errors.h"

namespace marlin {

void ThrowTyped(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  throw err;
}

void ThrowNoDevice(Napi::Env env, const std::string& what) {
#ifdef MARLIN_WITH_CUDA
  ThrowTyped(env, kErrNoDevice, what + ": no CUDA device is available on this machine");
#else
  ThrowTyped(env, kErrNoDevice, what + ": this build of the addon has no CUDA support");
#endif
}

void RequireDevice(Napi::Env env, const std::string& what, int index) {
#ifdef MARLIN_WITH_CUDA
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    cudaGetLastError();
    ThrowNoDevice(env, what);
  }
  if (index < 0 || index >= count)
    ThrowTyped(env, kErrInvalidArgument, what + ": device " + std::to_string(index) + " does not exist (" + std::to_string(count) + " devices)");
#else
  (void)index;
  ThrowNoDevice(env, what);
#endif
}

Napi::Object LibraryStatus(Napi::Env env, bool available, const std::string& reason) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("available", available);
  if (!available) o.Set("reason", reason);
  return o;
}

#ifdef MARLIN_WITH_CUDA
void ThrowCuda(Napi::Env env, cudaError_t err, const char* what) {
  std::string name = cudaGetErrorName(err);
  Napi::Error e = Napi::Error::New(env, name + " (" + cudaGetErrorString(err) + ") in " + what);
  e.Set("code", Napi::String::New(env, kErrCuda));
  e.Set("cudaError", Napi::String::New(env, name));
  throw e;
}
#endif

}  // namespace marlin
