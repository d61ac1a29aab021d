// Sparse matrices (CSR) and SpGEMM: argument checks, output allocation, enqueue. Kernels are in
// cuda/spgemm/; semantics in spgemm.h and lib/sparse.ts. A CSR argument is a plain object
// { rows, cols, indptr, indices, values? } whose fields are native tensors.
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "../core/cast.h"
#include "../core/cpu_stream.h"
#include "../core/launch.h"
#include "../core/tensor_ops.h"
#include "../spgemm/spgemm.h"
#include "addon_data.h"
#include "args.h"
#include "binding_checks.h"
#include "bindings.h"
#include "tensor_handle.h"

namespace sparq {
namespace {

// A CSR argument with the tensors that hold it.
struct CsrArg {
  CsrRef ref;
  TensorView indptr, indices, values;
  DType dtype = DType::f32;  // of values, when present
  Device device() const { return indptr.device(); }
  Keep keep() const {
    Keep k{indptr.storage, indices.storage};
    if (values.storage) k.push_back(values.storage);
    return k;
  }
};

const TensorView& field_tensor(Napi::Env env, const Napi::Object& o, const std::string& op, const std::string& name,
                               const char* field) {
  std::string label = name + "." + field;
  Napi::Value v = o.Get(field);
  return arg_tensor(v, op, label.c_str());
}

CsrArg arg_csr(const Napi::Value& v, const std::string& op, const char* name, bool need_values) {
  Napi::Env env = v.Env();
  if (!v.IsObject() || v.IsArray() || v.IsFunction())
    throw_error(env, Code::invalid_arg_type, op + ": " + name + " must be a CSR matrix object, got " + describe(v));
  Napi::Object o = v.As<Napi::Object>();
  const std::string n = name;
  CsrArg c;
  c.ref.name = name;
  const int64_t imax = std::numeric_limits<int32_t>::max();
  c.ref.rows = arg_integer(o.Get("rows"), op, (n + ".rows").c_str(), 0, imax);
  c.ref.cols = arg_integer(o.Get("cols"), op, (n + ".cols").c_str(), 0, imax);
  c.indptr = field_tensor(env, o, op, n, "indptr");
  c.indices = field_tensor(env, o, op, n, "indices");
  if (c.indptr.dtype != DType::i32 && c.indptr.dtype != DType::i64)
    throw_error(env, Code::dtype, op + ": " + n + ".indptr must be int32 or int64, got " + dtype_name(c.indptr.dtype));
  if (c.indices.dtype != DType::i32)
    throw_error(env, Code::dtype, op + ": " + n + ".indices must be int32, got " + dtype_name(c.indices.dtype));
  if (c.indptr.shape.size() != 1 || c.indptr.shape[0] != c.ref.rows + 1)
    throw_error(env, Code::shape, op + ": " + n + ".indptr must have shape [rows + 1] = [" + std::to_string(c.ref.rows + 1) +
                                      "], got " + shape_str(c.indptr.shape));
  if (c.indices.shape.size() != 1)
    throw_error(env, Code::shape, op + ": " + n + ".indices must be 1-D, got " + shape_str(c.indices.shape));
  if (c.indices.device() != c.indptr.device())
    throw_error(env, Code::device, op + ": " + n + ".indices is on " + c.indices.device().name() + " but " + n +
                                       ".indptr is on " + c.indptr.device().name());
  c.ref.stored = c.indices.shape[0];
  c.ref.indptr64 = c.indptr.dtype == DType::i64;
  c.ref.indptr = c.indptr.data();
  c.ref.indices = static_cast<const int32_t*>(c.indices.data());
  if (need_values) {
    c.values = field_tensor(env, o, op, n, "values");
    if (c.values.dtype != DType::f32 && c.values.dtype != DType::f64)
      throw_error(env, Code::dtype, op + ": " + n + ".values must be float32 or float64, got " + dtype_name(c.values.dtype));
    if (c.values.shape != c.indices.shape)
      throw_error(env, Code::shape, op + ": " + n + ".values must have the shape of " + n + ".indices, " +
                                        shape_str(c.indices.shape) + ", got " + shape_str(c.values.shape));
    if (c.values.device() != c.indptr.device())
      throw_error(env, Code::device, op + ": " + n + ".values is on " + c.values.device().name() + " but " + n +
                                         ".indptr is on " + c.indptr.device().name());
    c.dtype = c.values.dtype;
    c.ref.values = c.values.data();
  }
  if (c.device().is_cuda()) check(env, op, cuda::require_device(c.device().index));
  return c;
}

int sm_count(Device dev) {
  if (!dev.is_cuda()) return 1;
  for (const auto& d : cuda::runtime_info().devices)
    if (d.index == dev.index) return d.multiprocessors;
  return 80;
}

bool arg_bool(const Napi::Value& v, const std::string& op, const char* name) {
  if (!v.IsBoolean()) throw_error(v.Env(), Code::invalid_arg_type, op + ": " + name + " must be a boolean, got " + describe(v));
  return v.As<Napi::Boolean>().Value();
}

// Prefixes a kernel's Status (messages name A/B but not the op) with the op.
Status named(const std::string& op, Status st) { return st.ok() ? st : Status(st.code(), op + ": " + st.message()); }

// Both operands of a product, checked against each other.
SpgemmParams product_params(Napi::Env env, const std::string& op, const CsrArg& a, const CsrArg& b, bool values) {
  if (a.device() != b.device())
    throw_error(env, Code::device, op + ": B is on " + b.device().name() + " but A is on " + a.device().name() +
                                       " (move it with .to())");
  if (a.ref.cols != b.ref.rows)
    throw_error(env, Code::shape, op + ": inner dimensions differ: A is " + std::to_string(a.ref.rows) + " x " +
                                      std::to_string(a.ref.cols) + " but B is " + std::to_string(b.ref.rows) + " x " +
                                      std::to_string(b.ref.cols));
  if (values && a.dtype != b.dtype)
    throw_error(env, Code::dtype, op + ": B.values must have the dtype of A.values, " + dtype_name(a.dtype) + ", got " +
                                      dtype_name(b.dtype));
  SpgemmParams p;
  p.a = a.ref;
  p.b = b.ref;
  p.dtype = a.dtype;
  p.error_word = error_word_for(env, op, a.device());
  p.sm_count = sm_count(a.device());
  p.device = a.device().is_cuda() ? a.device().index : 0;
  return p;
}

// csrValidate(op, m): queues the structural checks of m (the next read reports a fault).
Napi::Value CsrValidate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "sparse.csr", "op");
  CsrArg m = arg_csr(info[1], op, "matrix", false);
  int* word = error_word_for(env, op, m.device());
  CsrRef r = m.ref;
  check(env, op, launch("sparse.csr", m.device(), m.keep(),
                        [r, op](ThreadPool& pool) { return named(op, csr_validate_cpu(r, pool)); },
                        [r, word](cudaStream_t s) { return SPARQ_CUDA_CALL(csr_validate_cuda(r, word, s)); }));
  return env.Undefined();
}

