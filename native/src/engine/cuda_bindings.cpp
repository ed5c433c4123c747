// JS bindings of the engine's CUDA ops: native().engineCuda.<op>(...). A device argument is a
// DeviceBuffer or [DeviceBuffer, byteOffset]; each is range-checked before any launch. Dimensions
// are at most kMaxDim (the kernels take `int`), lengths are products from Elements() (refused, never
// wrapped). Index arrays (positions, slots, block tables) live on the device and are trusted: the
// runner builds them. In a CPU-only build every op throws ERR_MARLIN_NO_DEVICE.
#include <napi.h>

#include <cmath>
#include <string>

#include "common/args.h"
#include "common/device_buffer.h"
#include "common/errors.h"
#include "common/module.h"
#ifdef MARLIN_WITH_CUDA
#include "kernel/blas/cublas_loader.h"
#include "engine/cuda_ops.h"
#endif

namespace marlin {
namespace {

#ifdef MARLIN_WITH_CUDA
// A device pointer from a DeviceBuffer or [DeviceBuffer, byteOffset] value.
template <typename T>
T* RefValue(Napi::Env env, Napi::Value v, const std::string& name, int64_t elements, size_t align = 4) {
  if (v.IsUndefined() || v.IsNull()) ThrowTyped(env, kErrInvalidArgument, name + " is missing");
  int64_t off = 0;
  Napi::Value buf = v;
  if (v.IsArray()) {
    Napi::Array arr = v.As<Napi::Array>();
    if (arr.Length() != 2 || !arr.Get(1u).IsNumber())
      ThrowTyped(env, kErrInvalidArgument, name + " must be a DeviceBuffer or [DeviceBuffer, byteOffset]");
    buf = arr.Get(0u);
    const double d = arr.Get(1u).As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d <= static_cast<double>(kMaxElements)) || d != static_cast<double>(static_cast<int64_t>(d)))
      ThrowTyped(env, kErrInvalidArgument, name + ": the byte offset must be an integer in [0, 2^48]");
    off = static_cast<int64_t>(d);
  }
  DeviceBuffer* b = DeviceBuffer::From(env, buf, name.c_str());
  const size_t need = static_cast<size_t>(elements) * sizeof(T);
  if (static_cast<size_t>(off) > b->bytes() || need > b->bytes() - static_cast<size_t>(off))
    ThrowTyped(env, kErrShape, name + ": needs " + std::to_string(need) + " bytes at offset " + std::to_string(off) +
                                   ", buffer holds " + std::to_string(b->bytes()));
  char* p = static_cast<char*>(b->data()) + off;
  if (reinterpret_cast<uintptr_t>(p) % align)
    ThrowTyped(env, kErrAlignment, name + ": offset " + std::to_string(off) + " is not " + std::to_string(align) + "-byte aligned");
  return reinterpret_cast<T*>(p);
}

// A device pointer from positional argument i.
template <typename T>
T* Ref(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t elements, size_t align = 4) {
  if (i >= info.Length()) ThrowTyped(info.Env(), kErrInvalidArgument, std::string(name) + " is missing");
  return RefValue<T>(info.Env(), info[i], name, elements, align);
}

int64_t I(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo = 0) { return ArgInt(info, i, name, lo, kMaxDim); }
int64_t E(const Napi::CallbackInfo& info, const char* what, std::initializer_list<int64_t> dims) { return Elements(info.Env(), what, dims); }

// An integer field of a shape object, in [lo, 2^30].
int64_t FieldInt(Napi::Env env, Napi::Object o, const char* op, const char* k, int64_t lo) {
  Napi::Value v = o.Get(k);
  if (!v.IsNumber()) ThrowTyped(env, kErrInvalidArgument, std::string(op) + ": " + k + " must be a number");
  const double x = v.As<Napi::Number>().DoubleValue();
  if (!(x >= static_cast<double>(lo) && x <= static_cast<double>(kMaxDim)) || x != static_cast<double>(static_cast<int64_t>(x)))
    ThrowTyped(env, kErrInvalidArgument, std::string(op) + ": " + k + " must be an integer in [" + std::to_string(lo) + ", 2^30]");
  return static_cast<int64_t>(x);
}

