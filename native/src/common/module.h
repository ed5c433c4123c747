#pragma once
// Self-registration of the addon's areas: each source file that exposes JS functions declares
// MARLIN_MODULE(name, init) and is picked up without a central list to edit.
#include <napi.h>

#include <string>
#include <vector>

namespace marlin {

using ModuleInit = void (*)(Napi::Env env, Napi::Object exports);

struct ModuleEntry {
  std::string name;
  ModuleInit init;
};

std::vector<ModuleEntry>& Modules();

struct ModuleRegistrar {
  ModuleRegistrar(const char* name, ModuleInit init) { Modules().push_back({name, init}); }
};

}  // namespace marlin

#define MARLIN_MODULE(name, init) static ::marlin::ModuleRegistrar marlin_module_registrar_##name(#name, init)
