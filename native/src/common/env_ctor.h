#pragma once
// A JS class constructor per Node environment. The addon is loaded once per process but
// initialized once per environment (the main thread and every worker thread, e.g. the
// tensor-parallel CPU ranks): a single static FunctionReference would be overwritten by the last
// environment to load and left dangling when that worker exits. This keeps one per environment
// and drops it when its environment is torn down.
#include <napi.h>

#include <mutex>
#include <unordered_map>

namespace marlin {

class EnvConstructor {
 public:
  void Set(Napi::Env env, Napi::Function fn) {
    napi_env e = env;
    {
      std::lock_guard<std::mutex> lock(mu_);
      delete refs_[e];
      refs_[e] = new Napi::FunctionReference(Napi::Persistent(fn));
    }
    env.AddCleanupHook([this, e] {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = refs_.find(e);
      if (it == refs_.end()) return;
      delete it->second;
      refs_.erase(it);
    });
  }
  // This environment's constructor, or null before Set.
  Napi::FunctionReference* Get(Napi::Env env) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = refs_.find(static_cast<napi_env>(env));
    return it == refs_.end() ? nullptr : it->second;
  }
  bool IsInstance(Napi::Value v) {
    if (!v.IsObject()) return false;
    Napi::FunctionReference* c = Get(v.Env());
    return c && v.As<Napi::Object>().InstanceOf(c->Value());
  }

 private:
  std::mutex mu_;
  std::unordered_map<napi_env, Napi::FunctionReference*> refs_;
};

}  // namespace marlin