// A finite number field of a shape object.
float FieldFinite(Napi::Env env, Napi::Object o, const char* op, const char* k) {
  const Napi::Value v = o.Get(k);
  if (!v.IsNumber() || !std::isfinite(v.As<Napi::Number>().DoubleValue()))
    ThrowTyped(env, kErrInvalidArgument, std::string(op) + ": " + k + " must be a finite number");
  return static_cast<float>(v.As<Napi::Number>().DoubleValue());
}

void Check(Napi::Env env, cudaError_t e, const char* what) {
  if (e != cudaSuccess) ThrowCuda(env, e, what);
}

// embedding(ids, table, out, rows, hidden, vocab, stream?, vocabStart = 0): the table holds rows
// vocabStart..vocabStart+vocab-1 of the vocabulary (a tensor-parallel rank's); other ids get zeros.
Napi::Value Embedding(const Napi::CallbackInfo& info) {
  int64_t rows = I(info, 3, "rows"), hidden = I(info, 4, "hidden", 1), vocab = I(info, 5, "vocab", 1);
  const int64_t start = ArgIntOr(info, 7, "vocabStart", 0, kMaxDim, 0);
  auto ids = Ref<int32_t>(info, 0, "ids", rows);
  auto table = Ref<half>(info, 1, "table", E(info, "table (vocab * hidden)", {vocab, hidden}), 2);
  auto out = Ref<half>(info, 2, "out", E(info, "out (rows * hidden)", {rows, hidden}), 2);
  Check(info.Env(), ops::cuda::Embedding(ids, rows, table, hidden, vocab, start, out, ArgStream(info, 6)), "embedding");
  return info.Env().Undefined();
}

// rmsnorm(x, weight, out, rows, hidden, eps, stream?)
Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  int64_t rows = I(info, 3, "rows"), hidden = I(info, 4, "hidden", 1);
  const int64_t count = E(info, "x (rows * hidden)", {rows, hidden});
  auto x = Ref<half>(info, 0, "x", count, 2);
  auto w = Ref<float>(info, 1, "weight", hidden);
  auto out = Ref<half>(info, 2, "out", count, 2);
  float eps = static_cast<float>(ArgFinite(info, 5, "eps", 0, 1));
  Check(info.Env(), ops::cuda::RmsNorm(x, w, eps, rows, hidden, out, ArgStream(info, 6)), "rmsnorm");
  return info.Env().Undefined();
}

// addRmsnorm(x, residual, weight, rows, hidden, eps, stream?)
Napi::Value AddRmsNorm(const Napi::CallbackInfo& info) {
  int64_t rows = I(info, 3, "rows"), hidden = I(info, 4, "hidden", 1);
  const int64_t count = E(info, "x (rows * hidden)", {rows, hidden});
  auto x = Ref<half>(info, 0, "x", count, 2);
  auto res = Ref<half>(info, 1, "residual", count, 2);
  auto w = Ref<float>(info, 2, "weight", hidden);
  float eps = static_cast<float>(ArgFinite(info, 5, "eps", 0, 1));
  Check(info.Env(), ops::cuda::AddRmsNorm(x, res, w, eps, rows, hidden, ArgStream(info, 6)), "addRmsnorm");
  return info.Env().Undefined();
}

// rope(x, positions, cos, sin, rows, stride, heads, headDim, maxPositions, stream?)
Napi::Value Rope(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t rows = I(info, 4, "rows"), stride = I(info, 5, "stride", 1), heads = I(info, 6, "heads", 1),
          hd = I(info, 7, "headDim", 2), maxp = I(info, 8, "maxPositions", 1);
  if (hd % 2 || heads * hd > stride) ThrowTyped(env, kErrShape, "rope: headDim must be even and heads * headDim <= stride");
  auto x = Ref<half>(info, 0, "x", E(info, "x (rows * stride)", {rows, stride}), 2);
  auto pos = Ref<int32_t>(info, 1, "positions", rows);
  const int64_t table = E(info, "cos/sin (maxPositions * headDim / 2)", {maxp, hd / 2});
  auto c = Ref<float>(info, 2, "cos", table);
  auto s = Ref<float>(info, 3, "sin", table);
  Check(env, ops::cuda::Rope(x, rows, stride, heads, hd, pos, c, s, ArgStream(info, 9)), "rope");
  return env.Undefined();
}

