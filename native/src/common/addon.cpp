// The addon's entry point: runs every registered area's init in name order.
#include <algorithm>

#include "common/module.h"

namespace marlin {

std::vector<ModuleEntry>& Modules() {
  static std::vector<ModuleEntry> modules;
  return modules;
}

}  // namespace marlin

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  auto mods = marlin::Modules();
  std::sort(mods.begin(), mods.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  Napi::Array names = Napi::Array::New(env, mods.size());
  for (size_t i = 0; i < mods.size(); i++) {
    mods[i].init(env, exports);
    names.Set(static_cast<uint32_t>(i), mods[i].name);
  }
  exports.Set("modules", names);
#ifdef MARLIN_WITH_CUDA
  exports.Set("builtWithCuda", Napi::Boolean::New(env, true));
#else
  exports.Set("builtWithCuda", Napi::Boolean::New(env, false));
#endif
  return exports;
}

NODE_API_MODULE(marlin, InitAddon)
