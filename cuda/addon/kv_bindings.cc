// KV-cache quantization (KIVI): argument checks, output allocation, enqueue. The kernels are in
// cuda/kv/; layouts and semantics are documented in cuda/kv/kv.h and lib/kv.ts. The cache object
// lives in TypeScript; these functions are stateless and take its tensors.
#include <cmath>
#include <string>
#include <vector>

#include "../core/launch.h"
#include "../core/tensor_ops.h"
#include "../kv/kv.h"
#include "addon_data.h"
#include "args.h"
#include "binding_checks.h"
#include "bindings.h"
#include "tensor_handle.h"

namespace sparq {
namespace {

std::string str(int64_t v) { return std::to_string(v); }

int arg_bits(const Napi::Value& v, const std::string& op, const char* name) {
  const int64_t b = arg_integer(v, op, name, 0, 64);
  if (b != 2 && b != 4 && b != 8)
    throw_error(v.Env(), Code::invalid_arg_value, op + ": " + name + " must be 2, 4 or 8, got " + str(b));
  return static_cast<int>(b);
}

// groupSize G: codes of a group fill whole words (G * bits a multiple of 32) and G <= kKvMaxGroup.
int64_t arg_group(const Napi::Value& v, const std::string& op, int bits_a, int bits_b) {
  const int64_t G = arg_integer(v, op, "groupSize", 1, kKvMaxGroup);
  const int need = 32 / (bits_a < bits_b ? bits_a : bits_b);
  if (G % need != 0)
    throw_error(v.Env(), Code::invalid_arg_value, op + ": groupSize must be a multiple of " + str(need) + " (32 / bits), got " + str(G));
  return G;
}

void require_head_dim(Napi::Env env, const std::string& op, int64_t D, int64_t G) {
  if (D > kKvMaxHeadDim)
    throw_error(env, Code::unsupported, op + ": head dim D = " + str(D) + " is not supported (at most " + str(kKvMaxHeadDim) + ")");
  if (D == 0 || D % G != 0)
    throw_error(env, Code::shape, op + ": groupSize " + str(G) + " must divide the head dim D = " + str(D));
}

// ---- quantize / dequantize ----

// quantize(op, x, bits, perChannel, groupSize) -> [codes, scale, min]
Napi::Value Quantize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "kv.quantize", "op");
  const TensorView& x = arg_tensor(info[1], op, "x");
  const int bits = arg_bits(info[2], op, "bits");
  if (!info[3].IsBoolean()) throw_error(env, Code::invalid_arg_type, op + ": perChannel must be a boolean, got " + describe(info[3]));
  const bool per_channel = info[3].As<Napi::Boolean>().Value();
  const int64_t G = arg_group(info[4], op, bits, bits);
  require_float(env, op, "x", x);
  if (x.shape.size() < 2) throw_error(env, Code::shape, op + ": x must have shape [..., T, D], got " + shape_str(x.shape));
  const int64_t T = x.shape[x.shape.size() - 2], D = x.shape.back();
  const int64_t outer = T * D == 0 ? 0 : x.numel() / (T * D);
  std::vector<int64_t> lead(x.shape.begin(), x.shape.end() - 2);
  KiviQuantParams p;
  p.per_channel = per_channel;
  std::vector<int64_t> cs = lead, ms = lead;
  if (per_channel) {
    if (D > kKvMaxHeadDim)
      throw_error(env, Code::unsupported, op + ": D = " + str(D) + " is not supported with axis 'channel' (at most " + str(kKvMaxHeadDim) + ")");
    if (T % G != 0)
      throw_error(env, Code::shape, op + ": groupSize " + str(G) + " must divide the token count T = " + str(T) + " (axis 'channel')");
    cs.insert(cs.end(), {T / G, D, G * bits / 32});
    ms.insert(ms.end(), {T / G, D});
  } else {
    if (D % G != 0)
      throw_error(env, Code::shape, op + ": groupSize " + str(G) + " must divide the channel count D = " + str(D) + " (axis 'token')");
    cs.insert(cs.end(), {T, D * bits / 32});
    ms.insert(ms.end(), {T, D / G});
  }
  TensorView codes = alloc(env, op, x.device(), DType::u32, cs);
  TensorView scale = alloc(env, op, x.device(), x.dtype, ms);
  TensorView min = alloc(env, op, x.device(), x.dtype, ms);
  p.x = x.data();
  p.codes = static_cast<uint32_t*>(codes.data());
  p.scale = scale.data();
  p.min = min.data();
  p.dtype = x.dtype;
  p.outer = outer; p.T = T; p.D = D; p.G = G; p.bits = bits;
  check(env, op, launch("kv.quantize", x.device(), Keep{x.storage, codes.storage, scale.storage, min.storage},
                        [p](ThreadPool& pool) { return kivi_quantize_cpu(p, pool); },
                        [p](cudaStream_t s) { return SPARQ_CUDA_CALL(kivi_quantize_cuda(p, s)); }));
  Napi::Array a = Napi::Array::New(env, 3);
  a.Set(0u, NativeTensor::wrap(env, std::move(codes)));
  a.Set(1u, NativeTensor::wrap(env, std::move(scale)));
  a.Set(2u, NativeTensor::wrap(env, std::move(min)));
  return a;
}