// storeKv(qkv, slots, kCache, vCache, rows, stride, kOffset, vOffset, kvDim, numSlots, stream?)
Napi::Value StoreKv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t rows = I(info, 4, "rows"), stride = I(info, 5, "stride", 1), ko = I(info, 6, "kOffset"), vo = I(info, 7, "vOffset"),
          kv = I(info, 8, "kvDim", 1), slots_n = I(info, 9, "numSlots", 1);
  if (ko + kv > stride || vo + kv > stride) ThrowTyped(env, kErrShape, "storeKv: k/v columns exceed the row stride");
  auto qkv = Ref<half>(info, 0, "qkv", E(info, "qkv (rows * stride)", {rows, stride}), 2);
  auto slots = Ref<int32_t>(info, 1, "slots", rows);
  const int64_t cache = E(info, "cache (numSlots * kvDim)", {slots_n, kv});
  auto kc = Ref<half>(info, 2, "kCache", cache, 2);
  auto vc = Ref<half>(info, 3, "vCache", cache, 2);
  Check(env, ops::cuda::StoreKv(qkv, rows, stride, ko, vo, kv, slots, kc, vc, ArgStream(info, 10)), "storeKv");
  return env.Undefined();
}

// ropeStoreKv(qkv, positions, cos, sin, slots, kCache, vCache, rows, stride, heads, kvHeads, headDim, maxPositions,
//   numSlots, stream?): rope of the q and k heads, then k and v into the cache (row layout [q | k | v]).
Napi::Value RopeStoreKv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t rows = I(info, 7, "rows"), stride = I(info, 8, "stride", 1), heads = I(info, 9, "heads", 1),
          kvh = I(info, 10, "kvHeads", 1), hd = I(info, 11, "headDim", 2), maxp = I(info, 12, "maxPositions", 1),
          slots_n = I(info, 13, "numSlots", 1);
  if (hd % 2 || (heads + 2 * kvh) * hd > stride)
    ThrowTyped(env, kErrShape, "ropeStoreKv: headDim must be even and (heads + 2 * kvHeads) * headDim <= stride");
  auto qkv = Ref<half>(info, 0, "qkv", E(info, "qkv (rows * stride)", {rows, stride}), 2);
  auto pos = Ref<int32_t>(info, 1, "positions", rows);
  const int64_t table = E(info, "cos/sin (maxPositions * headDim / 2)", {maxp, hd / 2});
  auto c = Ref<float>(info, 2, "cos", table);
  auto s = Ref<float>(info, 3, "sin", table);
  auto slots = Ref<int32_t>(info, 4, "slots", rows);
  const int64_t cache = E(info, "cache (numSlots * kvHeads * headDim)", {slots_n, kvh, hd});
  auto kc = Ref<half>(info, 5, "kCache", cache, 2);
  auto vc = Ref<half>(info, 6, "vCache", cache, 2);
  Check(env, ops::cuda::RopeStoreKv(qkv, rows, stride, heads, kvh, hd, pos, c, s, slots, kc, vc, ArgStream(info, 14)), "ropeStoreKv");
  return env.Undefined();
}

// siluMul(gu, out, rows, inter, stream?)
Napi::Value SiluMul(const Napi::CallbackInfo& info) {
  int64_t rows = I(info, 2, "rows"), inter = I(info, 3, "inter", 1);
  auto gu = Ref<half>(info, 0, "gu", E(info, "gu (rows * 2 * inter)", {rows, 2, inter}), 2);
  auto out = Ref<half>(info, 1, "out", E(info, "out (rows * inter)", {rows, inter}), 2);
  Check(info.Env(), ops::cuda::SiluMul(gu, rows, inter, out, ArgStream(info, 4)), "siluMul");
  return info.Env().Undefined();
}

// gatherRows(x, rowIndex, out, rows, hidden, stream?)
Napi::Value GatherRows(const Napi::CallbackInfo& info) {
  int64_t rows = I(info, 3, "rows"), hidden = I(info, 4, "hidden", 1);
  auto x = Ref<half>(info, 0, "x", hidden, 2);
  auto idx = Ref<int32_t>(info, 1, "rowIndex", rows);
  auto out = Ref<half>(info, 2, "out", E(info, "out (rows * hidden)", {rows, hidden}), 2);
  Check(info.Env(), ops::cuda::GatherRows(x, idx, rows, hidden, out, ArgStream(info, 5)), "gatherRows");
  return info.Env().Undefined();
}