// The CPU product computed by the symbolic phase, handed to JavaScript as a tagged External that
// the numeric call passes back (freed with the External if that call never comes).
using ProductRef = std::shared_ptr<CpuProduct>;
const napi_type_tag kProductTag = {0x5a3f1c2e9b7d4a60ULL, 0x8e21c4d7f0b36a95ULL};

// spgemmSymbolic(op, A, B, sortColumns, valid?) -> [rowptr of C (int64 [A.rows + 1]), product | null].
// Validates A and B first, except an operand flagged in `valid` (bit 0: A, bit 1: B) that an
// earlier product checked. On the CPU it computes C as well (see CpuProduct).
Napi::Value SpgemmSymbolic(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "sparse.matmul", "op");
  CsrArg a = arg_csr(info[1], op, "A", true);
  CsrArg b = arg_csr(info[2], op, "B", true);
  SpgemmParams p = product_params(env, op, a, b, true);
  p.sort_columns = arg_bool(info[3], op, "sortColumns");
  const int64_t valid = info[4].IsUndefined() ? 0 : arg_integer(info[4], op, "valid", 0, 3);
  p.a_valid = valid & 1;
  p.b_valid = valid & 2;
  TensorView rowptr = alloc(env, op, a.device(), DType::i64, {a.ref.rows + 1});
  p.rowptr_c = static_cast<int64_t*>(rowptr.data());
  Keep keep = a.keep();
  for (auto& s : b.keep()) keep.push_back(s);
  keep.push_back(rowptr.storage);
  ProductRef product = a.device().is_cpu() ? std::make_shared<CpuProduct>() : nullptr;
  check(env, op, launch("sparse.matmul", a.device(), std::move(keep),
                        [p, op, product](ThreadPool& pool) { return named(op, spgemm_symbolic_cpu(p, pool, product.get())); },
                        [p](cudaStream_t s) { return SPARQ_CUDA_CALL(spgemm_symbolic_cuda(p, s)); }));
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, NativeTensor::wrap(env, std::move(rowptr)));
  if (product) {
    auto ext = Napi::External<ProductRef>::New(env, new ProductRef(product), [](Napi::Env, ProductRef* r) { delete r; });
    ext.TypeTag(&kProductTag);
    out.Set(1u, ext);
  } else {
    out.Set(1u, env.Null());
  }
  return out;
}

