// Dense attention and RoPE: argument checks, output allocation, enqueue. The kernels are in
// cuda/attention/; shapes and semantics are documented in attention.h, rope.h and lib/attention.ts.
#include <cmath>
#include <string>
#include <vector>

#include "../attention/attention.h"
#include "../attention/rope.h"
#include "../core/launch.h"
#include "../core/tensor_ops.h"
#include "addon_data.h"
#include "args.h"
#include "binding_checks.h"
#include "bindings.h"
#include "tensor_handle.h"

namespace sparq {
namespace {

void require_head_dim(Napi::Env env, const std::string& op, Device dev, int64_t D) {
  if (dev.is_cuda() && !cuda_head_dim_supported(D))
    throw_error(env, Code::unsupported, op + ": head dim D = " + std::to_string(D) + " is not supported on CUDA (64, 128 or 256)");
  if (D > kCpuMaxHeadDim)
    throw_error(env, Code::unsupported, op + ": head dim D = " + std::to_string(D) + " is not supported (at most " +
                                            std::to_string(kCpuMaxHeadDim) + ")");
}

// sdpa(op, q, k, v, kvLengths | null, causal, windowLeft, windowRight, scale | undefined, returnLse)
// -> [out, lse | null]
Napi::Value Sdpa(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "attention.sdpa", "op");
  const TensorView& q = arg_tensor(info[1], op, "q");
  const TensorView& k = arg_tensor(info[2], op, "k");
  const TensorView& v = arg_tensor(info[3], op, "v");
  require_float(env, op, "q", q);
  if (q.shape.size() != 4) throw_error(env, Code::shape, op + ": q must have shape [B, Hq, Tq, D], got " + shape_str(q.shape));
  const int64_t B = q.shape[0], Hq = q.shape[1], Tq = q.shape[2], D = q.shape[3];
  require_shape(env, op, "k", k, {B, -1, -1, D}, "[B, Hk, Tk, D]", "B = " + std::to_string(B) + ", D = " + std::to_string(D) + " (from q)");
  const int64_t Hk = k.shape[1], Tk = k.shape[2];
  require_shape(env, op, "v", v, {B, Hk, Tk, D}, "[B, Hk, Tk, D]", "the shape of k, " + shape_str(k.shape));
  require_same_device(env, op, "k", k, "q", q);
  require_same_device(env, op, "v", v, "q", q);
  require_dtype(env, op, "k", k, q.dtype, " (the dtype of q)");
  require_dtype(env, op, "v", v, q.dtype, " (the dtype of q)");
  if (Hk == 0 || Hq % Hk != 0)
    throw_error(env, Code::shape, op + ": the query heads Hq = " + std::to_string(Hq) + " must be a multiple of the KV heads Hk = " +
                                      std::to_string(Hk));
  require_head_dim(env, op, q.device(), D);
  SdpaParams p;
  Keep keep{q.storage, k.storage, v.storage};
  if (!info[4].IsNull() && !info[4].IsUndefined()) {
    const TensorView& len = arg_tensor(info[4], op, "kvLengths");
    require_dtype(env, op, "kvLengths", len, DType::i32, "");
    require_shape(env, op, "kvLengths", len, {B}, "[B]", "B = " + std::to_string(B) + " (from q)");
    require_same_device(env, op, "kvLengths", len, "q", q);
    p.kv_lengths = static_cast<const int32_t*>(len.data());
    keep.push_back(len.storage);
  }
  if (!info[5].IsBoolean()) throw_error(env, Code::invalid_arg_type, op + ": causal must be a boolean, got " + describe(info[5]));
  p.causal = info[5].As<Napi::Boolean>().Value();
  const int64_t big = int64_t{1} << 53;
  p.window_left = arg_integer(info[6], op, "window[0]", -1, big);
  p.window_right = arg_integer(info[7], op, "window[1]", -1, big);
  p.scale = arg_scale(info[8], op, D);
  bool want_lse = info[9].ToBoolean().Value();

