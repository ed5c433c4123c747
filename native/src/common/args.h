#pragma once
// Argument validation for JS entry points: every check throws a typed JS error naming the
// argument, before anything is launched or written.
#include <napi.h>

#include <cstdint>
#include <string>

#include "common/errors.h"

namespace marlin {

// An integer argument in [lo, hi].
int64_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo, int64_t hi);
// An optional integer argument (undefined -> fallback).
int64_t ArgIntOr(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo, int64_t hi,
                 int64_t fallback);
double ArgNumber(const Napi::CallbackInfo& info, size_t i, const char* name);
bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* name);
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name);

// A view of host memory from any TypedArray / DataView / ArrayBuffer argument.
struct HostView {
  void* data;
  size_t bytes;
  napi_typedarray_type type;  // napi_uint8_array for ArrayBuffer / DataView
  size_t elements;
};
HostView ArgHost(const Napi::CallbackInfo& info, size_t i, const char* name);
// A TypedArray of one exact element type with at least `min_elements` elements.
HostView ArgTyped(const Napi::CallbackInfo& info, size_t i, const char* name, napi_typedarray_type type,
                  size_t min_elements);

const char* TypedArrayName(napi_typedarray_type t);

}  // namespace marlin