// spgemmNumeric(op, A, B, rowptrC, nnzC, sortColumns, deterministic, product | null, indptrDType)
// -> [indptr, indices, values] of C. indptr is rowptrC itself ('int64') or its int32 copy ('int32',
// made in the same queued task: the caller checked that nnzC fits).
Napi::Value SpgemmNumeric(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "sparse.matmul", "op");
  CsrArg a = arg_csr(info[1], op, "A", true);
  CsrArg b = arg_csr(info[2], op, "B", true);
  SpgemmParams p = product_params(env, op, a, b, true);
  const TensorView& rowptr = arg_tensor(info[3], op, "rowptr");
  if (rowptr.dtype != DType::i64 || rowptr.shape != std::vector<int64_t>{a.ref.rows + 1} || rowptr.device() != a.device())
    throw_error(env, Code::invalid_arg_value, op + ": rowptr must be the int64 [A.rows + 1] tensor from spgemmSymbolic on A's device");
  const int64_t nnz = arg_integer(info[4], op, "nnz", 0, int64_t{1} << 53);
  p.sort_columns = arg_bool(info[5], op, "sortColumns");
  p.deterministic = arg_bool(info[6], op, "deterministic");
  ProductRef product;
  if (info[7].IsExternal() && info[7].As<Napi::External<ProductRef>>().CheckTypeTag(&kProductTag)) {
    product = *info[7].As<Napi::External<ProductRef>>().Data();
  } else if (!info[7].IsNull() && !info[7].IsUndefined()) {
    throw_error(env, Code::invalid_arg_type, op + ": product must be the handle from spgemmSymbolic or null, got " + describe(info[7]));
  }
  const DType ptr_dtype = arg_dtype(info[8], op, "indptrDType");
  if (ptr_dtype != DType::i32 && ptr_dtype != DType::i64)
    throw_error(env, Code::dtype, op + ": indptrDType must be 'int32' or 'int64', got '" + dtype_name(ptr_dtype) + "'");
  if (ptr_dtype == DType::i32 && nnz > std::numeric_limits<int32_t>::max())
    throw_error(env, Code::unsupported, op + ": nnz " + std::to_string(nnz) + " does not fit int32 row pointers");
  TensorView indices = alloc(env, op, a.device(), DType::i32, {nnz});
  TensorView values = alloc(env, op, a.device(), a.dtype, {nnz});
  TensorView indptr = ptr_dtype == DType::i64 ? rowptr : alloc(env, op, a.device(), DType::i32, {a.ref.rows + 1});
  p.rowptr_c = static_cast<int64_t*>(rowptr.data());
  p.nnz_c = nnz;
  p.indices_c = static_cast<int32_t*>(indices.data());
  p.values_c = values.data();
  CastParams narrow;  // rowptr -> int32 indptr, when asked
  narrow.src = rowptr.data();
  narrow.dst = indptr.data();
  narrow.n = ptr_dtype == DType::i32 ? a.ref.rows + 1 : 0;
  narrow.src_dtype = DType::i64;
  narrow.dst_dtype = DType::i32;
  Keep keep = a.keep();
  for (auto& s : b.keep()) keep.push_back(s);
  keep.insert(keep.end(), {rowptr.storage, indices.storage, values.storage, indptr.storage});
  check(env, op, launch("sparse.matmul", a.device(), std::move(keep),
                        [p, op, product, narrow](ThreadPool& pool) {
                          SPARQ_RETURN_IF_ERROR(named(op, spgemm_numeric_cpu(p, pool, product.get())));
                          return cast_cpu(narrow, pool);
                        },
                        [p, narrow](cudaStream_t s) {
                          SPARQ_RETURN_IF_ERROR(SPARQ_CUDA_CALL(spgemm_numeric_cuda(p, s)));
                          return SPARQ_CUDA_CALL(cast_cuda(narrow, s));
                        }));
  Napi::Array out = Napi::Array::New(env, 3);
  out.Set(0u, NativeTensor::wrap(env, std::move(indptr)));
  out.Set(1u, NativeTensor::wrap(env, std::move(indices)));
  out.Set(2u, NativeTensor::wrap(env, std::move(values)));
  return out;
}