// copy2d(dst, dstPitch, src, srcPitch, width, height, stream?): `height` rows of `width` bytes,
// device to device (a tensor-parallel rank's slice of a row into its place, logits re-laid per rank).
Napi::Value Copy2d(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t dpitch = ArgInt(info, 1, "dstPitch", 1, kMaxElements), spitch = ArgInt(info, 3, "srcPitch", 1, kMaxElements);
  const int64_t width = ArgInt(info, 4, "width", 0, kMaxElements), height = I(info, 5, "height");
  if (width > dpitch || width > spitch) ThrowTyped(env, kErrShape, "copy2d: width " + std::to_string(width) + " exceeds a pitch");
  if (width == 0 || height == 0) return env.Undefined();
  auto dst = Ref<uint8_t>(info, 0, "dst", (height - 1) * dpitch + width, 1);
  auto src = Ref<uint8_t>(info, 2, "src", (height - 1) * spitch + width, 1);
  Check(env, cudaMemcpy2DAsync(dst, static_cast<size_t>(dpitch), src, static_cast<size_t>(spitch), static_cast<size_t>(width), static_cast<size_t>(height), cudaMemcpyDeviceToDevice, ArgStream(info, 6)), "copy2d");
  return env.Undefined();
}

// addBias(x, bias (fp32), rows, n, stream?)
Napi::Value AddBias(const Napi::CallbackInfo& info) {
  int64_t rows = I(info, 2, "rows"), n = I(info, 3, "n", 1);
  auto x = Ref<half>(info, 0, "x", E(info, "x (rows * n)", {rows, n}), 2);
  auto b = Ref<float>(info, 1, "bias", n);
  Check(info.Env(), ops::cuda::AddBias(x, b, rows, n, ArgStream(info, 4)), "addBias");
  return info.Env().Undefined();
}

// fillUniform(out, count, seed, lo, hi, stream?): fp16 values uniform in [lo, hi)
Napi::Value FillUniform(const Napi::CallbackInfo& info) {
  int64_t count = ArgInt(info, 1, "count", 0, kMaxElements);
  auto out = Ref<half>(info, 0, "out", count, 2);
  uint64_t seed = static_cast<uint64_t>(ArgInt(info, 2, "seed", 0, int64_t{1} << 52));
  float lo = static_cast<float>(ArgFinite(info, 3, "lo", -65504, 65504)), hi = static_cast<float>(ArgFinite(info, 4, "hi", -65504, 65504));
  Check(info.Env(), ops::cuda::FillUniformHalf(out, static_cast<size_t>(count), seed, lo, hi, ArgStream(info, 5)), "fillUniform");
  return info.Env().Undefined();
}

// pagedAttention(q, kCache, vCache, blockTables, seqOfRow, posOfRow, out,
//   {rows, qStride, heads, kvHeads, headDim, maxBlocks, blockSize, numSeqs, numBlocks, maxContext, scale}, stream?)
Napi::Value PagedAttention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 8 || !info[7].IsObject()) ThrowTyped(env, kErrInvalidArgument, "pagedAttention: shape object missing");
  Napi::Object o = info[7].As<Napi::Object>();
  auto get = [&](const char* k, int64_t lo) { return FieldInt(env, o, "pagedAttention", k, lo); };
  ops::cuda::AttentionArgs a{};
  a.rows = get("rows", 0);
  a.q_stride = get("qStride", 1);
  a.heads = get("heads", 1);
  a.kv_heads = get("kvHeads", 1);
  a.head_dim = get("headDim", 1);
  a.max_blocks = get("maxBlocks", 1);
  a.block_size = get("blockSize", 1);
  const int64_t seqs = get("numSeqs", 1), blocks = get("numBlocks", 1);
  a.max_context = get("maxContext", 1);
  a.scale = FieldFinite(env, o, "pagedAttention", "scale");
  if (a.heads % a.kv_heads || a.head_dim > 256 || a.heads * a.head_dim > a.q_stride)
    ThrowTyped(env, kErrShape, "pagedAttention: heads must be a multiple of kvHeads, headDim <= 256, heads * headDim <= qStride");
  a.q = Ref<half>(info, 0, "q", E(info, "q (rows * qStride)", {a.rows, a.q_stride}), 2);
  const int64_t cache = E(info, "cache (numBlocks * blockSize * kvHeads * headDim)", {blocks, a.block_size, a.kv_heads, a.head_dim});
  a.k_cache = Ref<half>(info, 1, "kCache", cache, 2);
  a.v_cache = Ref<half>(info, 2, "vCache", cache, 2);
  a.block_tables = Ref<int32_t>(info, 3, "blockTables", E(info, "blockTables (numSeqs * maxBlocks)", {seqs, a.max_blocks}));
  a.seq_of_row = Ref<int32_t>(info, 4, "seqOfRow", a.rows);
  a.pos_of_row = Ref<int32_t>(info, 5, "posOfRow", a.rows);
  a.out = Ref<half>(info, 6, "out", E(info, "out (rows * heads * headDim)", {a.rows, a.heads, a.head_dim}), 2);
  Check(env, ops::cuda::PagedAttention(a, ArgStream(info, 8)), "pagedAttention");
  return env.Undefined();
}

