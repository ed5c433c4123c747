#include "engine/parallel/nccl_loader.h"

#ifdef MARLIN_WITH_CUDA
#include "common/dynlib.h"

namespace marlin {
namespace nccl {

const Api* Load(std::string* why) {
  static const LazyLibrary<Api> lib(
      {"libnccl.so.2", "libnccl.so", "/usr/lib/x86_64-linux-gnu/libnccl.so.2", "/usr/local/cuda/lib64/libnccl.so.2"}, "libnccl",
      "libnccl lacks ncclGetUniqueId / ncclCommInitRank / ncclAllReduce / ncclAllGather", [](void* so, Api& api) {
        BindSymbols(so, api.get_version, "ncclGetVersion", api.get_unique_id, "ncclGetUniqueId", api.comm_init_rank, "ncclCommInitRank",
                    api.comm_init_all, "ncclCommInitAll", api.comm_destroy, "ncclCommDestroy", api.get_error_string, "ncclGetErrorString",
                    api.all_reduce, "ncclAllReduce", api.all_gather, "ncclAllGather");
        return api.get_version && api.get_unique_id && api.comm_init_rank && api.comm_destroy && api.all_reduce && api.all_gather;
      });
  return lib.Get(why);
}

std::string Describe(const Api* api, const char* what, int status) {
  const char* s = api && api->get_error_string ? api->get_error_string(status) : nullptr;
  return std::string(what) + " failed: " + (s ? s : "unknown error") + " (" + std::to_string(status) + ")";
}

}  // namespace nccl
}  // namespace marlin
#endif