void require_cpu(Napi::Env env, const std::string& op, const CsrArg& m) {
  if (!m.device().is_cpu())
    throw_error(env, Code::device, op + ": this step runs on the CPU, got a matrix on " + m.device().name());
}

// C of a CPU product, made in one queued task (see SpgemmCpu).
struct CpuMatmulResult {
  Status status;
  TensorView indptr, indices, values;
};

// Validation, the fused product and C's arrays at their final size, all on the stream's worker:
// int64 row pointers are computed in place, int32 ones narrowed from a transient copy.
Status cpu_matmul(SpgemmParams p, DType ptr_dtype, const std::string& op, ThreadPool& pool, CpuMatmulResult* r) {
  const int64_t rows = p.a.rows;
  std::vector<int64_t> wide;
  if (ptr_dtype == DType::i64) {
    SPARQ_RETURN_IF_ERROR(allocate_tensor(Device::cpu(), DType::i64, {rows + 1}, &r->indptr));
    p.rowptr_c = static_cast<int64_t*>(r->indptr.data());
  } else {
    wide.resize(static_cast<size_t>(rows) + 1);
    p.rowptr_c = wide.data();
  }
  CpuProduct product;
  SPARQ_RETURN_IF_ERROR(named(op, spgemm_symbolic_cpu(p, pool, &product)));
  const int64_t nnz = p.rowptr_c[rows];
  if (ptr_dtype == DType::i32) {
    if (nnz > std::numeric_limits<int32_t>::max())
      return Status(Code::unsupported, op + ": C has " + std::to_string(nnz) + " stored entries, more than int32 row pointers can address (" +
                                           std::to_string(std::numeric_limits<int32_t>::max()) + "); give A int64 row pointers");
    SPARQ_RETURN_IF_ERROR(allocate_tensor(Device::cpu(), DType::i32, {rows + 1}, &r->indptr));
  }
  SPARQ_RETURN_IF_ERROR(allocate_tensor(Device::cpu(), DType::i32, {nnz}, &r->indices));
  SPARQ_RETURN_IF_ERROR(allocate_tensor(Device::cpu(), p.dtype, {nnz}, &r->values));
  p.indices_c = static_cast<int32_t*>(r->indices.data());
  p.values_c = r->values.data();
  p.nnz_c = nnz;
  p.a_valid = p.b_valid = true;  // symbolic checked them
  SPARQ_RETURN_IF_ERROR(named(op, spgemm_numeric_cpu(p, pool, &product)));
  if (ptr_dtype == DType::i32) {
    int32_t* out = static_cast<int32_t*>(r->indptr.data());
    for (int64_t i = 0; i <= rows; ++i) out[i] = static_cast<int32_t>(wide[i]);
  }
  return Status::OK();
}