// dequantize(op, codes, scale, min, bits, perChannel, groupSize) -> x
Napi::Value Dequantize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "kv.dequantize", "op");
  const TensorView& codes = arg_tensor(info[1], op, "codes");
  const TensorView& scale = arg_tensor(info[2], op, "scale");
  const TensorView& min = arg_tensor(info[3], op, "min");
  const int bits = arg_bits(info[4], op, "bits");
  if (!info[5].IsBoolean()) throw_error(env, Code::invalid_arg_type, op + ": perChannel must be a boolean, got " + describe(info[5]));
  const bool per_channel = info[5].As<Napi::Boolean>().Value();
  const int64_t G = arg_group(info[6], op, bits, bits);
  require_float(env, op, "scale", scale);
  require_dtype(env, op, "min", min, scale.dtype, " (the dtype of scale)");
  require_dtype(env, op, "codes", codes, DType::u32, "");
  require_same_device(env, op, "min", min, "scale", scale);
  require_same_device(env, op, "codes", codes, "scale", scale);
  if (scale.shape.size() < 2) throw_error(env, Code::shape, op + ": scale must have rank >= 2, got " + shape_str(scale.shape));
  require_shape(env, op, "min", min, scale.shape);
  std::vector<int64_t> lead(scale.shape.begin(), scale.shape.end() - 2), cs = lead, xs = lead;
  const int64_t s0 = scale.shape[scale.shape.size() - 2], s1 = scale.shape.back();
  int64_t T, D;
  if (per_channel) {
    T = s0 * G;
    D = s1;
    if (D > kKvMaxHeadDim)
      throw_error(env, Code::unsupported, op + ": D = " + str(D) + " is not supported with axis 'channel' (at most " + str(kKvMaxHeadDim) + ")");
    cs.insert(cs.end(), {s0, D, G * bits / 32});
  } else {
    T = s0;
    D = s1 * G;
    cs.insert(cs.end(), {T, D * bits / 32});
  }
  require_shape(env, op, "codes", codes, cs);
  xs.insert(xs.end(), {T, D});
  TensorView out = alloc(env, op, scale.device(), scale.dtype, xs);
  KiviDequantParams p;
  p.codes = static_cast<const uint32_t*>(codes.data());
  p.scale = scale.data();
  p.min = min.data();
  p.out = out.data();
  p.dtype = scale.dtype;
  p.T = T; p.D = D; p.G = G; p.bits = bits; p.per_channel = per_channel;
  p.outer = T * D == 0 ? 0 : out.numel() / (T * D);
  check(env, op, launch("kv.dequantize", scale.device(), Keep{codes.storage, scale.storage, min.storage, out.storage},
                        [p](ThreadPool& pool) { return kivi_dequantize_cpu(p, pool); },
                        [p](cudaStream_t s) { return SPARQ_CUDA_CALL(kivi_dequantize_cuda(p, s)); }));
  return NativeTensor::wrap(env, std::move(out));
}

// ---- the cache ----

