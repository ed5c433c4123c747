#pragma once
// cuBLAS loaded at run time with dlopen: the build machine has no cuBLAS headers or libraries,
// so the few entry points we use are declared here. A machine without libcublas gets an error
// string, never a crash.
#include <string>

#ifdef MARLIN_WITH_CUDA
#include <cuda_runtime.h>

namespace marlin {
namespace blas {

using Handle = void*;
// Values from the cuBLAS API (stable across versions).
constexpr int kOpN = 0, kOpT = 1;
constexpr int kR16F = 2, kR16BF = 14, kR32F = 0;  // cudaDataType
constexpr int kCompute32F = 68;                   // CUBLAS_COMPUTE_32F
constexpr int kGemmDefault = -1;                  // CUBLAS_GEMM_DEFAULT
constexpr int kDefaultMath = 0;

struct Api {
  int (*create)(Handle*) = nullptr;
  int (*destroy)(Handle) = nullptr;
  int (*set_stream)(Handle, cudaStream_t) = nullptr;
  int (*set_math_mode)(Handle, int) = nullptr;
  int (*gemm_ex)(Handle, int, int, int, int, int, const void*, const void*, int, int, const void*, int, int,
                 const void*, void*, int, int, int, int) = nullptr;
  int (*set_workspace)(Handle, void*, size_t) = nullptr;
};

// The loaded library (once per process), or null with `why` set.
const Api* Load(std::string* why);

// A handle per device, created on first use.
Handle HandleFor(int device, std::string* why);

// Row-major C[m, n] = A[m, k] * W (+ nothing), fp32 accumulation; `w_nk` selects W stored as
// [n, k] (torch Linear layout) instead of [k, n]. Returns a cuBLAS status (0 = success).
int Gemm(Handle h, cudaStream_t stream, bool bf16, int m, int n, int k, const void* a, const void* w, bool w_nk, void* c);

// Row-major C[m, n] (row stride ldc) = A[m, k] (row stride lda) * W[k, n] (row stride ldw): a column
// slice of a wider C, as the dequantize path writes it.
int GemmLd(Handle h, cudaStream_t stream, bool bf16, int m, int n, int k, const void* a, int lda, const void* w, int ldw, void* c, int ldc);

}  // namespace blas
}  // namespace marlin
#endif
