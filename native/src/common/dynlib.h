#pragma once
// Run-time loading of CUDA libraries we have no headers for here (cuBLAS, cuSOLVER): the first of
// `names` that dlopen accepts, or nullptr with `error` saying why.
#include <dlfcn.h>

#include <initializer_list>
#include <string>

namespace marlin {

inline void* OpenFirstLibrary(std::initializer_list<const char*> names, const char* what, std::string* error) {
  for (const char* n : names)
    if (void* lib = dlopen(n, RTLD_NOW | RTLD_LOCAL)) return lib;
  const char* e = dlerror();
  *error = std::string(what) + " could not be loaded: " + (e ? e : "not found");
  return nullptr;
}

}  // namespace marlin
