#pragma once
// cuSOLVER (dense) loaded at run time with dlopen: the build machine has no cuSOLVER headers or
// libraries, so the entry points GPTQ uses are declared here. A machine without libcusolver gets
// an error string, never a crash. Statuses are cusolverStatus_t (0 = success).
#include <string>

#ifdef MARLIN_WITH_CUDA
#include <cuda_runtime.h>

namespace marlin {
namespace gptq {

using SolverHandle = void*;
constexpr int kFillLower = 0;  // CUBLAS_FILL_MODE_LOWER

struct SolverApi {
  int (*create)(SolverHandle*) = nullptr;
  int (*destroy)(SolverHandle) = nullptr;
  int (*set_stream)(SolverHandle, cudaStream_t) = nullptr;
  int (*dpotrf_buffer_size)(SolverHandle, int uplo, int n, double* a, int lda, int* lwork) = nullptr;
  int (*dpotrf)(SolverHandle, int uplo, int n, double* a, int lda, double* work, int lwork, int* info) = nullptr;
  int (*dpotri_buffer_size)(SolverHandle, int uplo, int n, double* a, int lda, int* lwork) = nullptr;
  int (*dpotri)(SolverHandle, int uplo, int n, double* a, int lda, double* work, int lwork, int* info) = nullptr;
};

// The loaded library (once per process), or null with `why` set.
const SolverApi* LoadSolver(std::string* why);

// A handle per device, created on first use (never destroyed: lives as long as the process).
SolverHandle SolverFor(int device, std::string* why);

}  // namespace gptq
}  // namespace marlin
#endif
