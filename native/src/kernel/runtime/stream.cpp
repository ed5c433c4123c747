#include "kernel/runtime/stream.h"

#include "common/args.h"
#include "common/device_buffer.h"
#include "common/errors.h"
#include "common/module.h"

namespace marlin {

EnvConstructor Stream::ctor_;
EnvConstructor Event::ctor_;

void Stream::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function fn = DefineClass(env, "Stream",
                                  {InstanceMethod<&Stream::Synchronize>("synchronize"),
                                   InstanceMethod<&Stream::Destroy>("destroy")});
  ctor_.Set(env, fn);
  exports.Set("Stream", fn);
}

bool Stream::Is(Napi::Value v) { return ctor_.IsInstance(v); }

// new Stream(device = 0): a non-blocking stream.
Stream::Stream(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Stream>(info) {
  Napi::Env env = info.Env();
  device_ = static_cast<int>(ArgIntOr(info, 0, "device", 0, 1023, 0));
  RequireDevice(env, "Stream", device_);
#ifdef MARLIN_WITH_CUDA
  CUDA_CHECK(env, cudaSetDevice(device_));
  CUDA_CHECK(env, cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
#endif
}

Stream::~Stream() { Release(); }

void Stream::Release() {
#ifdef MARLIN_WITH_CUDA
  if (stream_ && !destroyed_) {
    cudaStreamDestroy(stream_);
    cudaGetLastError();
  }
  stream_ = nullptr;
#endif
  destroyed_ = true;
}

Napi::Value Stream::Synchronize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (destroyed_) ThrowTyped(env, kErrDisposed, "Stream was used after it was destroyed");
#ifdef MARLIN_WITH_CUDA
  CUDA_CHECK(env, cudaStreamSynchronize(stream_));
#endif
  return env.Undefined();
}

Napi::Value Stream::Destroy(const Napi::CallbackInfo& info) {
  Release();
  return info.Env().Undefined();
}

#ifdef MARLIN_WITH_CUDA
cudaStream_t ArgStream(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || info[i].IsUndefined() || info[i].IsNull()) return nullptr;
  if (!Stream::Is(info[i])) ThrowTyped(info.Env(), kErrInvalidArgument, "stream must be a Stream");
  Stream* s = Stream::Unwrap(info[i].As<Napi::Object>());
  if (s->destroyed()) ThrowTyped(info.Env(), kErrDisposed, "Stream was used after it was destroyed");
  return s->get();
}
#endif

void Event::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function fn = DefineClass(env, "Event",
                                  {InstanceMethod<&Event::Record>("record"),
                                   InstanceMethod<&Event::Synchronize>("synchronize"),
                                   StaticMethod<&Event::Elapsed>("elapsedMs")});
  ctor_.Set(env, fn);
  exports.Set("Event", fn);
}

Event::Event(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Event>(info) {
  Napi::Env env = info.Env();
  RequireDevice(env, "Event");
#ifdef MARLIN_WITH_CUDA
  CUDA_CHECK(env, cudaEventCreate(&event_));
#endif
}

Event::~Event() {
#ifdef MARLIN_WITH_CUDA
  if (event_) cudaEventDestroy(event_);
  cudaGetLastError();
#endif
}

// record(stream?)
Napi::Value Event::Record(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef MARLIN_WITH_CUDA
  CUDA_CHECK(env, cudaEventRecord(event_, ArgStream(info, 0)));
#endif
  return env.Undefined();
}

Napi::Value Event::Synchronize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef MARLIN_WITH_CUDA
  CUDA_CHECK(env, cudaEventSynchronize(event_));
#endif
  return env.Undefined();
}

// Event.elapsedMs(start, end): milliseconds between two recorded events (waits for end).
Napi::Value Event::Elapsed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsObject() || !ctor_.IsInstance(info[0]) ||
      !ctor_.IsInstance(info[1]))
    ThrowTyped(env, kErrInvalidArgument, "elapsedMs(start, end) takes two Events");
  float ms = 0;
#ifdef MARLIN_WITH_CUDA
  Event* a = Unwrap(info[0].As<Napi::Object>());
  Event* b = Unwrap(info[1].As<Napi::Object>());
  CUDA_CHECK(env, cudaEventSynchronize(b->event_));
  CUDA_CHECK(env, cudaEventElapsedTime(&ms, a->event_, b->event_));
#endif
  return Napi::Number::New(env, ms);
}

static void InitStreams(Napi::Env env, Napi::Object exports) {
  Stream::Init(env, exports);
  Event::Init(env, exports);
}
MARLIN_MODULE(stream, InitStreams);

}  // namespace marlin
