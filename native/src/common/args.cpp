#include "common/args.h"

#include <cmath>
#include <cstdio>

namespace marlin {

static std::string Arg(size_t i, const char* name) { return std::string("argument ") + name + " (#" + std::to_string(i) + ")"; }

// A double as the shortest text that reads back (casting an out-of-range double to an integer
// for printing would be undefined behaviour).
static std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

int64_t Elements(Napi::Env env, const char* what, std::initializer_list<int64_t> dims) {
  int64_t total = 1;
  bool over = false;
  for (int64_t d : dims) {
    if (d < 0) ThrowTyped(env, kErrShape, std::string(what) + ": negative dimension " + std::to_string(d));
    if (d == 0) return 0;
    if (!over && (__builtin_mul_overflow(total, d, &total) || total > kMaxElements)) over = true;
  }
  if (over) {
    std::string dims_text;
    for (int64_t d : dims) dims_text += (dims_text.empty() ? "" : " x ") + std::to_string(d);
    ThrowTyped(env, kErrShape, std::string(what) + " = " + dims_text + " exceeds " + std::to_string(kMaxElements) + " elements");
  }
  return total;
}

int64_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo, int64_t hi) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsNumber()) ThrowTyped(env, kErrInvalidArgument, Arg(i, name) + " must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(v) || std::floor(v) != v) ThrowTyped(env, kErrInvalidArgument, Arg(i, name) + " must be an integer, got " + Num(v));
  if (v < static_cast<double>(lo) || v > static_cast<double>(hi))
    ThrowTyped(env, kErrInvalidArgument, Arg(i, name) + " = " + Num(v) + " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return static_cast<int64_t>(v);
}

int64_t ArgIntOr(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo, int64_t hi, int64_t fallback) {
  if (i >= info.Length() || info[i].IsUndefined() || info[i].IsNull()) return fallback;
  return ArgInt(info, i, name, lo, hi);
}

double ArgNumber(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsNumber()) ThrowTyped(info.Env(), kErrInvalidArgument, Arg(i, name) + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

double ArgFinite(const Napi::CallbackInfo& info, size_t i, const char* name, double lo, double hi) {
  const double v = ArgNumber(info, i, name);
  if (!std::isfinite(v) || v < lo || v > hi)
    ThrowTyped(info.Env(), kErrInvalidArgument, Arg(i, name) + " = " + Num(v) + " must be finite and in [" + Num(lo) + ", " + Num(hi) + "]");
  return v;
}

bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsBoolean()) ThrowTyped(info.Env(), kErrInvalidArgument, Arg(i, name) + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsString()) ThrowTyped(info.Env(), kErrInvalidArgument, Arg(i, name) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

static size_t ElementSize(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array:
    case napi_uint8_array:
    case napi_uint8_clamped_array: return 1;
    case napi_int16_array:
    case napi_uint16_array: return 2;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array: return 4;
    default: return 8;
  }
}

const char* TypedArrayName(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "TypedArray";
  }
}

HostView ArgHost(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Env env = info.Env();
  if (i < info.Length()) {
    Napi::Value v = info[i];
    if (v.IsTypedArray()) {
      auto ta = v.As<Napi::TypedArray>();
      auto type = ta.TypedArrayType();
      uint8_t* base = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
      return {base, ta.ByteLength(), type, ta.ByteLength() / ElementSize(type)};
    }
    if (v.IsDataView()) {
      auto dv = v.As<Napi::DataView>();
      return {static_cast<uint8_t*>(dv.ArrayBuffer().Data()) + dv.ByteOffset(), dv.ByteLength(), napi_uint8_array,
              dv.ByteLength()};
    }
    if (v.IsArrayBuffer()) {
      auto ab = v.As<Napi::ArrayBuffer>();
      return {ab.Data(), ab.ByteLength(), napi_uint8_array, ab.ByteLength()};
    }
  }
  ThrowTyped(env, kErrInvalidArgument, Arg(i, name) + " must be a TypedArray, DataView or ArrayBuffer");
}

HostView ArgTyped(const Napi::CallbackInfo& info, size_t i, const char* name, napi_typedarray_type type,
                  size_t min_elements) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsTypedArray())
    ThrowTyped(env, kErrDType, Arg(i, name) + std::string(" must be a ") + TypedArrayName(type));
  HostView h = ArgHost(info, i, name);
  if (h.type != type)
    ThrowTyped(env, kErrDType, Arg(i, name) + " must be a " + TypedArrayName(type) + ", got " + TypedArrayName(h.type));
  if (h.elements < min_elements)
    ThrowTyped(env, kErrShape,
               Arg(i, name) + " has " + std::to_string(h.elements) + " elements, needs at least " + std::to_string(min_elements));
  return h;
}

bool IsAbsent(const Napi::CallbackInfo& info, size_t i) { return i >= info.Length() || info[i].IsUndefined() || info[i].IsNull(); }

int64_t ArgByteOffset(const Napi::CallbackInfo& info, size_t i, const char* name) { return ArgInt(info, i, name, 0, kMaxBytes); }

}  // namespace marlin