// As stream_bindings.cc words a failure of earlier queued work that a read reports.
Napi::Error stream_failure_error(Napi::Env env, const CpuStream::Failure& f) {
  std::string msg = f.status.message() + " (queued op '" + f.op + "' failed after it was enqueued";
  if (f.more) msg += "; " + std::to_string(f.more) + " later op(s) failed too";
  Napi::Error e = make_error(env, f.status.code(), msg + ")");
  e.Set("seq", Napi::Number::New(env, static_cast<double>(f.seq)));
  e.Set("op", Napi::String::New(env, f.op));
  e.Set("device", Napi::String::New(env, "cpu"));
  return e;
}

Napi::Array csr_arrays(Napi::Env env, CpuMatmulResult& r) {
  Napi::Array out = Napi::Array::New(env, 3);
  out.Set(0u, NativeTensor::wrap(env, std::move(r.indptr)));
  out.Set(1u, NativeTensor::wrap(env, std::move(r.indices)));
  out.Set(2u, NativeTensor::wrap(env, std::move(r.values)));
  return out;
}

// Products up to this much work (products + 16 per row; up to ~0.5 ms of one core) run on the
// calling thread when they can: queueing one and settling its promise costs ~40 us, a large part
// of their time.
constexpr int64_t kInlineWork = int64_t{1} << 18;

// A small product may run right now on the calling thread when the CPU stream is idle with no
// failure to report: then every op queued before has written its outputs (A and B are final), and
// running now is what the stream would do next. Only this JavaScript thread can queue ops on
// these tensors, so nothing queued meanwhile can touch them.
bool runs_inline(const SpgemmParams& p) {
  CpuStream& s = CpuStream::get();
  return s.idle() && s.failed_seq() == 0 && spgemm_is_small_cpu(p, kInlineWork);
}

// C of a small product, computed now. The stream's pool is free while the stream is idle (and
// takes one caller at a time), so its helpers join in; the smallest products run on this thread alone.
Napi::Value matmul_inline(Napi::Env env, const SpgemmParams& p, DType ptr_dtype, const std::string& op) {
  CpuMatmulResult r;
  Status st;
  try {
    st = cpu_matmul(p, ptr_dtype, op, CpuStream::get().pool(), &r);
  } catch (const std::bad_alloc&) {
    st = Status(Code::oom, op + ": out of host memory");
  }
  if (!st.ok()) throw_error(env, st.code(), st.message());
  return csr_arrays(env, r);
}

