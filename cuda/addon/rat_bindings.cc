// JS bindings of RAT: argument checks, output allocation, enqueue. The kernels are in cuda/rat/;
// shapes and semantics are documented in rat.h and lib/rat.ts.
#include <cmath>
#include <string>
#include <vector>

#include "../core/launch.h"
#include "../core/tensor_ops.h"
#include "../rat/rat.h"
#include "addon_data.h"
#include "args.h"
#include "binding_checks.h"
#include "bindings.h"
#include "tensor_handle.h"

namespace sparq {
namespace {

// Head dims: even (RoPE pairs) and <= 256; CUDA attention kernels take 64, 128 or 256.
void require_head_dim(Napi::Env env, const std::string& op, Device dev, int64_t D, bool attention) {
  if (D > kRatMaxHeadDim)
    throw_error(env, Code::unsupported, op + ": head dim D = " + std::to_string(D) + " is not supported (at most " +
                                            std::to_string(kRatMaxHeadDim) + ")");
  if (attention && D % 2 != 0)
    throw_error(env, Code::unsupported, op + ": head dim D = " + std::to_string(D) + " is not supported (RoPE needs an even D)");
  if (attention && dev.is_cuda() && !rat_cuda_head_dim_supported(D))
    throw_error(env, Code::unsupported, op + ": head dim D = " + std::to_string(D) + " is not supported on CUDA (64, 128 or 256)");
}

// H must be a multiple of a group count G >= 1 (head h reads group h % G).
void require_groups(Napi::Env env, const std::string& op, int64_t H, int64_t G, const char* what) {
  if (G < 1 || H % G != 0)
    throw_error(env, Code::shape, op + ": the heads H = " + std::to_string(H) + " must be a multiple of the " + what + " G = " +
                                      std::to_string(G));
}

int64_t arg_chunk(const Napi::Value& v, const std::string& op) { return arg_integer(v, op, "chunkSize", 1, int64_t{1} << 30); }

double arg_rope_base(Napi::Env env, const Napi::Value& v, const std::string& op) {
  double base = arg_number(v, op, "ropeBase");
  if (base < 0) throw_error(env, Code::invalid_arg_value, op + ": ropeBase must be > 0 (or 0: no RoPE), got " + std::to_string(base));
  return base;
}

// gateBias: float32 [H, D] on `ref`'s device, or null.
const float* arg_bias(Napi::Env env, const Napi::Value& v, const std::string& op, int64_t H, int64_t D, const TensorView& ref,
                      Keep* keep) {
  if (v.IsNull() || v.IsUndefined()) return nullptr;
  const TensorView& bias = arg_tensor(v, op, "gateBias");
  require_dtype(env, op, "gateBias", bias, DType::f32, "");
  require_shape(env, op, "gateBias", bias, {H, D}, "[H, D]", "H = " + std::to_string(H) + ", D = " + std::to_string(D));
  require_same_device(env, op, "gateBias", bias, "v", ref);
  keep->push_back(bias.storage);
  return static_cast<const float*>(bias.data());
}

// ratScan(op, v, k, gate, gateBias | null, chunkSize) -> [vTilde, kTilde, vFinal, kFinal]
Napi::Value RatScan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "rat.scan", "op");
  const TensorView& v = arg_tensor(info[1], op, "v");
  const TensorView& k = arg_tensor(info[2], op, "k");
  const TensorView& gate = arg_tensor(info[3], op, "gate");
  require_float(env, op, "v", v);
  if (v.shape.size() != 4) throw_error(env, Code::shape, op + ": v must have shape [B, H, T, D], got " + shape_str(v.shape));
  const int64_t B = v.shape[0], H = v.shape[1], T = v.shape[2], D = v.shape[3];
  const std::string from_v = "B = " + std::to_string(B) + ", T = " + std::to_string(T) + ", D = " + std::to_string(D) + " (from v)";
  require_shape(env, op, "k", k, {B, -1, T, D}, "[B, Gk, T, D]", from_v);
  require_shape(env, op, "gate", gate, v.shape, "[B, H, T, D]", "the shape of v, " + shape_str(v.shape));
  require_like(env, op, "k", k, "v", v);
  require_like(env, op, "gate", gate, "v", v);
  const int64_t Gk = k.shape[1];
  require_groups(env, op, H, Gk, "key groups");
  require_head_dim(env, op, v.device(), D, false);
  Keep keep{v.storage, k.storage, gate.storage};
  RatScanParams p;
  p.gate_bias = arg_bias(env, info[4], op, H, D, v, &keep);
  p.L = arg_chunk(info[5], op);
  const int64_t Nc = (T + p.L - 1) / p.L;
  TensorView vt = alloc(env, op, v.device(), v.dtype, {B, H, T, D});
  TensorView kt = alloc(env, op, v.device(), v.dtype, {B, H, T, D});
  TensorView vf = alloc(env, op, v.device(), v.dtype, {B, H, Nc, D});
  TensorView kf = alloc(env, op, v.device(), v.dtype, {B, H, Nc, D});
  p.v = v.data();
  p.k = k.data();
  p.gate = gate.data();
  p.v_out = vt.data();
  p.k_out = kt.data();
  p.v_final = vf.data();
  p.k_final = kf.data();
  p.dtype = v.dtype;
  p.B = B; p.H = H; p.Gk = Gk; p.T = T; p.D = D;
  for (auto* t : {&vt, &kt, &vf, &kf}) keep.push_back(t->storage);
  check(env, op, launch("rat.scan", v.device(), std::move(keep), [p](ThreadPool& pool) { return rat_scan_cpu(p, pool); },
                        [p](cudaStream_t s) { return SPARQ_CUDA_CALL(rat_scan_cuda(p, s)); }));
  Napi::Array a = Napi::Array::New(env, 4);
  a.Set(0u, NativeTensor::wrap(env, std::move(vt)));
  a.Set(1u, NativeTensor::wrap(env, std::move(kt)));
  a.Set(2u, NativeTensor::wrap(env, std::move(vf)));
  a.Set(3u, NativeTensor::wrap(env, std::move(kf)));
  return a;
}