  TensorView out = alloc(env, op, q.device(), q.dtype, {B, Hq, Tq, D});
  TensorView lse;
  if (want_lse) lse = alloc(env, op, q.device(), DType::f32, {B, Hq, Tq});
  p.q = q.data();
  p.k = k.data();
  p.v = v.data();
  p.out = out.data();
  p.lse = want_lse ? static_cast<float*>(lse.data()) : nullptr;
  p.dtype = q.dtype;
  p.B = B; p.Hq = Hq; p.Hk = Hk; p.Tq = Tq; p.Tk = Tk; p.D = D;
  p.error_word = error_word_for(env, op, q.device());
  keep.push_back(out.storage);
  if (want_lse) keep.push_back(lse.storage);
  check(env, op, launch("attention.sdpa", q.device(), std::move(keep), [p](ThreadPool& pool) { return sdpa_cpu(p, pool); },
                        [p](cudaStream_t s) { return SPARQ_CUDA_CALL(sdpa_cuda(p, s)); }));
  return out_and_lse(env, std::move(out), want_lse ? &lse : nullptr);
}

// decode(op, q, kCache, vCache, lengths, scale | undefined, returnLse, numSplits) -> [out, lse | null]
Napi::Value Decode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "attention.decode", "op");
  const TensorView& q = arg_tensor(info[1], op, "q");
  const TensorView& kc = arg_tensor(info[2], op, "kCache");
  const TensorView& vc = arg_tensor(info[3], op, "vCache");
  const TensorView& len = arg_tensor(info[4], op, "lengths");
  require_float(env, op, "q", q);
  if (q.shape.size() != 3) throw_error(env, Code::shape, op + ": q must have shape [B, Hq, D], got " + shape_str(q.shape));
  const int64_t B = q.shape[0], Hq = q.shape[1], D = q.shape[2];
  require_shape(env, op, "kCache", kc, {B, -1, -1, D}, "[B, Hk, Tmax, D]", "B = " + std::to_string(B) + ", D = " + std::to_string(D) + " (from q)");
  const int64_t Hk = kc.shape[1], Tmax = kc.shape[2];
  require_shape(env, op, "vCache", vc, {B, Hk, Tmax, D}, "[B, Hk, Tmax, D]", "the shape of kCache, " + shape_str(kc.shape));
  require_shape(env, op, "lengths", len, {B}, "[B]", "B = " + std::to_string(B) + " (from q)");
  require_dtype(env, op, "kCache", kc, q.dtype, " (the dtype of q)");
  require_dtype(env, op, "vCache", vc, q.dtype, " (the dtype of q)");
  require_dtype(env, op, "lengths", len, DType::i32, "");
  require_same_device(env, op, "kCache", kc, "q", q);
  require_same_device(env, op, "vCache", vc, "q", q);
  require_same_device(env, op, "lengths", len, "q", q);
  if (Hk == 0 || Hq % Hk != 0)
    throw_error(env, Code::shape, op + ": the query heads Hq = " + std::to_string(Hq) + " must be a multiple of the KV heads Hk = " +
                                      std::to_string(Hk));
  require_head_dim(env, op, q.device(), D);
  DecodeParams p;
  p.scale = arg_scale(info[5], op, D);
  bool want_lse = info[6].ToBoolean().Value();
  p.num_splits = static_cast<int>(arg_integer(info[7], op, "splits", 0, 1024));
  TensorView out = alloc(env, op, q.device(), q.dtype, {B, Hq, D});
  TensorView lse;
  if (want_lse) lse = alloc(env, op, q.device(), DType::f32, {B, Hq});
  p.q = q.data();
  p.k_cache = kc.data();
  p.v_cache = vc.data();
  p.lengths = static_cast<const int32_t*>(len.data());
  p.out = out.data();
  p.lse = want_lse ? static_cast<float*>(lse.data()) : nullptr;
  p.dtype = q.dtype;
  p.B = B; p.Hq = Hq; p.Hk = Hk; p.Tmax = Tmax; p.D = D;
  p.error_word = error_word_for(env, op, q.device());
  Keep keep{q.storage, kc.storage, vc.storage, len.storage, out.storage};
  if (want_lse) keep.push_back(lse.storage);
  check(env, op, launch("attention.decode", q.device(), std::move(keep), [p](ThreadPool& pool) { return decode_cpu(p, pool); },
                        [p](cudaStream_t s) { return SPARQ_CUDA_CALL(decode_cuda(p, s)); }));
  return out_and_lse(env, std::move(out), want_lse ? &lse : nullptr);
}

