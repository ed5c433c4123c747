#pragma once
// Argument validation for JS entry points: every check throws a typed JS error naming the
// argument, before anything is launched or written.
#include <napi.h>

#include <cstdint>
#include <initializer_list>
#include <string>

#include "common/errors.h"

namespace marlin {

// The largest dimension a JS entry point takes (as the Marlin kernel's): a product of two stays far
// inside int64, and no dimension is silently narrowed by an `int` kernel argument.
constexpr int64_t kMaxDim = int64_t{1} << 30;
// The most elements an argument may need (a product of dimensions): 2^48, so that the byte count of
// any element type still fits size_t with room to spare. Typed arrays hold at most 2^32.
constexpr int64_t kMaxElements = int64_t{1} << 48;

// The product of non-negative dimensions, computed without wrap-around: throws ERR_MARLIN_SHAPE
// naming `what` (e.g. "rows * 2 * inter") when it exceeds kMaxElements. A zero factor gives 0.
int64_t Elements(Napi::Env env, const char* what, std::initializer_list<int64_t> dims);

// The largest byte count or byte offset an argument may give (far past any device's memory, and
// small enough that offset + size cannot wrap).
constexpr int64_t kMaxBytes = int64_t{1} << 46;

// A byte offset argument into a buffer, in [0, kMaxBytes] (the buffer's own size is checked by
// DevicePtr).
int64_t ArgByteOffset(const Napi::CallbackInfo& info, size_t i, const char* name);

// True when argument i is missing, undefined or null (an optional argument left out).
bool IsAbsent(const Napi::CallbackInfo& info, size_t i);

// An integer argument in [lo, hi].
int64_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo, int64_t hi);
// An optional integer argument (undefined -> fallback).
int64_t ArgIntOr(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo, int64_t hi,
                 int64_t fallback);
double ArgNumber(const Napi::CallbackInfo& info, size_t i, const char* name);
// A finite number argument in [lo, hi] (NaN and infinities refused).
double ArgFinite(const Napi::CallbackInfo& info, size_t i, const char* name, double lo, double hi);
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