// ratAttention(op, q, kTilde, vTilde, chunkSize, ropeBase, scale | undefined, returnLse) -> [out, lse | null]
Napi::Value RatAttention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "rat.attention", "op");
  const TensorView& q = arg_tensor(info[1], op, "q");
  const TensorView& k = arg_tensor(info[2], op, "kTilde");
  const TensorView& v = arg_tensor(info[3], op, "vTilde");
  require_float(env, op, "q", q);
  if (q.shape.size() != 4) throw_error(env, Code::shape, op + ": q must have shape [B, Gq, T, D], got " + shape_str(q.shape));
  const int64_t B = q.shape[0], Gq = q.shape[1], T = q.shape[2], D = q.shape[3];
  require_shape(env, op, "kTilde", k, {B, -1, T, D}, "[B, H, T, D]",
                "B = " + std::to_string(B) + ", T = " + std::to_string(T) + ", D = " + std::to_string(D) + " (from q)");
  require_shape(env, op, "vTilde", v, k.shape, "[B, H, T, D]", "the shape of kTilde, " + shape_str(k.shape));
  require_like(env, op, "kTilde", k, "q", q);
  require_like(env, op, "vTilde", v, "q", q);
  const int64_t H = k.shape[1];
  require_groups(env, op, H, Gq, "query groups");
  require_head_dim(env, op, q.device(), D, true);
  RatAttentionParams p;
  p.L = arg_chunk(info[4], op);
  p.rope_base = arg_rope_base(env, info[5], op);
  p.scale = arg_scale(info[6], op, D);
  const bool want_lse = info[7].ToBoolean().Value();
  TensorView out = alloc(env, op, q.device(), q.dtype, {B, H, T, D});
  TensorView lse;
  if (want_lse) lse = alloc(env, op, q.device(), DType::f32, {B, H, T});
  p.q = q.data();
  p.k = k.data();
  p.v = v.data();
  p.out = out.data();
  p.lse = want_lse ? static_cast<float*>(lse.data()) : nullptr;
  p.dtype = q.dtype;
  p.B = B; p.H = H; p.Gq = Gq; p.T = T; p.D = D;
  Keep keep{q.storage, k.storage, v.storage, out.storage};
  if (want_lse) keep.push_back(lse.storage);
  check(env, op, launch("rat.attention", q.device(), std::move(keep), [p](ThreadPool& pool) { return rat_attention_cpu(p, pool); },
                        [p](cudaStream_t s) { return SPARQ_CUDA_CALL(rat_attention_cuda(p, s)); }));
  return out_and_lse(env, std::move(out), want_lse ? &lse : nullptr);
}

