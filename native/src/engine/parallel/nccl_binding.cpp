// NCCL for tensor parallelism, one rank per GPU (packages/engine/src/parallel/nccl-communicator.ts).
// Communicators are plain addresses (BigInt) so the rank threads can share what rank 0 made:
//   ncclStatus() -> { available, reason?, version? }
//   ncclUniqueId() -> Uint8Array(128)              (rank 0 makes it, every rank joins with it)
//   ncclInitRank(id, nranks, rank, device) -> bigint (blocks until every rank joined)
//   ncclInitAll(devices[]) -> bigint[]              (one thread, one communicator per device)
//   ncclAllReduceSum(comm, buf, byteOffset, count, dtype, stream?)    in place
//   ncclAllGather(comm, send, sendOffset, recv, recvOffset, count, dtype, stream?)
//   ncclDestroy(comm)
// dtype: 0 fp16, 1 bf16, 2 fp32. Collectives are queued on the stream (graph-capturable).
#include <napi.h>

#include <cstring>
#include <string>
#include <vector>

#include "common/args.h"
#include "common/device_buffer.h"
#include "common/device_guard.h"
#include "common/errors.h"
#include "common/module.h"
#include "engine/parallel/nccl_loader.h"

namespace marlin {
namespace {

#ifdef MARLIN_WITH_CUDA
const nccl::Api* Require(Napi::Env env) {
  std::string why;
  const nccl::Api* api = nccl::Load(&why);
  if (!api) ThrowTyped(env, kErrNoDevice, "NCCL is not available: " + why);
  return api;
}

nccl::Comm ArgComm(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsBigInt()) ThrowTyped(info.Env(), kErrInvalidArgument, "comm must be a bigint from ncclInitRank / ncclInitAll");
  bool lossless = false;
  const uint64_t v = info[i].As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless || v == 0) ThrowTyped(info.Env(), kErrInvalidArgument, "comm is not a communicator address");
  return reinterpret_cast<nccl::Comm>(static_cast<uintptr_t>(v));
}

int NcclType(Napi::Env env, int64_t dtype) {
  switch (dtype) {
    case 0: return nccl::kFloat16;
    case 1: return nccl::kBfloat16;
    case 2: return nccl::kFloat32;
    default: ThrowTyped(env, kErrInvalidArgument, "dtype must be 0 (fp16), 1 (bf16) or 2 (fp32)");
  }
}

void Check(Napi::Env env, const nccl::Api* api, const char* what, int st) {
  if (st != 0) ThrowTyped(env, kErrCuda, nccl::Describe(api, what, st));
}

// A communicator as JS holds it: its address.
Napi::BigInt CommValue(Napi::Env env, nccl::Comm comm) {
  return Napi::BigInt::New(env, static_cast<uint64_t>(reinterpret_cast<uintptr_t>(comm)));
}

// What every collective takes: the communicator (argument 0), then `count` and `dtype` at
// arguments `count_i` and `count_i + 1`; the stream and the buffers are the caller's.
struct Collective {
  const nccl::Api* api;
  nccl::Comm comm;
  size_t count;
  int type;     // NCCL's data type
  size_t elem;  // bytes per element
};
Collective ArgCollective(const Napi::CallbackInfo& info, size_t count_i) {
  Napi::Env env = info.Env();
  const nccl::Api* api = Require(env);
  nccl::Comm comm = ArgComm(info, 0);
  const int64_t count = ArgInt(info, count_i, "count", 0, int64_t{1} << 40);
  const int64_t dtype = ArgInt(info, count_i + 1, "dtype", 0, 2);
  return {api, comm, size_t(count), NcclType(env, dtype), size_t(dtype == 2 ? 4 : 2)};
}
#endif

Napi::Value Status(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef MARLIN_WITH_CUDA
  std::string why;
  const nccl::Api* api = nccl::Load(&why);
  Napi::Object out = LibraryStatus(env, api != nullptr, why);
  int version = 0;
  if (api && api->get_version(&version) == 0) out.Set("version", Napi::Number::New(env, version));
  return out;
#else
  return LibraryStatus(env, false, kBuiltWithoutCuda);
#endif
}

Napi::Value UniqueIdValue(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef MARLIN_WITH_CUDA
  const nccl::Api* api = Require(env);
  nccl::UniqueId id{};
  Check(env, api, "ncclGetUniqueId", api->get_unique_id(&id));
  Napi::Uint8Array out = Napi::Uint8Array::New(env, nccl::kUniqueIdBytes);
  std::memcpy(out.Data(), id.internal, nccl::kUniqueIdBytes);
  return out;
#else
  ThrowNoDevice(env, "ncclUniqueId");
#endif
}