// state = [kCodes, kScale, kMin, vCodes, vScale, vMin, kTail, vTail] (layouts in kv.h), checked
// against one another and the format parameters. `keep` gets their storages.
KiviCache arg_cache(const Napi::CallbackInfo& info, int first, const std::string& op, Keep* keep) {
  Napi::Env env = info.Env();
  const Napi::Value& sv = info[first];
  if (!sv.IsArray() || sv.As<Napi::Array>().Length() != 8)
    throw_error(env, Code::invalid_arg_type, op + ": state must be an array of the 8 cache tensors, got " + describe(sv));
  Napi::Array arr = sv.As<Napi::Array>();
  static const char* names[8] = {"kCodes", "kScale", "kMin", "vCodes", "vScale", "vMin", "kTail", "vTail"};
  std::vector<const TensorView*> t(8);
  for (uint32_t i = 0; i < 8; ++i) t[i] = &arg_tensor(arr.Get(i), op, names[i]);
  KiviCache c;
  c.key_bits = arg_bits(info[first + 1], op, "keyBits");
  c.value_bits = arg_bits(info[first + 2], op, "valueBits");
  c.G = arg_group(info[first + 3], op, c.key_bits, c.value_bits);
  c.R = arg_integer(info[first + 4], op, "residual", 0, int64_t{1} << 30);
  const TensorView& kc = *t[0];
  require_dtype(env, op, "kCodes", kc, DType::u32, "");
  if (kc.shape.size() != 5) throw_error(env, Code::shape, op + ": kCodes must have shape [B, Hk, P, D, G*keyBits/32], got " + shape_str(kc.shape));
  c.B = kc.shape[0]; c.Hk = kc.shape[1]; c.P = kc.shape[2]; c.D = kc.shape[3];
  require_head_dim(env, op, c.D, c.G);
  if (c.Hk == 0) throw_error(env, Code::shape, op + ": the cache must have at least one KV head");
  require_shape(env, op, "kCodes", kc, {c.B, c.Hk, c.P, c.D, c.k_words()});
  require_float(env, op, "kScale", *t[1]);
  c.dtype = t[1]->dtype;
  for (int i = 1; i < 8; ++i) {
    require_same_device(env, op, names[i], *t[i], "kCodes", kc);
    if (i != 3) require_dtype(env, op, names[i], *t[i], c.dtype, " (the dtype of kScale)");
  }
  require_dtype(env, op, "vCodes", *t[3], DType::u32, "");
  require_shape(env, op, "kScale", *t[1], {c.B, c.Hk, c.P, c.D});
  require_shape(env, op, "kMin", *t[2], {c.B, c.Hk, c.P, c.D});
  require_shape(env, op, "vCodes", *t[3], {c.B, c.Hk, c.P, c.G, c.v_words()});
  require_shape(env, op, "vScale", *t[4], {c.B, c.Hk, c.P, c.G, c.v_groups()});
  require_shape(env, op, "vMin", *t[5], {c.B, c.Hk, c.P, c.G, c.v_groups()});
  require_shape(env, op, "kTail", *t[6], {c.B, c.Hk, c.tail_cap(), c.D});
  require_shape(env, op, "vTail", *t[7], {c.B, c.Hk, c.tail_cap(), c.D});
  if (c.max_length() > 0x7fffffff) throw_error(env, Code::unsupported, op + ": the cache holds more than 2^31 - 1 tokens per sequence");
  c.k_codes = static_cast<uint32_t*>(kc.data());
  c.k_scale = t[1]->data();
  c.k_min = t[2]->data();
  c.v_codes = static_cast<uint32_t*>(t[3]->data());
  c.v_scale = t[4]->data();
  c.v_min = t[5]->data();
  c.k_tail = t[6]->data();
  c.v_tail = t[7]->data();
  for (int i = 0; i < 8; ++i) keep->push_back(t[i]->storage);
  return c;
}

const TensorView& arg_lengths(const Napi::Value& v, const std::string& op, const KiviCache& c, const TensorView& ref) {
  const TensorView& len = arg_tensor(v, op, "lengths");
  require_dtype(v.Env(), op, "lengths", len, DType::i32, "");
  require_shape(v.Env(), op, "lengths", len, {c.B});
  require_same_device(v.Env(), op, "lengths", len, "kCodes", ref);
  return len;
}

