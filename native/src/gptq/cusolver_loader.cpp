#include "gptq/cusolver_loader.h"

#ifdef MARLIN_WITH_CUDA
#include "common/dynlib.h"

namespace marlin {
namespace gptq {

const SolverApi* LoadSolver(std::string* why) {
  static const LazyLibrary<SolverApi> lib(
      {"libcusolver.so.12", "libcusolver.so.11", "libcusolver.so", "/usr/local/cuda/lib64/libcusolver.so.12",
       "/usr/local/cuda/lib64/libcusolver.so"},
      "libcusolver", "libcusolver lacks cusolverDnCreate / SetStream / Dpotrf / Dpotri", [](void* so, SolverApi& api) {
        BindSymbols(so, api.create, "cusolverDnCreate", api.destroy, "cusolverDnDestroy", api.set_stream, "cusolverDnSetStream",
                    api.dpotrf_buffer_size, "cusolverDnDpotrf_bufferSize", api.dpotrf, "cusolverDnDpotrf",
                    api.dpotri_buffer_size, "cusolverDnDpotri_bufferSize", api.dpotri, "cusolverDnDpotri");
        return api.create && api.set_stream && api.dpotrf_buffer_size && api.dpotrf && api.dpotri_buffer_size && api.dpotri;
      });
  return lib.Get(why);
}

SolverHandle SolverFor(int device, std::string* why) {
  static HandleCache handles;
  const SolverApi* api = LoadSolver(why);
  if (!api) return nullptr;
  return handles.Get(device, "cusolverDnCreate", api->create, why);
}

}  // namespace gptq
}  // namespace marlin
#endif