// decodeAttention(qkv, kCache, vCache, blockTables, seqOfRow, posOfRow, out, shape, decode, stream?)
//   shape as pagedAttention's (qStride: the qkv row width); decode = {chunk, partial, counters,
//   fuse (0|1), cos?, sin?, slots?, ropeRows?, blocks?, kvReady?, stages?}: one row per sequence; with fuse the kernel
//   applies RoPE to q and the current k itself and stores the row's k and v at its slot. kvReady (0|1,
//   with fuse): the caller promises that no kernel still running before this one writes the positions,
//   block tables or cached KV (the engine's decode graph: uploaded before it, cache rows of earlier steps).
Napi::Value DecodeAttention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 9 || !info[7].IsObject() || !info[8].IsObject()) ThrowTyped(env, kErrInvalidArgument, "decodeAttention: shape or decode object missing");
  Napi::Object o = info[7].As<Napi::Object>();
  Napi::Object dd = info[8].As<Napi::Object>();
  auto get = [&](Napi::Object obj, const char* k, int64_t lo) { return FieldInt(env, obj, "decodeAttention", k, lo); };
  ops::cuda::DecodeAttentionArgs d{};
  ops::cuda::AttentionArgs& a = d.attn;
  a.rows = get(o, "rows", 0);
  a.q_stride = get(o, "qStride", 1);
  a.heads = get(o, "heads", 1);
  a.kv_heads = get(o, "kvHeads", 1);
  a.head_dim = get(o, "headDim", 1);
  a.max_blocks = get(o, "maxBlocks", 1);
  a.block_size = get(o, "blockSize", 1);
  const int64_t seqs = get(o, "numSeqs", 1), blocks = get(o, "numBlocks", 1);
  a.max_context = get(o, "maxContext", 1);
  a.scale = FieldFinite(env, o, "decodeAttention", "scale");
  if (a.heads % a.kv_heads || !ops::cuda::DecodeAttentionSupports(a.head_dim) ||
      E(info, "(heads + 2 kvHeads) * headDim", {a.heads + 2 * a.kv_heads, a.head_dim}) > a.q_stride || a.q_stride % 8)
    ThrowTyped(env, kErrShape, "decodeAttention: heads must be a multiple of kvHeads, headDim 64, 128 or 256, qStride >= (heads + 2 kvHeads) * headDim and a multiple of 8");
  if (a.rows > seqs) ThrowTyped(env, kErrShape, "decodeAttention: one row per sequence");
  d.chunk = static_cast<int>(get(dd, "chunk", 16));
  if (d.chunk % 16 || d.chunk > 4096) ThrowTyped(env, kErrInvalidArgument, "decodeAttention: chunk must be a multiple of 16, at most 4096");
  d.max_splits = ops::cuda::DecodeAttentionSplits(a.max_context, d.chunk);
  d.fuse = static_cast<int>(get(dd, "fuse", 0));
  if (d.fuse > 1) ThrowTyped(env, kErrInvalidArgument, "decodeAttention: fuse must be 0 or 1");
  if (dd.Has("kvReady") && !dd.Get("kvReady").IsUndefined()) d.kv_ready = static_cast<int>(get(dd, "kvReady", 0));
  if (d.kv_ready > d.fuse) ThrowTyped(env, kErrInvalidArgument, "decodeAttention: kvReady must be 0 or 1, and 1 only with fuse");
  // stages (optional): the K/V ring's passes (2..4), 0 for direct loads; by default the launch's choice.
  d.stages = -1;
  if (dd.Has("stages") && !dd.Get("stages").IsUndefined()) {
    d.stages = static_cast<int>(get(dd, "stages", 0));
    if (!ops::cuda::DecodeAttentionStages(d.stages)) ThrowTyped(env, kErrInvalidArgument, "decodeAttention: stages must be 0, 2, 3 or 4");
  }
  // blocks (optional): blocks per (row, head); by default one wave of resident blocks in all.
  if (dd.Has("blocks") && !dd.Get("blocks").IsUndefined()) {
    d.blocks = static_cast<int>(get(dd, "blocks", 1));
    if (d.blocks > d.max_splits) ThrowTyped(env, kErrInvalidArgument, "decodeAttention: blocks must be at most ceil(maxContext / chunk)");
  }
  a.q = Ref<half>(info, 0, "qkv", E(info, "qkv (rows * qStride)", {a.rows, a.q_stride}), 16);
  const int64_t cache = E(info, "cache (numBlocks * blockSize * kvHeads * headDim)", {blocks, a.block_size, a.kv_heads, a.head_dim});
  a.k_cache = Ref<half>(info, 1, "kCache", cache, 16);
  a.v_cache = Ref<half>(info, 2, "vCache", cache, 16);
  a.block_tables = Ref<int32_t>(info, 3, "blockTables", E(info, "blockTables (numSeqs * maxBlocks)", {seqs, a.max_blocks}));
  a.seq_of_row = Ref<int32_t>(info, 4, "seqOfRow", a.rows);
  a.pos_of_row = Ref<int32_t>(info, 5, "posOfRow", a.rows);
  a.out = Ref<half>(info, 6, "out", E(info, "out (rows * heads * headDim)", {a.rows, a.heads, a.head_dim}), 2);
  const int64_t rh = E(info, "rows * heads", {a.rows, a.heads});
  d.partial = RefValue<float>(env, dd.Get("partial"), "decode.partial", E(info, "decode.partial (rows * heads * splits * (headDim + 2))", {rh, d.max_splits, a.head_dim + 2}));
  d.counters = RefValue<int32_t>(env, dd.Get("counters"), "decode.counters", rh);
  if (d.fuse) {
    const int64_t rope_rows = get(dd, "ropeRows", 1);
    if (rope_rows < a.max_context) ThrowTyped(env, kErrShape, "decodeAttention: the RoPE tables must cover maxContext positions");
    const int64_t table = E(info, "decode.cos (ropeRows * headDim / 2)", {rope_rows, a.head_dim / 2});
    d.cos_t = RefValue<float>(env, dd.Get("cos"), "decode.cos", table);
    d.sin_t = RefValue<float>(env, dd.Get("sin"), "decode.sin", table);
    d.slots = RefValue<int32_t>(env, dd.Get("slots"), "decode.slots", a.rows);
  }
  Check(env, ops::cuda::DecodeAttention(d, ArgStream(info, 9)), "decodeAttention");
  return env.Undefined();
}

