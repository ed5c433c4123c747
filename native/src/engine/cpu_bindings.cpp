// JS bindings of the engine's CPU ops: native().engineCpu.<op>(...). Every argument is checked
// (types, lengths, index ranges) before anything is written. Dimensions are at most kMaxDim and
// every length is a product computed by Elements(), which refuses instead of wrapping, so no
// product can wrap to a small number that an empty array passes.
#include <string>

#include "common/args.h"
#include "common/errors.h"
#include "common/module.h"
#include "common/parallel.h"
#include "engine/cpu_ops.h"
#include "engine/cpu_simd.h"

namespace marlin {
namespace {

float* F32(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t n) {
  return static_cast<float*>(ArgTyped(info, i, name, napi_float32_array, static_cast<size_t>(n)).data);
}
int32_t* I32(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t n) {
  return static_cast<int32_t*>(ArgTyped(info, i, name, napi_int32_array, static_cast<size_t>(n)).data);
}
int64_t Dim(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo = 0) {
  return ArgInt(info, i, name, lo, kMaxDim);
}
void CheckIndices(Napi::Env env, const int32_t* v, int64_t n, int64_t lo, int64_t hi, const char* name) {
  for (int64_t i = 0; i < n; i++)
    if (v[i] < lo || v[i] >= hi)
      ThrowTyped(env, kErrInvalidArgument,
                 std::string(name) + "[" + std::to_string(i) + "] = " + std::to_string(v[i]) + " is outside [" +
                     std::to_string(lo) + ", " + std::to_string(hi) + ")");
}

// The floats PackLinearF32 writes for w[n, k] (n rounded up to whole 16-column panels).
int64_t PackedSize(Napi::Env env, int64_t n, int64_t k) { return Elements(env, "packed (n rounded up to 16) * k", {(n + 15) / 16 * 16, k}); }

// packLinear(w, n, k, out): w[n, k] -> the panel layout linear() takes (packedLinearSize(n, k) floats)
Napi::Value PackLinear(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t n = Dim(info, 1, "n", 1), k = Dim(info, 2, "k", 1);
  float* w = F32(info, 0, "w", Elements(env, "w (n * k)", {n, k}));
  float* out = F32(info, 3, "out", PackedSize(env, n, k));
  ops::PackLinearF32(w, n, k, out);
  return env.Undefined();
}

Napi::Value PackedLinearSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(PackedSize(info.Env(), Dim(info, 0, "n", 1), Dim(info, 1, "k", 1))));
}

// linear(x, packedW, bias | null, out, m, n, k)
Napi::Value Linear(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t m = Dim(info, 4, "m"), n = Dim(info, 5, "n", 1), k = Dim(info, 6, "k", 1);
  float* x = F32(info, 0, "x", Elements(env, "x (m * k)", {m, k}));
  float* w = F32(info, 1, "packedW", PackedSize(env, n, k));
  float* bias = IsAbsent(info, 2) ? nullptr : F32(info, 2, "bias", n);
  float* out = F32(info, 3, "out", Elements(env, "out (m * n)", {m, n}));
  ops::LinearF32(x, w, bias, out, m, n, k);
  return env.Undefined();
}

// embedding(ids, table, vocab, hidden, out)
Napi::Value Embedding(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t vocab = Dim(info, 2, "vocab", 1), hidden = Dim(info, 3, "hidden", 1);
  HostView ids = ArgTyped(info, 0, "ids", napi_int32_array, 0);
  int64_t t = static_cast<int64_t>(ids.elements);
  float* table = F32(info, 1, "table", Elements(env, "table (vocab * hidden)", {vocab, hidden}));
  float* out = F32(info, 4, "out", Elements(env, "out (ids * hidden)", {t, hidden}));
  CheckIndices(env, static_cast<int32_t*>(ids.data), t, 0, vocab, "ids");
  ops::EmbeddingF32(static_cast<int32_t*>(ids.data), t, table, hidden, out);
  return env.Undefined();
}

// The eps of an RMS norm: finite and >= 0 (a negative or NaN eps makes every output NaN).
float Eps(const Napi::CallbackInfo& info, size_t i) { return static_cast<float>(ArgFinite(info, i, "eps", 0, 1)); }

// rmsnorm(x, weight, eps, rows, hidden, out)
Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t rows = Dim(info, 3, "rows"), hidden = Dim(info, 4, "hidden", 1);
  const int64_t count = Elements(env, "x (rows * hidden)", {rows, hidden});
  float* x = F32(info, 0, "x", count);
  float* w = F32(info, 1, "weight", hidden);
  float eps = Eps(info, 2);
  float* out = F32(info, 5, "out", count);
  ops::RmsNormF32(x, w, eps, rows, hidden, out);
  return env.Undefined();
}

