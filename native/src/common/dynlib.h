#pragma once
// Run-time loading of CUDA libraries we have no headers for here (cuBLAS, cuSOLVER).
// No Node-API here: the standalone harness builds the loaders without it.
#include <dlfcn.h>

#include <initializer_list>
#include <mutex>
#include <string>

namespace marlin {

// The first of `names` that dlopen accepts, or nullptr with `error` saying why.
inline void* OpenFirstLibrary(std::initializer_list<const char*> names, const char* what, std::string* error) {
  for (const char* n : names)
    if (void* lib = dlopen(n, RTLD_NOW | RTLD_LOCAL)) return lib;
  const char* e = dlerror();
  *error = std::string(what) + " could not be loaded: " + (e ? e : "not found");
  return nullptr;
}

// Resolves each (entry point, symbol name) pair from `lib`; an entry point the library lacks is null.
inline void BindSymbols(void*) {}
template <class Fn, class... Rest>
void BindSymbols(void* lib, Fn*& fn, const char* name, Rest&&... rest) {
  fn = reinterpret_cast<Fn*>(dlsym(lib, name));
  BindSymbols(lib, rest...);
}

// A library's table of entry points, loaded once per process: held in a function-local static,
// so the first caller loads it and every caller gets the same table or the same error.
template <class Api>
class LazyLibrary {
 public:
  // `bind(lib, api)` fills the table and says whether the required entry points are there;
  // `incomplete` is the error when they are not.
  template <class Bind>
  LazyLibrary(std::initializer_list<const char*> names, const char* what, const char* incomplete, Bind bind) {
    void* lib = OpenFirstLibrary(names, what, &error_);
    if (!lib) return;
    if (!bind(lib, api_)) {
      error_ = incomplete;
      return;
    }
    ok_ = true;
  }

  // The table, or null with `why` (if given) set.
  const Api* Get(std::string* why) const {
    if (ok_) return &api_;
    if (why) *why = error_;
    return nullptr;
  }

 private:
  Api api_{};
  bool ok_ = false;
  std::string error_;
};

// One library handle per device (device & 63), created on first use and kept for the process.
class HandleCache {
 public:
  // The handle of `device`; a missing one is made by `create(&h)`, which returns the library's
  // status (0 = success). On failure: null, with `why` = "<what> failed with status N".
  template <class Create>
  void* Get(int device, const char* what, Create create, std::string* why) {
    std::lock_guard<std::mutex> lock(mu_);
    void*& h = handles_[device & 63];
    if (!h) {
      const int st = create(&h);
      if (st != 0) {
        h = nullptr;
        if (why) *why = std::string(what) + " failed with status " + std::to_string(st);
        return nullptr;
      }
    }
    return h;
  }

 private:
  std::mutex mu_;
  void* handles_[64] = {nullptr};
};

}  // namespace marlin