// spgemmCpu(op, A, B, sortColumns, indptrDType, valid?) -> [indptr, indices, values] of C = A·B, or
// a Promise of them. A small product on an idle stream is computed at once (see runs_inline; a fault
// throws). Otherwise ONE queued task and one hop back to JavaScript (the two-phase path needs a
// task, a read of nnz(C), a second task and a second hop; for small matrices those dominate): a
// fault of this product rejects the promise (with `seq` for the call site); an earlier op's failure
// rejects it as a read would. `valid` (bit 0: A, bit 1: B) skips the structural checks of an operand
// that an earlier product already passed (CSR matrices are immutable).
Napi::Value SpgemmCpu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "sparse.matmul", "op");
  CsrArg a = arg_csr(info[1], op, "A", true);
  CsrArg b = arg_csr(info[2], op, "B", true);
  SpgemmParams p = product_params(env, op, a, b, true);
  require_cpu(env, op, a);
  p.sort_columns = arg_bool(info[3], op, "sortColumns");
  const DType ptr_dtype = arg_dtype(info[4], op, "indptrDType");
  if (ptr_dtype != DType::i32 && ptr_dtype != DType::i64)
    throw_error(env, Code::dtype, op + ": indptrDType must be 'int32' or 'int64', got '" + dtype_name(ptr_dtype) + "'");
  const int64_t valid = info[5].IsUndefined() ? 0 : arg_integer(info[5], op, "valid", 0, 3);
  p.a_valid = valid & 1;
  p.b_valid = valid & 2;
  if (runs_inline(p)) return matmul_inline(env, p, ptr_dtype, op);
  Keep keep = a.keep();
  for (auto& s : b.keep()) keep.push_back(s);
  auto deferred = Napi::Promise::Deferred::New(env);
  std::shared_ptr<JsQueue> queue = addon_data(env).queue;
  auto seq = std::make_shared<uint64_t>(0);  // set below, read on this thread when the result comes
  queue->expect(env);
  *seq = CpuStream::get().enqueue("sparse.matmul", [=, keep = std::move(keep)]() {
    auto failure = std::make_shared<CpuStream::Failure>();
    const bool failed = CpuStream::get().take_failure(UINT64_MAX, failure.get());
    auto r = std::make_shared<CpuMatmulResult>();
    if (!failed) r->status = cpu_matmul(p, ptr_dtype, op, CpuStream::get().pool(), r.get());
    queue->post([=](Napi::Env env) mutable {
      if (failed) {
        deferred.Reject(stream_failure_error(env, *failure).Value());
      } else if (!r->status.ok()) {
        Napi::Error e = make_error(env, r->status.code(), r->status.message());
        e.Set("seq", Napi::Number::New(env, static_cast<double>(*seq)));
        deferred.Reject(e.Value());
      } else {
        deferred.Resolve(csr_arrays(env, *r));
      }
    });
    return Status::OK();
  });
  return deferred.Promise();
}

// csrNonzeroRowptr(op, m) -> int64 [rows + 1] row pointers of m without its zero values (CPU).
Napi::Value CsrNonzeroRowptr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "sparse.dropZeros", "op");
  CsrArg m = arg_csr(info[1], op, "matrix", true);
  require_cpu(env, op, m);
  TensorView rowptr = alloc(env, op, m.device(), DType::i64, {m.ref.rows + 1});
  CompactParams p;
  p.m = m.ref;
  p.dtype = m.dtype;
  p.rowptr_out = static_cast<int64_t*>(rowptr.data());
  Keep keep = m.keep();
  keep.push_back(rowptr.storage);
  check(env, op, launch("sparse.dropZeros", m.device(), std::move(keep),
                        [p, op](ThreadPool& pool) {
                          SPARQ_RETURN_IF_ERROR(named(op, csr_validate_cpu(p.m, pool)));
                          return csr_nonzero_rowptr_cpu(p, pool);
                        },
                        [](cudaStream_t) { return Status(Code::internal, "CPU only"); }));
  return NativeTensor::wrap(env, std::move(rowptr));
}

