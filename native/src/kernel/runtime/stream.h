#pragma once
// CUDA streams and events owned by JS objects (classes Stream and Event in JS).
#include <napi.h>
#include "common/env_ctor.h"
#ifdef MARLIN_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace marlin {

class Stream : public Napi::ObjectWrap<Stream> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  static bool Is(Napi::Value v);
  explicit Stream(const Napi::CallbackInfo& info);
  ~Stream() override;
#ifdef MARLIN_WITH_CUDA
  cudaStream_t get() const { return stream_; }
#endif
  bool destroyed() const { return destroyed_; }

 private:
  Napi::Value Synchronize(const Napi::CallbackInfo& info);
  Napi::Value Destroy(const Napi::CallbackInfo& info);
  void Release();
#ifdef MARLIN_WITH_CUDA
  cudaStream_t stream_ = nullptr;
#endif
  int device_ = 0;
  bool destroyed_ = false;
  static EnvConstructor ctor_;
};

class Event : public Napi::ObjectWrap<Event> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit Event(const Napi::CallbackInfo& info);
  ~Event() override;

 private:
  Napi::Value Record(const Napi::CallbackInfo& info);
  Napi::Value Synchronize(const Napi::CallbackInfo& info);
  static Napi::Value Elapsed(const Napi::CallbackInfo& info);
#ifdef MARLIN_WITH_CUDA
  cudaEvent_t event_ = nullptr;
#endif
  static EnvConstructor ctor_;
};

}  // namespace marlin