// append(op, state, keyBits, valueBits, groupSize, residual, lengths, k, v, counts | null)
Napi::Value Append(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "kv.append", "op");
  Keep keep;
  KiviAppendParams p;
  p.cache = arg_cache(info, 1, op, &keep);
  const KiviCache& c = p.cache;
  const TensorView& ref = arg_tensor(info[1].As<Napi::Array>().Get(0u), op, "kCodes");
  const TensorView& len = arg_lengths(info[6], op, c, ref);
  const TensorView& k = arg_tensor(info[7], op, "k");
  const TensorView& v = arg_tensor(info[8], op, "v");
  require_dtype(env, op, "k", k, c.dtype, " (the cache dtype)");
  require_dtype(env, op, "v", v, c.dtype, " (the cache dtype)");
  if (k.shape.size() != 4 || k.shape[0] != c.B || k.shape[1] != c.Hk || k.shape[3] != c.D)
    throw_error(env, Code::shape, op + ": k must have shape [B, Hk, n, D] = [" + str(c.B) + ", " + str(c.Hk) + ", n, " + str(c.D) +
                                      "], got " + shape_str(k.shape));
  require_shape(env, op, "v", v, k.shape);
  require_same_device(env, op, "k", k, "kCodes", ref);
  require_same_device(env, op, "v", v, "kCodes", ref);
  p.n = k.shape[2];
  keep.insert(keep.end(), {len.storage, k.storage, v.storage});
  if (!info[9].IsNull() && !info[9].IsUndefined()) {
    const TensorView& cnt = arg_tensor(info[9], op, "counts");
    require_dtype(env, op, "counts", cnt, DType::i32, "");
    require_shape(env, op, "counts", cnt, {c.B});
    require_same_device(env, op, "counts", cnt, "kCodes", ref);
    p.counts = static_cast<const int32_t*>(cnt.data());
    keep.push_back(cnt.storage);
  }
  p.k = k.data();
  p.v = v.data();
  p.lengths = static_cast<int32_t*>(len.data());
  p.error_word = error_word_for(env, op, ref.device());
  check(env, op, launch("kv.append", ref.device(), std::move(keep), [p](ThreadPool& pool) { return kivi_append_cpu(p, pool); },
                        [p](cudaStream_t s) { return SPARQ_CUDA_CALL(kivi_append_cuda(p, s)); }));
  return env.Undefined();
}

// attend(op, state, keyBits, valueBits, groupSize, residual, lengths, q, scale | undefined, returnLse, splits)
// -> [out, lse | null]
Napi::Value Attend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "kv.attend", "op");
  Keep keep;
  KiviAttendParams p;
  p.cache = arg_cache(info, 1, op, &keep);
  const KiviCache& c = p.cache;
  const TensorView& ref = arg_tensor(info[1].As<Napi::Array>().Get(0u), op, "kCodes");
  const TensorView& len = arg_lengths(info[6], op, c, ref);
  const TensorView& q = arg_tensor(info[7], op, "q");
  require_dtype(env, op, "q", q, c.dtype, " (the cache dtype)");
  require_same_device(env, op, "q", q, "kCodes", ref);
  if (q.shape.size() != 3 || q.shape[0] != c.B || q.shape[2] != c.D)
    throw_error(env, Code::shape, op + ": q must have shape [B, Hq, D] = [" + str(c.B) + ", Hq, " + str(c.D) + "], got " + shape_str(q.shape));
  p.Hq = q.shape[1];
  if (p.Hq % c.Hk != 0)
    throw_error(env, Code::shape, op + ": the query heads Hq = " + str(p.Hq) + " must be a multiple of the KV heads Hk = " + str(c.Hk));
  if (info[8].IsUndefined() || info[8].IsNull()) p.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.D)));
  else p.scale = static_cast<float>(arg_number(info[8], op, "scale"));
  const bool want_lse = info[9].ToBoolean().Value();
  p.num_splits = static_cast<int>(arg_integer(info[10], op, "splits", 0, 1024));
  TensorView out = alloc(env, op, q.device(), q.dtype, {c.B, p.Hq, c.D});
  TensorView lse;
  if (want_lse) lse = alloc(env, op, q.device(), DType::f32, {c.B, p.Hq});
  p.q = q.data();
  p.lengths = static_cast<const int32_t*>(len.data());
  p.out = out.data();
  p.lse = want_lse ? static_cast<float*>(lse.data()) : nullptr;
  p.error_word = error_word_for(env, op, q.device());
  keep.insert(keep.end(), {len.storage, q.storage, out.storage});
  if (want_lse) keep.push_back(lse.storage);
  check(env, op, launch("kv.attend", q.device(), std::move(keep), [p](ThreadPool& pool) { return kivi_attend_cpu(p, pool); },
                        [p](cudaStream_t s) { return SPARQ_CUDA_CALL(kivi_attend_cuda(p, s)); }));
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, NativeTensor::wrap(env, std::move(out)));
  a.Set(1u, want_lse ? NativeTensor::wrap(env, lse) : env.Null());
  return a;
}

}  // namespace

void register_kv_bindings(Napi::Env env, Napi::Object exports) {
  exports.Set("kvQuantize", Napi::Function::New<Quantize>(env, "kvQuantize"));
  exports.Set("kvDequantize", Napi::Function::New<Dequantize>(env, "kvDequantize"));
  exports.Set("kvAppend", Napi::Function::New<Append>(env, "kvAppend"));
  exports.Set("kvAttend", Napi::Function::New<Attend>(env, "kvAttend"));
}

}  // namespace sparq