// mergeStates(op, outs: NativeTensor[], lses: NativeTensor[]) -> [out, lse]
Napi::Value MergeStates(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "attention.mergeStates", "op");
  if (!info[1].IsArray() || !info[2].IsArray())
    throw_error(env, Code::invalid_arg_type, op + ": parts must be an array of { out, lse }, got " + describe(info[1]));
  Napi::Array outs = info[1].As<Napi::Array>(), lses = info[2].As<Napi::Array>();
  uint32_t n = outs.Length();
  if (n == 0 || lses.Length() != n)
    throw_error(env, Code::invalid_arg_value, op + ": parts must hold at least one { out, lse }, got " + std::to_string(n));
  MergeParams p;
  Keep keep;
  const TensorView* first = nullptr;
  std::vector<int64_t> row_shape;
  for (uint32_t i = 0; i < n; ++i) {
    std::string on = "parts[" + std::to_string(i) + "].out", ln = "parts[" + std::to_string(i) + "].lse";
    const TensorView& o = arg_tensor(outs.Get(i), op, on.c_str());
    const TensorView& l = arg_tensor(lses.Get(i), op, ln.c_str());
    if (!first) {
      require_float(env, op, on.c_str(), o);
      if (o.shape.empty()) throw_error(env, Code::shape, op + ": " + on + " must have at least one dimension (the last is D), got []");
      first = &o;
      row_shape.assign(o.shape.begin(), o.shape.end() - 1);
    }
    require_shape(env, op, on.c_str(), o, first->shape, shape_str(first->shape), "the shape of parts[0].out");
    require_dtype(env, op, on.c_str(), o, first->dtype, " (the dtype of parts[0].out)");
    require_same_device(env, op, on.c_str(), o, "parts[0].out", *first);
    require_shape(env, op, ln.c_str(), l, row_shape, shape_str(row_shape), "the shape of parts[0].out without its last dimension");
    require_dtype(env, op, ln.c_str(), l, DType::f32, "");
    require_same_device(env, op, ln.c_str(), l, "parts[0].out", *first);
    p.outs.push_back(o.data());
    p.lses.push_back(static_cast<const float*>(l.data()));
    keep.push_back(o.storage);
    keep.push_back(l.storage);
  }
  TensorView out = alloc(env, op, first->device(), first->dtype, first->shape);
  TensorView lse = alloc(env, op, first->device(), DType::f32, row_shape);
  p.out = out.data();
  p.lse = static_cast<float*>(lse.data());
  p.dtype = first->dtype;
  p.D = first->shape.back();
  p.rows = p.D ? first->numel() / p.D : 0;
  keep.push_back(out.storage);
  keep.push_back(lse.storage);
  check(env, op, launch("attention.mergeStates", first->device(), std::move(keep), [p](ThreadPool& pool) { return merge_cpu(p, pool); },
                        [p](cudaStream_t s) { return SPARQ_CUDA_CALL(merge_cuda(p, s)); }));
  return out_and_lse(env, std::move(out), &lse);
}

// rope(op, x, positions | null, offset, base, interleaved, rotaryDim | undefined) -> out
Napi::Value Rope(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "rope", "op");
  const TensorView& x = arg_tensor(info[1], op, "x");
  require_float(env, op, "x", x);
  if (x.shape.size() != 4) throw_error(env, Code::shape, op + ": x must have shape [B, H, T, D], got " + shape_str(x.shape));
  const int64_t B = x.shape[0], H = x.shape[1], T = x.shape[2], D = x.shape[3];
  RopeParams p;
  Keep keep{x.storage};
  if (!info[2].IsNull() && !info[2].IsUndefined()) {
    const TensorView& pos = arg_tensor(info[2], op, "positions");
    require_dtype(env, op, "positions", pos, DType::i32, "");
    require_same_device(env, op, "positions", pos, "x", x);
    std::string from_x = "B = " + std::to_string(B) + ", T = " + std::to_string(T) + " (from x)";
    p.positions_per_batch = pos.shape.size() == 2;
    if (p.positions_per_batch) require_shape(env, op, "positions", pos, {B, T}, "[T] or [B, T]", from_x);
    else require_shape(env, op, "positions", pos, {T}, "[T] or [B, T]", from_x);
    p.positions = static_cast<const int32_t*>(pos.data());
    keep.push_back(pos.storage);
  }
  p.offset = arg_integer(info[3], op, "offset", 0, int64_t{1} << 53);
  p.base = arg_number(info[4], op, "base");
  if (!(p.base > 0)) throw_error(env, Code::invalid_arg_value, op + ": base must be > 0, got " + std::to_string(p.base));
  if (!info[5].IsBoolean()) throw_error(env, Code::invalid_arg_type, op + ": interleaved must be a boolean, got " + describe(info[5]));
  p.interleaved = info[5].As<Napi::Boolean>().Value();
  p.rotary_dim = info[6].IsUndefined() || info[6].IsNull() ? D : arg_integer(info[6], op, "rotaryDim", 0, D);
  if (p.rotary_dim < 2 || p.rotary_dim % 2 != 0)
    throw_error(env, Code::invalid_arg_value, op + ": rotaryDim must be even and in [2, D = " + std::to_string(D) + "], got " +
                                                  std::to_string(p.rotary_dim));
  TensorView out = alloc(env, op, x.device(), x.dtype, x.shape);
  p.x = x.data();
  p.out = out.data();
  p.dtype = x.dtype;
  p.B = B; p.H = H; p.T = T; p.D = D;
  p.error_word = error_word_for(env, op, x.device());
  keep.push_back(out.storage);
  check(env, op, launch("rope", x.device(), std::move(keep), [p](ThreadPool& pool) { return rope_cpu(p, pool); },
                        [p](cudaStream_t s) { return SPARQ_CUDA_CALL(rope_cuda(p, s)); }));
  return NativeTensor::wrap(env, std::move(out));
}

}  // namespace

void register_attention_bindings(Napi::Env env, Napi::Object exports) {
  exports.Set("sdpa", Napi::Function::New<Sdpa>(env, "sdpa"));
  exports.Set("decode", Napi::Function::New<Decode>(env, "decode"));
  exports.Set("mergeStates", Napi::Function::New<MergeStates>(env, "mergeStates"));
  exports.Set("rope", Napi::Function::New<Rope>(env, "rope"));
}

}  // namespace sparq
