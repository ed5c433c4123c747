#pragma once
// Makes a buffer's device current for one entry point and restores the caller's device on every
// exit path, thrown JS errors included (they are C++ exceptions here).
#ifdef MARLIN_WITH_CUDA
#include <cuda_runtime.h>
#include <napi.h>

#include "common/errors.h"

namespace marlin {

class DeviceGuard {
 public:
  // Switches only when `dev` is not already current: marlinGemm runs this on every launch.
  DeviceGuard(Napi::Env env, int dev) {
    CUDA_CHECK(env, cudaGetDevice(&prev_));
    if (prev_ != dev) CUDA_CHECK(env, cudaSetDevice(dev));
    switched_ = prev_ != dev;
  }
  ~DeviceGuard() {
    if (switched_) cudaSetDevice(prev_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = 0;
  bool switched_ = false;
};

}  // namespace marlin
#endif
