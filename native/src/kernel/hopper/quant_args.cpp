#include "kernel/hopper/quant_args.h"

#include "common/args.h"
#include "common/device_buffer.h"
#include "common/errors.h"

namespace marlin {

namespace {
}  // namespace

QuantCall ArgQuantCall(const Napi::CallbackInfo& info, const std::function<std::string(int, int, int, WeightKind)>& refuse) {
  Napi::Env env = info.Env();
  const int64_t m = ArgInt(info, 10, "m", 1, kMaxDim);
  const int64_t n = ArgInt(info, 11, "n", 64, kMaxDim);
  const int64_t k = ArgInt(info, 12, "k", 128, kMaxDim);
  const int64_t group = ArgInt(info, 13, "groupSize", -1, kMaxDim);
  const int64_t act = ArgInt(info, 14, "act", 0, 1);
  const int64_t weight = ArgInt(info, 15, "weight", 0, 2);
  if (group == 0 || group < -1) ThrowTyped(env, kErrInvalidArgument, "groupSize must be -1 or positive");
  if (group != -1 && group > k) ThrowTyped(env, kErrShape, "group size " + std::to_string(group) + " exceeds k");
  const std::string why = refuse(static_cast<int>(n), static_cast<int>(k), static_cast<int>(group), static_cast<WeightKind>(weight));
  if (!why.empty()) ThrowTyped(env, kErrShape, why);
  QuantCall q{};
  q.bits = weight == 2 ? 8 : 4;
  const bool per_channel = group == -1 || group >= k;
  q.groups = per_channel ? 1 : static_cast<size_t>(k / group);
  GemmArgs& g = q.g;
  g.act = static_cast<ActType>(act);
  g.weight = static_cast<WeightKind>(weight);
  g.m = static_cast<int>(m);
  g.n = static_cast<int>(n);
  g.k = static_cast<int>(k);
  g.group_size = static_cast<int>(group);
  const int64_t a_off = ArgByteOffset(info, 1, "aOffset");
  const int64_t c_off = ArgByteOffset(info, 8, "cOffset");
  g.a = DevicePtr(info, 0, "a", a_off, size_t(m) * k * 2, 16);
  g.b = DevicePtr(info, 2, "qweight", 0, size_t(k) * n * q.bits / 8, 16);
  g.scales = DevicePtr(info, 3, "scales", 0, q.groups * n * 2, 16);
  if (g.weight == WeightKind::kU4Zp) {
    if (IsAbsent(info, 4)) ThrowTyped(env, kErrInvalidArgument, "zero points are required for weight kind u4 with zero points");
    g.zeros = DevicePtr(info, 4, "zeros", 0, q.groups * n * q.bits / 8, 16);
  } else if (!IsAbsent(info, 4)) {
    ThrowTyped(env, kErrInvalidArgument, "zeros given for a symmetric weight kind");
  }
  if (!IsAbsent(info, 5)) g.perm = static_cast<const int32_t*>(DevicePtr(info, 5, "perm", 0, size_t(k) * 4, 16));
  if (!IsAbsent(info, 6)) g.bias = DevicePtr(info, 6, "bias", 0, size_t(n) * 2, 16);
  g.c = DevicePtr(info, 7, "c", c_off, size_t(m) * n * 2, 16);
  q.device = DeviceBuffer::From(env, info[0], "a")->device();
  RequireSameDevice(info, q.device, {{2, "qweight"}, {3, "scales"}, {4, "zeros"}, {5, "perm"}, {6, "bias"}, {7, "c"}, {9, "workspace"}});
  return q;
}

}  // namespace marlin