// The cache tensors [kState, vState, kChunks, vChunks, lengths]: float32 states and chunks, int32
// lengths, all on one device. Returns the device they are on.
Device arg_cache(Napi::Env env, const Napi::Value& v, const std::string& op, int64_t L, double rope_base, RatCache* c, Keep* keep) {
  if (!v.IsArray() || v.As<Napi::Array>().Length() != 5)
    throw_error(env, Code::invalid_arg_type, op + ": cache must be an array of 5 tensors [kState, vState, kChunks, vChunks, lengths], got " +
                                                 describe(v));
  Napi::Array a = v.As<Napi::Array>();
  const TensorView& ks = arg_tensor(a.Get(0u), op, "cache.kState");
  const TensorView& vs = arg_tensor(a.Get(1u), op, "cache.vState");
  const TensorView& kc = arg_tensor(a.Get(2u), op, "cache.kChunks");
  const TensorView& vc = arg_tensor(a.Get(3u), op, "cache.vChunks");
  const TensorView& len = arg_tensor(a.Get(4u), op, "cache.lengths");
  require_dtype(env, op, "cache.kState", ks, DType::f32, "");
  if (ks.shape.size() != 3) throw_error(env, Code::shape, op + ": cache.kState must have shape [B, H, D], got " + shape_str(ks.shape));
  const int64_t B = ks.shape[0], H = ks.shape[1], D = ks.shape[2];
  require_shape(env, op, "cache.vState", vs, ks.shape, "[B, H, D]", "the shape of cache.kState, " + shape_str(ks.shape));
  require_shape(env, op, "cache.kChunks", kc, {B, H, -1, D}, "[B, H, N, D]", "the B, H, D of cache.kState");
  require_shape(env, op, "cache.vChunks", vc, kc.shape, "[B, H, N, D]", "the shape of cache.kChunks, " + shape_str(kc.shape));
  require_shape(env, op, "cache.lengths", len, {B}, "[B]", "B = " + std::to_string(B));
  for (auto [name, t] : {std::pair<const char*, const TensorView*>{"cache.vState", &vs}, {"cache.kChunks", &kc}, {"cache.vChunks", &vc}}) {
    require_dtype(env, op, name, *t, DType::f32, "");
    require_same_device(env, op, name, *t, "cache.kState", ks);
  }
  require_dtype(env, op, "cache.lengths", len, DType::i32, "");
  require_same_device(env, op, "cache.lengths", len, "cache.kState", ks);
  require_head_dim(env, op, ks.device(), D, true);
  c->k_state = static_cast<float*>(ks.data());
  c->v_state = static_cast<float*>(vs.data());
  c->k_chunks = static_cast<float*>(kc.data());
  c->v_chunks = static_cast<float*>(vc.data());
  c->lengths = static_cast<int32_t*>(len.data());
  c->B = B; c->H = H; c->D = D; c->L = L; c->N = kc.shape[2];
  c->rope_base = rope_base;
  for (const TensorView* t : {&ks, &vs, &kc, &vc, &len}) keep->push_back(t->storage);
  return ks.device();
}

void require_on(Napi::Env env, const std::string& op, const char* arg, const TensorView& t, Device dev) {
  if (t.device() != dev)
    throw_error(env, Code::device, op + ": " + arg + " is on " + t.device().name() + " but the cache is on " + dev.name() +
                                       " (move it with .to())");
}

// ratFill(op, cache, v, k, gate, gateBias | null, kFinal, vFinal, promptLengths, chunkSize, ropeBase) -> undefined
Napi::Value RatFill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "rat.cache.prefill", "op");
  const int64_t L = arg_chunk(info[9], op);
  const double base = arg_rope_base(env, info[10], op);
  RatFillParams p;
  Keep keep;
  const Device dev = arg_cache(env, info[1], op, L, base, &p.cache, &keep);
  const RatCache& c = p.cache;
  const TensorView& v = arg_tensor(info[2], op, "v");
  const TensorView& k = arg_tensor(info[3], op, "k");
  const TensorView& gate = arg_tensor(info[4], op, "gate");
  require_float(env, op, "v", v);
  require_on(env, op, "v", v, dev);
  require_shape(env, op, "v", v, {c.B, c.H, -1, c.D}, "[B, H, T, D]", "the B, H, D of the cache");
  const int64_t T = v.shape[2], Nc = (T + L - 1) / L;
  require_shape(env, op, "k", k, {c.B, -1, T, c.D}, "[B, Gk, T, D]", "the B, T, D of v");
  require_shape(env, op, "gate", gate, v.shape, "[B, H, T, D]", "the shape of v, " + shape_str(v.shape));
  require_like(env, op, "k", k, "v", v);
  require_like(env, op, "gate", gate, "v", v);
  p.Gk = k.shape[1];
  require_groups(env, op, c.H, p.Gk, "key groups");
  p.gate_bias = arg_bias(env, info[5], op, c.H, c.D, v, &keep);
  const TensorView& kf = arg_tensor(info[6], op, "kFinal");
  const TensorView& vf = arg_tensor(info[7], op, "vFinal");
  require_shape(env, op, "kFinal", kf, {c.B, c.H, Nc, c.D}, "[B, H, Nc, D]", "Nc = ceil(T / chunkSize) = " + std::to_string(Nc));
  require_shape(env, op, "vFinal", vf, kf.shape, "[B, H, Nc, D]", "the shape of kFinal");
  require_like(env, op, "kFinal", kf, "v", v);
  require_like(env, op, "vFinal", vf, "v", v);
  const TensorView& pl = arg_tensor(info[8], op, "promptLengths");
  require_dtype(env, op, "promptLengths", pl, DType::i32, "");
  require_shape(env, op, "promptLengths", pl, {c.B}, "[B]", "B = " + std::to_string(c.B));
  require_on(env, op, "promptLengths", pl, dev);
  p.v = v.data();
  p.k = k.data();
  p.gate = gate.data();
  p.k_final = kf.data();
  p.v_final = vf.data();
  p.prompt_lengths = static_cast<const int32_t*>(pl.data());
  p.dtype = v.dtype;
  p.T = T;
  p.error_word = error_word_for(env, op, dev);
  for (const TensorView* t : {&v, &k, &gate, &kf, &vf, &pl}) keep.push_back(t->storage);
  check(env, op, launch("rat.cache.prefill", dev, std::move(keep), [p](ThreadPool& pool) { return rat_fill_cpu(p, pool); },
                        [p](cudaStream_t s) { return SPARQ_CUDA_CALL(rat_fill_cuda(p, s)); }));
  return env.Undefined();
}