// addRmsnorm(x, residual, weight, eps, rows, hidden): residual += x; x = rmsnorm(residual)
Napi::Value AddRmsNorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t rows = Dim(info, 4, "rows"), hidden = Dim(info, 5, "hidden", 1);
  const int64_t count = Elements(env, "x (rows * hidden)", {rows, hidden});
  float* x = F32(info, 0, "x", count);
  float* res = F32(info, 1, "residual", count);
  float* w = F32(info, 2, "weight", hidden);
  float eps = Eps(info, 3);
  ops::AddRmsNormF32(x, res, w, eps, rows, hidden);
  return env.Undefined();
}

// rope(x, rows, stride, heads, headDim, rotDim, positions, cos, sin, maxPositions)
Napi::Value Rope(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t rows = Dim(info, 1, "rows"), stride = Dim(info, 2, "stride", 1), heads = Dim(info, 3, "heads", 1);
  int64_t head_dim = Dim(info, 4, "headDim", 2), rot = Dim(info, 5, "rotDim", 2), maxp = Dim(info, 9, "maxPositions", 1);
  if (rot > head_dim || rot % 2) ThrowTyped(env, kErrInvalidArgument, "rotDim must be even and at most headDim");
  if (heads * head_dim > stride) ThrowTyped(env, kErrShape, "heads * headDim exceeds the row stride");
  float* x = F32(info, 0, "x", Elements(env, "x (rows * stride)", {rows, stride}));
  int32_t* pos = I32(info, 6, "positions", rows);
  const int64_t table = Elements(env, "cos/sin (maxPositions * rotDim / 2)", {maxp, rot / 2});
  float* c = F32(info, 7, "cos", table);
  float* s = F32(info, 8, "sin", table);
  CheckIndices(env, pos, rows, 0, maxp, "positions");
  ops::RopeF32(x, rows, stride, heads, head_dim, rot, pos, c, s);
  return env.Undefined();
}

// siluMul(gu, rows, inter, out)
Napi::Value SiluMul(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t rows = Dim(info, 1, "rows"), inter = Dim(info, 2, "inter", 1);
  float* gu = F32(info, 0, "gu", Elements(env, "gu (rows * 2 * inter)", {rows, 2, inter}));
  float* out = F32(info, 3, "out", Elements(env, "out (rows * inter)", {rows, inter}));
  ops::SiluMulF32(gu, rows, inter, out);
  return env.Undefined();
}

// storeKv(qkv, rows, stride, kOffset, vOffset, kvDim, slots, kCache, vCache)
Napi::Value StoreKv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t rows = Dim(info, 1, "rows"), stride = Dim(info, 2, "stride", 1), ko = Dim(info, 3, "kOffset"),
          vo = Dim(info, 4, "vOffset"), kv = Dim(info, 5, "kvDim", 1);
  if (ko + kv > stride || vo + kv > stride) ThrowTyped(env, kErrShape, "k/v columns exceed the row stride");
  float* qkv = F32(info, 0, "qkv", Elements(env, "qkv (rows * stride)", {rows, stride}));
  int32_t* slots = I32(info, 6, "slots", rows);
  HostView kc = ArgTyped(info, 7, "kCache", napi_float32_array, 0);
  float* vc = F32(info, 8, "vCache", static_cast<int64_t>(kc.elements));
  int64_t nslots = static_cast<int64_t>(kc.elements) / kv;
  CheckIndices(env, slots, rows, -1, nslots, "slots");
  ops::StoreKvF32(qkv, rows, stride, ko, vo, kv, slots, static_cast<float*>(kc.data), vc);
  return env.Undefined();
}

// pagedAttention(q, rows, qStride, heads, kvHeads, headDim, kCache, vCache, blockTables, maxBlocks,
//                blockSize, seqOfRow, posOfRow, scale, out)
Napi::Value PagedAttention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ops::PagedAttentionArgs a{};
  a.rows = Dim(info, 1, "rows");
  a.q_stride = Dim(info, 2, "qStride", 1);
  a.heads = Dim(info, 3, "heads", 1);
  a.kv_heads = Dim(info, 4, "kvHeads", 1);
  a.head_dim = Dim(info, 5, "headDim", 1);
  a.max_blocks = Dim(info, 9, "maxBlocks", 1);
  a.block_size = Dim(info, 10, "blockSize", 1);
  if (a.heads % a.kv_heads || a.heads / a.kv_heads > 64)
    ThrowTyped(env, kErrInvalidArgument, "heads must be a multiple of kvHeads, at most 64 per KV head");
  if (a.heads * a.head_dim > a.q_stride) ThrowTyped(env, kErrShape, "heads * headDim exceeds qStride");
  a.q = F32(info, 0, "q", Elements(env, "q (rows * qStride)", {a.rows, a.q_stride}));
  HostView kc = ArgTyped(info, 6, "kCache", napi_float32_array, 0);
  a.k_cache = static_cast<float*>(kc.data);
  a.v_cache = F32(info, 7, "vCache", static_cast<int64_t>(kc.elements));
  const int64_t block_elems = Elements(env, "one cache block (kvHeads * headDim * blockSize)", {a.kv_heads, a.head_dim, a.block_size});
  const int64_t nblocks = static_cast<int64_t>(kc.elements) / block_elems;
  HostView bt = ArgTyped(info, 8, "blockTables", napi_int32_array, 0);
  const int64_t seqs = static_cast<int64_t>(bt.elements) / a.max_blocks;
  a.block_tables = static_cast<int32_t*>(bt.data);
  a.seq_of_row = I32(info, 11, "seqOfRow", a.rows);
  a.pos_of_row = I32(info, 12, "posOfRow", a.rows);
  a.scale = static_cast<float>(ArgFinite(info, 13, "scale", -1e30, 1e30));
  a.out = F32(info, 14, "out", Elements(env, "out (rows * heads * headDim)", {a.rows, a.heads, a.head_dim}));
  CheckIndices(env, a.seq_of_row, a.rows, 0, seqs, "seqOfRow");
  CheckIndices(env, a.pos_of_row, a.rows, 0, Elements(env, "maxBlocks * blockSize", {a.max_blocks, a.block_size}), "posOfRow");
  // Every block a row reads must exist.
  for (int64_t t = 0; t < a.rows; t++) {
    const int32_t* table = a.block_tables + static_cast<int64_t>(a.seq_of_row[t]) * a.max_blocks;
    const int64_t used = a.pos_of_row[t] / a.block_size + 1;
    CheckIndices(env, table, used, 0, nblocks, "blockTables");
  }
  ops::PagedAttentionF32(a);
  return env.Undefined();
}

