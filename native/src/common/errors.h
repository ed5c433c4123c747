#pragma once
// JS errors thrown from C++ carry a stable `code` (matching @marlin/core's error classes) so the
// TypeScript layer can rethrow them as typed errors.
#include <napi.h>

#include <string>
#ifdef MARLIN_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace marlin {

constexpr const char* kErrInvalidArgument = "ERR_MARLIN_INVALID_ARGUMENT";
constexpr const char* kErrShape = "ERR_MARLIN_SHAPE";
constexpr const char* kErrDType = "ERR_MARLIN_DTYPE";
constexpr const char* kErrAlignment = "ERR_MARLIN_ALIGNMENT";
constexpr const char* kErrNoDevice = "ERR_MARLIN_NO_DEVICE";
constexpr const char* kErrCuda = "ERR_MARLIN_CUDA";
constexpr const char* kErrDisposed = "ERR_MARLIN_DISPOSED";

[[noreturn]] void ThrowTyped(Napi::Env env, const char* code, const std::string& message);

// Throws ERR_MARLIN_NO_DEVICE: used by every GPU entry point of a CPU-only build or machine.
[[noreturn]] void ThrowNoDevice(Napi::Env env, const std::string& what);

// Throws ERR_MARLIN_NO_DEVICE unless CUDA device `index` exists (always throws in a CPU-only build).
void RequireDevice(Napi::Env env, const std::string& what, int index = 0);

// The status() answer for libraries loaded at run time: { available, reason? }, reason only when
// unavailable (a CPU-only build answers kBuiltWithoutCuda).
Napi::Object LibraryStatus(Napi::Env env, bool available, const std::string& reason);
constexpr const char* kBuiltWithoutCuda = "the addon was built without CUDA";

#ifdef MARLIN_WITH_CUDA
// Throws ERR_MARLIN_CUDA with `cudaError` set to the runtime's name for `err`.
[[noreturn]] void ThrowCuda(Napi::Env env, cudaError_t err, const char* what);
#endif

}  // namespace marlin

#ifdef MARLIN_WITH_CUDA
#define CUDA_CHECK(env, expr)                                      \
  do {                                                             \
    cudaError_t marlin_err_ = (expr);                              \
    if (marlin_err_ != cudaSuccess) ::marlin::ThrowCuda(env, marlin_err_, #expr); \
  } while (0)
// After a launch: reports launch-configuration errors (not asynchronous faults).
#define CUDA_CHECK_LAUNCH(env, what) CUDA_CHECK(env, cudaGetLastError())
#endif
