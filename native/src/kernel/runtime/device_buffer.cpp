#include "common/device_buffer.h"

#include <string>

#include "common/args.h"
#include "common/errors.h"
#include "common/module.h"
#include "kernel/runtime/stream.h"

namespace marlin {

EnvConstructor DeviceBuffer::ctor_;

void DeviceBuffer::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function fn = DefineClass(
      env, "DeviceBuffer",
      {
          InstanceMethod<&DeviceBuffer::Free>("free"),
          InstanceMethod<&DeviceBuffer::Upload>("upload"),
          InstanceMethod<&DeviceBuffer::Download>("download"),
          InstanceMethod<&DeviceBuffer::CopyFrom>("copyFrom"),
          InstanceMethod<&DeviceBuffer::Fill>("fillBytes"),
          InstanceAccessor<&DeviceBuffer::GetByteLength>("byteLength"),
          InstanceAccessor<&DeviceBuffer::GetDevice>("device"),
          InstanceAccessor<&DeviceBuffer::GetFreed>("freed"),
          InstanceAccessor<&DeviceBuffer::GetAddress>("address"),
      });
  ctor_.Set(env, fn);
  exports.Set("DeviceBuffer", fn);
}

// new DeviceBuffer(byteLength, device = 0)
DeviceBuffer::DeviceBuffer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DeviceBuffer>(info) {
  Napi::Env env = info.Env();
  int64_t bytes = ArgInt(info, 0, "byteLength", 1, kMaxBytes);
  int64_t device = ArgIntOr(info, 1, "device", 0, 1023, 0);
#ifdef MARLIN_WITH_CUDA
  RequireDevice(env, "DeviceBuffer", static_cast<int>(device));
  CUDA_CHECK(env, cudaSetDevice(static_cast<int>(device)));
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, static_cast<size_t>(bytes));
  if (err != cudaSuccess) {
    cudaGetLastError();  // out-of-memory is not sticky; clear it so later calls work
    ThrowCuda(env, err, ("cudaMalloc(" + std::to_string(bytes) + " bytes)").c_str());
  }
  ptr_ = p;
  bytes_ = static_cast<size_t>(bytes);
  device_ = static_cast<int>(device);
#else
  (void)bytes;
  (void)device;
  ThrowNoDevice(env, "DeviceBuffer");
#endif
}

DeviceBuffer::~DeviceBuffer() { Release(); }

void DeviceBuffer::Release() {
#ifdef MARLIN_WITH_CUDA
  if (ptr_ && !freed_) {
    int prev = 0;
    cudaGetDevice(&prev);
    cudaSetDevice(device_);
    cudaFree(ptr_);  // errors ignored: may run at exit after the context is gone
    cudaSetDevice(prev);
    cudaGetLastError();
  }
#endif
  ptr_ = nullptr;
  freed_ = true;
}

bool DeviceBuffer::Is(Napi::Value v) {
  return ctor_.IsInstance(v);
}

DeviceBuffer* DeviceBuffer::From(Napi::Env env, Napi::Value v, const char* name) {
  if (!Is(v)) ThrowTyped(env, kErrInvalidArgument, std::string(name) + " must be a DeviceBuffer");
  DeviceBuffer* b = Unwrap(v.As<Napi::Object>());
  if (b->freed_) ThrowTyped(env, kErrDisposed, std::string(name) + ": DeviceBuffer was used after it was freed");
  return b;
}

void* DevicePtr(const Napi::CallbackInfo& info, size_t i, const char* name, size_t byte_offset, size_t need_bytes,
                size_t align) {
  Napi::Env env = info.Env();
  if (i >= info.Length()) ThrowTyped(env, kErrInvalidArgument, std::string(name) + " is missing");
  DeviceBuffer* b = DeviceBuffer::From(env, info[i], name);
  if (byte_offset > b->bytes() || need_bytes > b->bytes() - byte_offset)
    ThrowTyped(env, kErrShape,
               std::string(name) + ": needs " + std::to_string(need_bytes) + " bytes at offset " + std::to_string(byte_offset) +
                   ", buffer holds " + std::to_string(b->bytes()));
  char* p = static_cast<char*>(b->data()) + byte_offset;
  if (align > 1 && reinterpret_cast<uintptr_t>(p) % align != 0)
    ThrowTyped(env, kErrAlignment, std::string(name) + ": offset " + std::to_string(byte_offset) + " is not " + std::to_string(align) + "-byte aligned");
  return p;
}

Napi::Value DeviceBuffer::Free(const Napi::CallbackInfo& info) {
  Release();
  return info.Env().Undefined();
}

// upload(src: TypedArray | ArrayBuffer, dstByteOffset = 0): synchronous host -> device copy.
Napi::Value DeviceBuffer::Upload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (freed_) ThrowTyped(env, kErrDisposed, "upload: DeviceBuffer was used after it was freed");
  HostView h = ArgHost(info, 0, "src");
  int64_t off = ArgIntOr(info, 1, "dstByteOffset", 0, static_cast<int64_t>(bytes_), 0);
  if (h.bytes > bytes_ - static_cast<size_t>(off))
    ThrowTyped(env, kErrShape, "upload: " + std::to_string(h.bytes) + " bytes at offset " + std::to_string(off) + " overrun a buffer of " + std::to_string(bytes_));