// ratStep(op, cache, q, k, v, gate, gateBias | null, chunkSize, ropeBase, scale | undefined, returnLse) -> [out, lse | null]
Napi::Value RatStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "rat.cache.step", "op");
  const int64_t L = arg_chunk(info[7], op);
  const double base = arg_rope_base(env, info[8], op);
  RatStepParams p;
  Keep keep;
  const Device dev = arg_cache(env, info[1], op, L, base, &p.cache, &keep);
  const RatCache& c = p.cache;
  const TensorView& q = arg_tensor(info[2], op, "q");
  const TensorView& k = arg_tensor(info[3], op, "k");
  const TensorView& v = arg_tensor(info[4], op, "v");
  const TensorView& gate = arg_tensor(info[5], op, "gate");
  require_float(env, op, "v", v);
  require_on(env, op, "v", v, dev);
  const std::string bhd = "B = " + std::to_string(c.B) + ", H = " + std::to_string(c.H) + ", D = " + std::to_string(c.D) + " (the cache)";
  require_shape(env, op, "v", v, {c.B, c.H, c.D}, "[B, H, D]", bhd);
  require_shape(env, op, "gate", gate, {c.B, c.H, c.D}, "[B, H, D]", bhd);
  require_shape(env, op, "q", q, {c.B, -1, c.D}, "[B, Gq, D]", bhd);
  require_shape(env, op, "k", k, {c.B, -1, c.D}, "[B, Gk, D]", bhd);
  require_like(env, op, "q", q, "v", v);
  require_like(env, op, "k", k, "v", v);
  require_like(env, op, "gate", gate, "v", v);
  p.Gq = q.shape[1];
  p.Gk = k.shape[1];
  require_groups(env, op, c.H, p.Gq, "query groups");
  require_groups(env, op, c.H, p.Gk, "key groups");
  p.gate_bias = arg_bias(env, info[6], op, c.H, c.D, v, &keep);
  p.scale = arg_scale(info[9], op, c.D);
  const bool want_lse = info[10].ToBoolean().Value();
  TensorView out = alloc(env, op, dev, v.dtype, {c.B, c.H, c.D});
  TensorView lse;
  if (want_lse) lse = alloc(env, op, dev, DType::f32, {c.B, c.H});
  p.q = q.data();
  p.k = k.data();
  p.v = v.data();
  p.gate = gate.data();
  p.out = out.data();
  p.lse = want_lse ? static_cast<float*>(lse.data()) : nullptr;
  p.dtype = v.dtype;
  p.error_word = error_word_for(env, op, dev);
  for (const TensorView* t : {&q, &k, &v, &gate, static_cast<const TensorView*>(&out)}) keep.push_back(t->storage);
  if (want_lse) keep.push_back(lse.storage);
  check(env, op, launch("rat.cache.step", dev, std::move(keep), [p](ThreadPool& pool) { return rat_step_cpu(p, pool); },
                        [p](cudaStream_t s) { return SPARQ_CUDA_CALL(rat_step_cuda(p, s)); }));
  return out_and_lse(env, std::move(out), want_lse ? &lse : nullptr);
}

}  // namespace

void register_rat_bindings(Napi::Env env, Napi::Object exports) {
  exports.Set("ratScan", Napi::Function::New<RatScan>(env, "ratScan"));
  exports.Set("ratAttention", Napi::Function::New<RatAttention>(env, "ratAttention"));
  exports.Set("ratFill", Napi::Function::New<RatFill>(env, "ratFill"));
  exports.Set("ratStep", Napi::Function::New<RatStep>(env, "ratStep"));
}

}  // namespace sparq