// sample(logits (fp32), temperature, topK, topP, seeds, counters, out, rows, vocab, stream?)
Napi::Value Sample(const Napi::CallbackInfo& info) {
  ops::cuda::SampleArgs a{};
  a.rows = I(info, 7, "rows");
  a.vocab = I(info, 8, "vocab", 1);
  a.logits = Ref<float>(info, 0, "logits", E(info, "logits (rows * vocab)", {a.rows, a.vocab}));
  a.temperature = Ref<float>(info, 1, "temperature", a.rows);
  a.top_k = Ref<int32_t>(info, 2, "topK", a.rows);
  a.top_p = Ref<float>(info, 3, "topP", a.rows);
  a.seeds = Ref<uint32_t>(info, 4, "seeds", 2 * a.rows);
  a.counters = Ref<int32_t>(info, 5, "counters", a.rows);
  a.out = Ref<int32_t>(info, 6, "out", a.rows);
  Check(info.Env(), ops::cuda::Sample(a, ArgStream(info, 9)), "sample");
  return info.Env().Undefined();
}

// logprobs(logits (fp32), targets, out (fp32), rows, vocab, stream?)
Napi::Value Logprobs(const Napi::CallbackInfo& info) {
  int64_t rows = I(info, 3, "rows"), vocab = I(info, 4, "vocab", 1);
  auto l = Ref<float>(info, 0, "logits", E(info, "logits (rows * vocab)", {rows, vocab}));
  auto t = Ref<int32_t>(info, 1, "targets", rows);
  auto out = Ref<float>(info, 2, "out", rows);
  Check(info.Env(), ops::cuda::Logprobs(l, rows, vocab, t, out, ArgStream(info, 5)), "logprobs");
  return info.Env().Undefined();
}

