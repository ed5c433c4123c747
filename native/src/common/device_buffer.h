#pragma once
// Device memory owned by a JS object (class DeviceBuffer in JS). Freed by free() or when the
// object is garbage-collected. Native entry points take (buffer, byteOffset) pairs and check the
// range with DevicePtr before any launch.
#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <utility>

#include "common/env_ctor.h"

#ifdef MARLIN_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace marlin {

class DeviceBuffer : public Napi::ObjectWrap<DeviceBuffer> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit DeviceBuffer(const Napi::CallbackInfo& info);
  ~DeviceBuffer() override;

  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  int device() const { return device_; }

  // The DeviceBuffer behind a JS value; throws a typed error if it is not one or was freed.
  static DeviceBuffer* From(Napi::Env env, Napi::Value v, const char* name);
  static bool Is(Napi::Value v);

 private:
  void Release();
  Napi::Value Free(const Napi::CallbackInfo& info);
  Napi::Value Upload(const Napi::CallbackInfo& info);
  Napi::Value Download(const Napi::CallbackInfo& info);
  Napi::Value CopyFrom(const Napi::CallbackInfo& info);
  Napi::Value Fill(const Napi::CallbackInfo& info);
  Napi::Value GetByteLength(const Napi::CallbackInfo& info);
  Napi::Value GetDevice(const Napi::CallbackInfo& info);
  Napi::Value GetFreed(const Napi::CallbackInfo& info);
  Napi::Value GetAddress(const Napi::CallbackInfo& info);

  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  int device_ = 0;
  bool freed_ = false;
  static EnvConstructor ctor_;
};

// A pointer `byte_offset` bytes into buffer argument i, checked to hold `need_bytes` from there and
// aligned to `align` bytes.
void* DevicePtr(const Napi::CallbackInfo& info, size_t i, const char* name, size_t byte_offset, size_t need_bytes,
                size_t align = 16);

// The device of buffer argument i.
int DeviceOf(const Napi::CallbackInfo& info, size_t i, const char* name);
// Every buffer argument given (index, name) that is present lives on `dev` (that of argument "a"),
// else ERR_MARLIN_INVALID_ARGUMENT "<name> is on device d, a is on device dev".
void RequireSameDevice(const Napi::CallbackInfo& info, int dev, std::initializer_list<std::pair<size_t, const char*>> args);

#ifdef MARLIN_WITH_CUDA
// The stream of an optional Stream argument (undefined / null -> the legacy default stream).
cudaStream_t ArgStream(const Napi::CallbackInfo& info, size_t i);
// Streaming multiprocessors of device `dev`, asked once per device (CUDA errors become JS errors).
int SmCount(Napi::Env env, int dev);
#endif

}  // namespace marlin
