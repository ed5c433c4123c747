#include "kernel/blas/cublas_loader.h"

#ifdef MARLIN_WITH_CUDA
#include "common/dynlib.h"

namespace marlin {
namespace blas {

const Api* Load(std::string* why) {
  static const LazyLibrary<Api> lib(
      {"libcublas.so.13", "libcublas.so.12", "libcublas.so", "/usr/local/cuda/lib64/libcublas.so.13", "/usr/local/cuda/lib64/libcublas.so"},
      "libcublas", "libcublas lacks cublasCreate_v2 / cublasSetStream_v2 / cublasGemmEx", [](void* so, Api& api) {
        BindSymbols(so, api.create, "cublasCreate_v2", api.destroy, "cublasDestroy_v2", api.set_stream, "cublasSetStream_v2",
                    api.set_math_mode, "cublasSetMathMode", api.gemm_ex, "cublasGemmEx", api.set_workspace, "cublasSetWorkspace_v2");
        return api.create && api.destroy && api.set_stream && api.gemm_ex;
      });
  return lib.Get(why);
}

Handle HandleFor(int device, std::string* why) {
  // One handle per thread and device: a handle's stream is set before each call, so two threads
  // sharing one (tensor-parallel ranks on one GPU) could queue a GEMM on the other's stream. A
  // worker thread's handles are not destroyed when it ends (a few per rank, for the process's life).
  static thread_local HandleCache handles;
  const Api* api = Load(why);
  if (!api) return nullptr;
  return handles.Get(device, "cublasCreate", [api](Handle* h) {
    const int st = api->create(h);
    if (st == 0 && api->set_math_mode) api->set_math_mode(*h, kDefaultMath);
    return st;
  }, why);
}

int Gemm(Handle h, cudaStream_t stream, bool bf16, int m, int n, int k, const void* a, const void* w, bool w_nk, void* c) {
  const Api* api = Load(nullptr);
  if (!api) return -1;
  int st = api->set_stream(h, stream);
  if (st != 0) return st;
  const float one = 1.f, zero = 0.f;
  const int t = bf16 ? kR16BF : kR16F;
  // Column-major view: C^T[n, m] = W^T[n, k] * A^T[k, m].
  if (w_nk) return api->gemm_ex(h, kOpT, kOpN, n, m, k, &one, w, t, k, a, t, k, &zero, c, t, n, kCompute32F, kGemmDefault);
  return api->gemm_ex(h, kOpN, kOpN, n, m, k, &one, w, t, n, a, t, k, &zero, c, t, n, kCompute32F, kGemmDefault);
}

int GemmLd(Handle h, cudaStream_t stream, bool bf16, int m, int n, int k, const void* a, int lda, const void* w, int ldw, void* c, int ldc) {
  const Api* api = Load(nullptr);
  if (!api) return -1;
  const int st = api->set_stream(h, stream);
  if (st != 0) return st;
  const float one = 1.f, zero = 0.f;
  const int t = bf16 ? kR16BF : kR16F;
  return api->gemm_ex(h, kOpN, kOpN, n, m, k, &one, w, t, ldw, a, t, lda, &zero, c, t, ldc, kCompute32F, kGemmDefault);
}

}  // namespace blas
}  // namespace marlin
#endif