// The current device's cuBLAS handle, or a typed error saying why there is none.
blas::Handle CurrentCublas(Napi::Env env) {
  int dev = 0;
  Check(env, cudaGetDevice(&dev), "cudaGetDevice");
  std::string why;
  blas::Handle h = blas::HandleFor(dev, &why);
  if (!h) ThrowTyped(env, kErrNoDevice, "cuBLAS is not available: " + why);
  return h;
}

// denseGemm(a, w, c, m, n, k, stream?): C[m, n] = A[m, k] W^T with W [n, k], fp16, fp32 accumulate (cuBLAS).
Napi::Value DenseGemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t m = I(info, 3, "m"), n = I(info, 4, "n", 1), k = I(info, 5, "k", 1);
  auto a = Ref<half>(info, 0, "a", E(info, "a (m * k)", {m, k}), 2);
  auto w = Ref<half>(info, 1, "w", E(info, "w (n * k)", {n, k}), 2);
  auto c = Ref<half>(info, 2, "c", E(info, "c (m * n)", {m, n}), 2);
  if (m == 0) return env.Undefined();
  blas::Handle h = CurrentCublas(env);
  int st = blas::Gemm(h, ArgStream(info, 6), false, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), a, w, true, c);
  if (st != 0) ThrowTyped(env, kErrCuda, "cublasGemmEx failed with status " + std::to_string(st));
  return env.Undefined();
}

// denseGemmF32(a, w, c, m, n, k, stream?): as denseGemm with fp32 C (the logits: sampling and
// log-probabilities read them without an fp16 rounding).
Napi::Value DenseGemmF32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t m = I(info, 3, "m"), n = I(info, 4, "n", 1), k = I(info, 5, "k", 1);
  auto a = Ref<half>(info, 0, "a", E(info, "a (m * k)", {m, k}), 2);
  auto w = Ref<half>(info, 1, "w", E(info, "w (n * k)", {n, k}), 2);
  auto c = Ref<float>(info, 2, "c", E(info, "c (m * n)", {m, n}), 4);
  if (m == 0) return env.Undefined();
  blas::Handle h = CurrentCublas(env);
  const blas::Api* api = blas::Load(nullptr);  // loaded: the handle came from it
  int st = api->set_stream(h, ArgStream(info, 6));
  const float one = 1.f, zero = 0.f;
  // Column-major view: C^T[n, m] = W[n, k] (as W^T's transpose) * A^T[k, m].
  if (st == 0)
    st = api->gemm_ex(h, blas::kOpT, blas::kOpN, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &one, w, blas::kR16F,
                      static_cast<int>(k), a, blas::kR16F, static_cast<int>(k), &zero, c, blas::kR32F, static_cast<int>(n),
                      blas::kCompute32F, blas::kGemmDefault);
  if (st != 0) ThrowTyped(env, kErrCuda, "cublasGemmEx (fp32 out) failed with status " + std::to_string(st));
  return env.Undefined();
}

// ---- CUDA graphs: capture the ops queued on a stream, replay them with one launch ----------

class Graph : public Napi::ObjectWrap<Graph> {
 public:
  static EnvConstructor ctor;
  static void Init(Napi::Env env, Napi::Object target) {
    Napi::Function f = DefineClass(env, "CudaGraph", {InstanceMethod<&Graph::Launch>("launch"), InstanceMethod<&Graph::Destroy>("destroy")});
    ctor.Set(env, f);
    target.Set("CudaGraph", f);
  }
  explicit Graph(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Graph>(info) {}
  ~Graph() override { Release(); }
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;

 private:
  void Release() {
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    exec = nullptr;
    graph = nullptr;
  }
  Napi::Value Launch(const Napi::CallbackInfo& info) {
    if (!exec) ThrowTyped(info.Env(), kErrDisposed, "CudaGraph was used after it was destroyed");
    Check(info.Env(), cudaGraphLaunch(exec, ArgStream(info, 0)), "cudaGraphLaunch");
    return info.Env().Undefined();
  }
  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    Release();
    return info.Env().Undefined();
  }
};
EnvConstructor Graph::ctor;