// csrCompact(op, m, rowptr, nnz) -> [indices, values]: m's nonzero entries (CPU).
Napi::Value CsrCompact(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "sparse.dropZeros", "op");
  CsrArg m = arg_csr(info[1], op, "matrix", true);
  require_cpu(env, op, m);
  const TensorView& rowptr = arg_tensor(info[2], op, "rowptr");
  if (rowptr.dtype != DType::i64 || rowptr.shape != std::vector<int64_t>{m.ref.rows + 1} || !rowptr.device().is_cpu())
    throw_error(env, Code::invalid_arg_value, op + ": rowptr must be the int64 [rows + 1] tensor from csrNonzeroRowptr");
  const int64_t nnz = arg_integer(info[3], op, "nnz", 0, m.ref.stored);
  TensorView indices = alloc(env, op, m.device(), DType::i32, {nnz});
  TensorView values = alloc(env, op, m.device(), m.dtype, {nnz});
  CompactParams p;
  p.m = m.ref;
  p.dtype = m.dtype;
  p.rowptr_out = static_cast<int64_t*>(rowptr.data());
  p.indices_out = static_cast<int32_t*>(indices.data());
  p.values_out = values.data();
  Keep keep = m.keep();
  keep.insert(keep.end(), {rowptr.storage, indices.storage, values.storage});
  check(env, op, launch("sparse.dropZeros", m.device(), std::move(keep),
                        [p, nnz](ThreadPool& pool) {
                          if (p.rowptr_out[p.m.rows] != nnz) return Status(Code::internal, "dropZeros: nnz changed");
                          return csr_compact_cpu(p, pool);
                        },
                        [](cudaStream_t) { return Status(Code::internal, "CPU only"); }));
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, NativeTensor::wrap(env, std::move(indices)));
  out.Set(1u, NativeTensor::wrap(env, std::move(values)));
  return out;
}

// csrTranspose(op, m) -> [indptr, indices, values] of mᵀ, columns sorted (CPU).
Napi::Value CsrTranspose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string op = arg_string(info[0], "sparse.transpose", "op");
  CsrArg m = arg_csr(info[1], op, "matrix", true);
  require_cpu(env, op, m);
  TensorView indptr = alloc(env, op, m.device(), m.indptr.dtype, {m.ref.cols + 1});
  TensorView indices = alloc(env, op, m.device(), DType::i32, {m.ref.stored});
  TensorView values = alloc(env, op, m.device(), m.dtype, {m.ref.stored});
  TransposeParams p;
  p.m = m.ref;
  p.dtype = m.dtype;
  p.indptr_out = indptr.data();
  p.indices_out = static_cast<int32_t*>(indices.data());
  p.values_out = values.data();
  Keep keep = m.keep();
  keep.insert(keep.end(), {indptr.storage, indices.storage, values.storage});
  check(env, op, launch("sparse.transpose", m.device(), std::move(keep),
                        [p, op](ThreadPool& pool) {
                          SPARQ_RETURN_IF_ERROR(named(op, csr_validate_cpu(p.m, pool)));
                          return csr_transpose_cpu(p, pool);
                        },
                        [](cudaStream_t) { return Status(Code::internal, "CPU only"); }));
  Napi::Array out = Napi::Array::New(env, 3);
  out.Set(0u, NativeTensor::wrap(env, std::move(indptr)));
  out.Set(1u, NativeTensor::wrap(env, std::move(indices)));
  out.Set(2u, NativeTensor::wrap(env, std::move(values)));
  return out;
}

}  // namespace

void register_sparse_bindings(Napi::Env env, Napi::Object exports) {
  exports.Set("csrValidate", Napi::Function::New<CsrValidate>(env, "csrValidate"));
  exports.Set("spgemmSymbolic", Napi::Function::New<SpgemmSymbolic>(env, "spgemmSymbolic"));
  exports.Set("spgemmNumeric", Napi::Function::New<SpgemmNumeric>(env, "spgemmNumeric"));
  exports.Set("spgemmCpu", Napi::Function::New<SpgemmCpu>(env, "spgemmCpu"));
  exports.Set("csrNonzeroRowptr", Napi::Function::New<CsrNonzeroRowptr>(env, "csrNonzeroRowptr"));
  exports.Set("csrCompact", Napi::Function::New<CsrCompact>(env, "csrCompact"));
  exports.Set("csrTranspose", Napi::Function::New<CsrTranspose>(env, "csrTranspose"));
}

}  // namespace sparq
