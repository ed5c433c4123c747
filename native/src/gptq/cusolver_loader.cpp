#include "gptq/cusolver_loader.h"

#ifdef MARLIN_WITH_CUDA
#include "common/dynlib.h"

#include <mutex>

namespace marlin {
namespace gptq {

const SolverApi* LoadSolver(std::string* why) {
  static SolverApi api;
  static bool ok = false;
  static std::string error;
  static std::once_flag once;
  std::call_once(once, [] {
    void* lib = OpenFirstLibrary({"libcusolver.so.12", "libcusolver.so.11", "libcusolver.so", "/usr/local/cuda/lib64/libcusolver.so.12",
                                  "/usr/local/cuda/lib64/libcusolver.so"},
                                 "libcusolver", &error);
    if (!lib) return;
    auto sym = [&](const char* name) { return dlsym(lib, name); };
    api.create = reinterpret_cast<decltype(api.create)>(sym("cusolverDnCreate"));
    api.destroy = reinterpret_cast<decltype(api.destroy)>(sym("cusolverDnDestroy"));
    api.set_stream = reinterpret_cast<decltype(api.set_stream)>(sym("cusolverDnSetStream"));
    api.dpotrf_buffer_size = reinterpret_cast<decltype(api.dpotrf_buffer_size)>(sym("cusolverDnDpotrf_bufferSize"));
    api.dpotrf = reinterpret_cast<decltype(api.dpotrf)>(sym("cusolverDnDpotrf"));
    api.dpotri_buffer_size = reinterpret_cast<decltype(api.dpotri_buffer_size)>(sym("cusolverDnDpotri_bufferSize"));
    api.dpotri = reinterpret_cast<decltype(api.dpotri)>(sym("cusolverDnDpotri"));
    if (!api.create || !api.set_stream || !api.dpotrf_buffer_size || !api.dpotrf || !api.dpotri_buffer_size || !api.dpotri) {
      error = "libcusolver lacks cusolverDnCreate / SetStream / Dpotrf / Dpotri";
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

SolverHandle SolverFor(int device, std::string* why) {
  static std::mutex mu;
  static SolverHandle handles[64] = {nullptr};
  const SolverApi* api = LoadSolver(why);
  if (!api) return nullptr;
  std::lock_guard<std::mutex> lock(mu);
  SolverHandle& h = handles[device & 63];
  if (!h) {
    const int st = api->create(&h);
    if (st != 0) {
      h = nullptr;
      if (why) *why = "cusolverDnCreate failed with status " + std::to_string(st);
      return nullptr;
    }
  }
  return h;
}

}  // namespace gptq
}  // namespace marlin
#endif
