#include "blas/cublas_loader.h"

#ifdef MARLIN_WITH_CUDA
#include "common/dynlib.h"

#include <mutex>

namespace marlin {
namespace blas {

const Api* Load(std::string* why) {
  static Api api;
  static bool ok = false;
  static std::string error;
  static std::once_flag once;
  std::call_once(once, [] {
    void* lib = OpenFirstLibrary({"libcublas.so.13", "libcublas.so.12", "libcublas.so", "/usr/local/cuda/lib64/libcublas.so.13",
                                  "/usr/local/cuda/lib64/libcublas.so"},
                                 "libcublas", &error);
    if (!lib) return;
    auto sym = [&](const char* name) { return dlsym(lib, name); };
    api.create = reinterpret_cast<decltype(api.create)>(sym("cublasCreate_v2"));
    api.destroy = reinterpret_cast<decltype(api.destroy)>(sym("cublasDestroy_v2"));
    api.set_stream = reinterpret_cast<decltype(api.set_stream)>(sym("cublasSetStream_v2"));
    api.set_math_mode = reinterpret_cast<decltype(api.set_math_mode)>(sym("cublasSetMathMode"));
    api.gemm_ex = reinterpret_cast<decltype(api.gemm_ex)>(sym("cublasGemmEx"));
    api.set_workspace = reinterpret_cast<decltype(api.set_workspace)>(sym("cublasSetWorkspace_v2"));
    if (!api.create || !api.destroy || !api.set_stream || !api.gemm_ex) {
      error = "libcublas lacks cublasCreate_v2 / cublasSetStream_v2 / cublasGemmEx";
      return;
    }
    ok = true;
  });
  if (!ok) {
    if (why) *why = error;
    return nullptr;
  }
  return &api;
}

Handle HandleFor(int device, std::string* why) {
  static std::mutex mu;
  static Handle handles[64] = {nullptr};
  const Api* api = Load(why);
  if (!api) return nullptr;
  std::lock_guard<std::mutex> lock(mu);
  Handle& h = handles[device & 63];
  if (!h) {
    const int st = api->create(&h);
    if (st != 0) {
      h = nullptr;
      if (why) *why = "cublasCreate failed with status " + std::to_string(st);
      return nullptr;
    }
    if (api->set_math_mode) api->set_math_mode(h, kDefaultMath);
  }
  return h;
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

}  // namespace blas
}  // namespace marlin
#endif