// beginCapture(stream): the stream must be a Stream (the legacy default stream cannot be captured).
Napi::Value BeginCapture(const Napi::CallbackInfo& info) {
  cudaStream_t s = ArgStream(info, 0);
  if (!s) ThrowTyped(info.Env(), kErrInvalidArgument, "beginCapture needs a Stream");
  Check(info.Env(), cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
  return info.Env().Undefined();
}

// endCapture(stream) -> CudaGraph (instantiated); a failed capture throws and leaves the stream usable.
Napi::Value EndCapture(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cudaStream_t s = ArgStream(info, 0);
  cudaGraph_t g = nullptr;
  cudaError_t e = cudaStreamEndCapture(s, &g);
  if (e != cudaSuccess) {
    cudaGetLastError();
    if (g) cudaGraphDestroy(g);
    ThrowCuda(env, e, "cudaStreamEndCapture");
  }
  cudaGraphExec_t exec = nullptr;
  e = cudaGraphInstantiate(&exec, g, 0);
  if (e != cudaSuccess) {
    cudaGetLastError();
    cudaGraphDestroy(g);
    ThrowCuda(env, e, "cudaGraphInstantiate");
  }
  Napi::Object obj = Graph::ctor.Get(env)->New({});
  Graph* gr = Graph::Unwrap(obj);
  gr->graph = g;
  gr->exec = exec;
  return obj;
}

// attentionSmemLimit(): the most dynamic shared memory the attention kernel may use (bytes).
Napi::Value AttentionSmemLimit(const Napi::CallbackInfo& info) {
  int dev = 0, v = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  cudaGetLastError();
  return Napi::Number::New(info.Env(), v);
}
#endif

void InitEngineCuda(Napi::Env env, Napi::Object exports) {
  Napi::Object o = Napi::Object::New(env);
#ifdef MARLIN_WITH_CUDA
  o.Set("embedding", Napi::Function::New<Embedding>(env, "embedding"));
  o.Set("rmsnorm", Napi::Function::New<RmsNorm>(env, "rmsnorm"));
  o.Set("addRmsnorm", Napi::Function::New<AddRmsNorm>(env, "addRmsnorm"));
  o.Set("rope", Napi::Function::New<Rope>(env, "rope"));
  o.Set("storeKv", Napi::Function::New<StoreKv>(env, "storeKv"));
  o.Set("ropeStoreKv", Napi::Function::New<RopeStoreKv>(env, "ropeStoreKv"));
  o.Set("siluMul", Napi::Function::New<SiluMul>(env, "siluMul"));
  o.Set("addBias", Napi::Function::New<AddBias>(env, "addBias"));
  o.Set("fillUniform", Napi::Function::New<FillUniform>(env, "fillUniform"));
  o.Set("gatherRows", Napi::Function::New<GatherRows>(env, "gatherRows"));
  o.Set("copy2d", Napi::Function::New<Copy2d>(env, "copy2d"));
  o.Set("pagedAttention", Napi::Function::New<PagedAttention>(env, "pagedAttention"));
  o.Set("sample", Napi::Function::New<Sample>(env, "sample"));
  o.Set("logprobs", Napi::Function::New<Logprobs>(env, "logprobs"));
  o.Set("decodeAttention", Napi::Function::New<DecodeAttention>(env, "decodeAttention"));
  o.Set("denseGemm", Napi::Function::New<DenseGemm>(env, "denseGemm"));
  o.Set("denseGemmF32", Napi::Function::New<DenseGemmF32>(env, "denseGemmF32"));
  o.Set("beginCapture", Napi::Function::New<BeginCapture>(env, "beginCapture"));
  o.Set("endCapture", Napi::Function::New<EndCapture>(env, "endCapture"));
  o.Set("attentionSmemLimit", Napi::Function::New<AttentionSmemLimit>(env, "attentionSmemLimit"));
  Graph::Init(env, o);
  o.Set("available", Napi::Boolean::New(env, true));
#else
  o.Set("available", Napi::Boolean::New(env, false));
#endif
  exports.Set("engineCuda", o);
}

}  // namespace
MARLIN_MODULE(engine_cuda, InitEngineCuda);
}  // namespace marlin