Napi::Value InitRank(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef MARLIN_WITH_CUDA
  const nccl::Api* api = Require(env);
  HostView id = ArgTyped(info, 0, "id", napi_uint8_array, nccl::kUniqueIdBytes);
  const int nranks = static_cast<int>(ArgInt(info, 1, "nranks", 1, 1024));
  const int rank = static_cast<int>(ArgInt(info, 2, "rank", 0, nranks - 1));
  const int dev = static_cast<int>(ArgInt(info, 3, "device", 0, 1023));
  RequireDevice(env, "ncclInitRank", dev);
  nccl::UniqueId uid{};
  std::memcpy(uid.internal, id.data, nccl::kUniqueIdBytes);
  DeviceGuard guard(env, dev);  // the communicator belongs to the current device
  nccl::Comm comm = nullptr;
  Check(env, api, "ncclCommInitRank", api->comm_init_rank(&comm, nranks, uid, rank));
  return CommValue(env, comm);
#else
  ThrowNoDevice(env, "ncclInitRank");
#endif
}

Napi::Value InitAll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef MARLIN_WITH_CUDA
  const nccl::Api* api = Require(env);
  if (!api->comm_init_all) ThrowTyped(env, kErrNoDevice, "libnccl lacks ncclCommInitAll");
  if (info.Length() < 1 || !info[0].IsArray()) ThrowTyped(env, kErrInvalidArgument, "devices must be an array of device indices");
  Napi::Array arr = info[0].As<Napi::Array>();
  std::vector<int> devs(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    if (!v.IsNumber()) ThrowTyped(env, kErrInvalidArgument, "devices must be an array of device indices");
    devs[i] = v.As<Napi::Number>().Int32Value();
    RequireDevice(env, "ncclInitAll", devs[i]);
  }
  if (devs.empty()) ThrowTyped(env, kErrInvalidArgument, "ncclInitAll needs at least one device");
  std::vector<nccl::Comm> comms(devs.size(), nullptr);
  Check(env, api, "ncclCommInitAll", api->comm_init_all(comms.data(), static_cast<int>(devs.size()), devs.data()));
  Napi::Array out = Napi::Array::New(env, comms.size());
  for (size_t i = 0; i < comms.size(); i++) out.Set(static_cast<uint32_t>(i), CommValue(env, comms[i]));
  return out;
#else
  ThrowNoDevice(env, "ncclInitAll");
#endif
}

Napi::Value AllReduceSum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef MARLIN_WITH_CUDA
  const Collective c = ArgCollective(info, 3);
  void* buf = DevicePtr(info, 1, "buf", ArgByteOffset(info, 2, "byteOffset"), c.count * c.elem, 2);
  cudaStream_t stream = ArgStream(info, 5);
  DeviceGuard guard(env, DeviceOf(info, 1, "buf"));
  Check(env, c.api, "ncclAllReduce", c.api->all_reduce(buf, buf, c.count, c.type, nccl::kSum, c.comm, stream));
  return env.Undefined();
#else
  ThrowNoDevice(env, "ncclAllReduceSum");
#endif
}

Napi::Value AllGather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef MARLIN_WITH_CUDA
  const Collective c = ArgCollective(info, 5);
  const int64_t nranks = ArgIntOr(info, 8, "nranks", 1, 1024, 1);
  const void* send = DevicePtr(info, 1, "send", ArgByteOffset(info, 2, "sendOffset"), c.count * c.elem, 2);
  void* recv = DevicePtr(info, 3, "recv", ArgByteOffset(info, 4, "recvOffset"), c.count * c.elem * size_t(nranks), 2);
  cudaStream_t stream = ArgStream(info, 7);
  const int send_dev = DeviceOf(info, 1, "send"), recv_dev = DeviceOf(info, 3, "recv");
  if (send_dev != recv_dev)  // NCCL would read or write the other device's memory as its own
    ThrowTyped(env, kErrInvalidArgument,
               "ncclAllGather: recv is on device " + std::to_string(recv_dev) + ", send on device " + std::to_string(send_dev) + "; both must be on the communicator's device");
  DeviceGuard guard(env, send_dev);
  Check(env, c.api, "ncclAllGather", c.api->all_gather(send, recv, c.count, c.type, c.comm, stream));
  return env.Undefined();
#else
  ThrowNoDevice(env, "ncclAllGather");
#endif
}

Napi::Value Destroy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef MARLIN_WITH_CUDA
  const nccl::Api* api = Require(env);
  Check(env, api, "ncclCommDestroy", api->comm_destroy(ArgComm(info, 0)));
  return env.Undefined();
#else
  ThrowNoDevice(env, "ncclDestroy");
#endif
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("ncclStatus", Napi::Function::New(env, Status, "ncclStatus"));
  exports.Set("ncclUniqueId", Napi::Function::New(env, UniqueIdValue, "ncclUniqueId"));
  exports.Set("ncclInitRank", Napi::Function::New(env, InitRank, "ncclInitRank"));
  exports.Set("ncclInitAll", Napi::Function::New(env, InitAll, "ncclInitAll"));
  exports.Set("ncclAllReduceSum", Napi::Function::New(env, AllReduceSum, "ncclAllReduceSum"));
  exports.Set("ncclAllGather", Napi::Function::New(env, AllGather, "ncclAllGather"));
  exports.Set("ncclDestroy", Napi::Function::New(env, Destroy, "ncclDestroy"));
}

}  // namespace
}  // namespace marlin

MARLIN_MODULE(nccl, marlin::Init);