// sample(logits, rows, vocab, temperature, topK, topP, seeds, counters, out)
Napi::Value Sample(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ops::SampleArgs a{};
  a.rows = Dim(info, 1, "rows");
  a.vocab = Dim(info, 2, "vocab", 1);
  a.logits = F32(info, 0, "logits", Elements(env, "logits (rows * vocab)", {a.rows, a.vocab}));
  a.temperature = F32(info, 3, "temperature", a.rows);
  a.top_k = I32(info, 4, "topK", a.rows);
  a.top_p = F32(info, 5, "topP", a.rows);
  a.seeds = static_cast<uint32_t*>(ArgTyped(info, 6, "seeds", napi_uint32_array, static_cast<size_t>(a.rows * 2)).data);
  a.counters = I32(info, 7, "counters", a.rows);
  a.out = I32(info, 8, "out", a.rows);
  ops::SampleF32(a);
  return env.Undefined();
}

// logprobs(logits, rows, vocab, targets, out: Float64Array)
Napi::Value Logprobs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t rows = Dim(info, 1, "rows"), vocab = Dim(info, 2, "vocab", 1);
  float* l = F32(info, 0, "logits", Elements(env, "logits (rows * vocab)", {rows, vocab}));
  int32_t* tg = I32(info, 3, "targets", rows);
  double* out = static_cast<double*>(ArgTyped(info, 4, "out", napi_float64_array, static_cast<size_t>(rows)).data);
  CheckIndices(env, tg, rows, 0, vocab, "targets");
  ops::LogprobsF32(l, rows, vocab, tg, out);
  return env.Undefined();
}

// setThreadShare(n): the CPU ops called from this JS thread use at most n threads (0: every core).
// Returns the previous share. Results do not depend on it (every output is one thread's work).
Napi::Value SetThreadShare(const Napi::CallbackInfo& info) {
  const unsigned prev = ThreadShare();
  ThreadShare() = static_cast<unsigned>(ArgInt(info, 0, "threads", 0, 4096));
  return Napi::Number::New(info.Env(), prev);
}

void InitEngineCpu(Napi::Env env, Napi::Object exports) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("linear", Napi::Function::New<Linear>(env, "linear"));
  o.Set("packLinear", Napi::Function::New<PackLinear>(env, "packLinear"));
  o.Set("maxDim", Napi::Number::New(env, static_cast<double>(kMaxDim)));
  o.Set("packedLinearSize", Napi::Function::New<PackedLinearSize>(env, "packedLinearSize"));
  o.Set("embedding", Napi::Function::New<Embedding>(env, "embedding"));
  o.Set("rmsnorm", Napi::Function::New<RmsNorm>(env, "rmsnorm"));
  o.Set("addRmsnorm", Napi::Function::New<AddRmsNorm>(env, "addRmsnorm"));
  o.Set("rope", Napi::Function::New<Rope>(env, "rope"));
  o.Set("siluMul", Napi::Function::New<SiluMul>(env, "siluMul"));
  o.Set("storeKv", Napi::Function::New<StoreKv>(env, "storeKv"));
  o.Set("pagedAttention", Napi::Function::New<PagedAttention>(env, "pagedAttention"));
  o.Set("sample", Napi::Function::New<Sample>(env, "sample"));
  o.Set("logprobs", Napi::Function::New<Logprobs>(env, "logprobs"));
  o.Set("setThreadShare", Napi::Function::New<SetThreadShare>(env, "setThreadShare"));
  o.Set("avx2", Napi::Boolean::New(env, ops::HasAvx2Fma()));
  exports.Set("engineCpu", o);
}

}  // namespace
MARLIN_MODULE(engine_cpu, InitEngineCpu);
}  // namespace marlin
