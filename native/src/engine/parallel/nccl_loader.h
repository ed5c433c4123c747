#pragma once
// NCCL loaded at run time with dlopen (libnccl.so.2), like cuBLAS: the build machine has no NCCL
// headers, so the few entry points tensor parallelism uses are declared here with the types of
// nccl.h (its ABI has been stable across 2.x). A machine without NCCL gets an error string.
#include <cstddef>
#include <string>

#ifdef MARLIN_WITH_CUDA
#include <cuda_runtime.h>

namespace marlin {
namespace nccl {

using Comm = void*;  // ncclComm_t
constexpr int kUniqueIdBytes = 128;
struct UniqueId {
  char internal[kUniqueIdBytes];
};
// ncclDataType_t and ncclRedOp_t values from nccl.h
constexpr int kFloat16 = 6, kFloat32 = 7, kBfloat16 = 9;
constexpr int kSum = 0;

struct Api {
  int (*get_version)(int*) = nullptr;
  int (*get_unique_id)(UniqueId*) = nullptr;
  int (*comm_init_rank)(Comm*, int nranks, UniqueId id, int rank) = nullptr;
  int (*comm_init_all)(Comm*, int ndev, const int* devlist) = nullptr;
  int (*comm_destroy)(Comm) = nullptr;
  const char* (*get_error_string)(int) = nullptr;
  int (*all_reduce)(const void* send, void* recv, size_t count, int dtype, int op, Comm, cudaStream_t) = nullptr;
  int (*all_gather)(const void* send, void* recv, size_t send_count, int dtype, Comm, cudaStream_t) = nullptr;
};

// The loaded library (once per process), or null with `why` set.
const Api* Load(std::string* why);

// "ncclX failed: <NCCL's message> (N)"
std::string Describe(const Api* api, const char* what, int status);

}  // namespace nccl
}  // namespace marlin
#endif