#ifdef MARLIN_WITH_CUDA
  CUDA_CHECK(env, cudaSetDevice(device_));
  if (h.bytes) CUDA_CHECK(env, cudaMemcpy(static_cast<char*>(ptr_) + off, h.data, h.bytes, cudaMemcpyHostToDevice));
#endif
  return env.Undefined();
}

// download(dst: TypedArray | ArrayBuffer, srcByteOffset = 0): synchronous device -> host copy
// (waits for work already queued on the device).
Napi::Value DeviceBuffer::Download(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (freed_) ThrowTyped(env, kErrDisposed, "download: DeviceBuffer was used after it was freed");
  HostView h = ArgHost(info, 0, "dst");
  int64_t off = ArgIntOr(info, 1, "srcByteOffset", 0, static_cast<int64_t>(bytes_), 0);
  if (h.bytes > bytes_ - static_cast<size_t>(off))
    ThrowTyped(env, kErrShape, "download: " + std::to_string(h.bytes) + " bytes at offset " + std::to_string(off) + " overrun a buffer of " + std::to_string(bytes_));
#ifdef MARLIN_WITH_CUDA
  CUDA_CHECK(env, cudaSetDevice(device_));
  if (h.bytes) CUDA_CHECK(env, cudaMemcpy(h.data, static_cast<char*>(ptr_) + off, h.bytes, cudaMemcpyDeviceToHost));
#endif
  return info[0];
}

// copyFrom(src: DeviceBuffer, srcByteOffset, dstByteOffset, byteLength, stream?): device -> device, async.
Napi::Value DeviceBuffer::CopyFrom(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (freed_) ThrowTyped(env, kErrDisposed, "copyFrom: DeviceBuffer was used after it was freed");
  int64_t src_off = ArgByteOffset(info, 1, "srcByteOffset");
  int64_t dst_off = ArgInt(info, 2, "dstByteOffset", 0, static_cast<int64_t>(bytes_));
  int64_t n = ArgInt(info, 3, "byteLength", 0, kMaxBytes);
  void* src = DevicePtr(info, 0, "src", static_cast<size_t>(src_off), static_cast<size_t>(n), 1);
  if (static_cast<size_t>(n) > bytes_ - static_cast<size_t>(dst_off))
    ThrowTyped(env, kErrShape, "copyFrom: " + std::to_string(n) + " bytes at offset " + std::to_string(dst_off) + " overrun a buffer of " + std::to_string(bytes_));
#ifdef MARLIN_WITH_CUDA
  cudaStream_t s = ArgStream(info, 4);
  CUDA_CHECK(env, cudaSetDevice(device_));
  if (n) CUDA_CHECK(env, cudaMemcpyAsync(static_cast<char*>(ptr_) + dst_off, src, static_cast<size_t>(n), cudaMemcpyDeviceToDevice, s));
#else
  (void)src;
#endif
  return env.Undefined();
}

// fillBytes(value 0..255, byteOffset = 0, byteLength = rest, stream?): memset, async. Used to poison outputs.
Napi::Value DeviceBuffer::Fill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (freed_) ThrowTyped(env, kErrDisposed, "fillBytes: DeviceBuffer was used after it was freed");
  int64_t value = ArgInt(info, 0, "value", 0, 255);
  int64_t off = ArgIntOr(info, 1, "byteOffset", 0, static_cast<int64_t>(bytes_), 0);
  int64_t n = ArgIntOr(info, 2, "byteLength", 0, static_cast<int64_t>(bytes_ - off), static_cast<int64_t>(bytes_ - off));
#ifdef MARLIN_WITH_CUDA
  cudaStream_t s = ArgStream(info, 3);
  CUDA_CHECK(env, cudaSetDevice(device_));
  if (n) CUDA_CHECK(env, cudaMemsetAsync(static_cast<char*>(ptr_) + off, static_cast<int>(value), static_cast<size_t>(n), s));
#else
  (void)value;
  (void)n;
#endif
  return env.Undefined();
}

Napi::Value DeviceBuffer::GetByteLength(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(bytes_)); }
Napi::Value DeviceBuffer::GetDevice(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), device_); }
Napi::Value DeviceBuffer::GetFreed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), freed_); }
Napi::Value DeviceBuffer::GetAddress(const Napi::CallbackInfo& info) {
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(reinterpret_cast<uintptr_t>(ptr_)));
}

int DeviceOf(const Napi::CallbackInfo& info, size_t i, const char* name) { return DeviceBuffer::From(info.Env(), info[i], name)->device(); }

void RequireSameDevice(const Napi::CallbackInfo& info, int dev, std::initializer_list<std::pair<size_t, const char*>> args) {
  for (const auto& [i, name] : args) {
    if (IsAbsent(info, i)) continue;
    const int d = DeviceOf(info, i, name);
    if (d != dev) ThrowTyped(info.Env(), kErrInvalidArgument, std::string(name) + " is on device " + std::to_string(d) + ", a is on device " + std::to_string(dev));
  }
}

#ifdef MARLIN_WITH_CUDA
int SmCount(Napi::Env env, int dev) {
  static int cache[64] = {0};
  int& sms = cache[dev & 63];
  if (sms == 0) CUDA_CHECK(env, cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  return sms;
}
#endif

static void InitBuffer(Napi::Env env, Napi::Object exports) { DeviceBuffer::Init(env, exports); }
MARLIN_MODULE(buffer, InitBuffer);

}  // namespace marlin
