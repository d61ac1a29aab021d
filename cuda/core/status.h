// Status: how native code reports failure. Nothing native throws or aborts; the binding turns a
// non-ok Status into a SparqError whose `code` is code_name(code).
#pragma once
#include <string>
#include <utility>

namespace sparq {

enum class Code {
  ok = 0,
  invalid_arg_type,   // ERR_INVALID_ARG_TYPE
  invalid_arg_value,  // ERR_INVALID_ARG_VALUE
  shape,              // ERR_SPARQ_SHAPE
  dtype,              // ERR_SPARQ_DTYPE
  device,             // ERR_SPARQ_DEVICE
  unsupported,        // ERR_SPARQ_UNSUPPORTED
  oom,                // ERR_SPARQ_OOM
  cuda,               // ERR_SPARQ_CUDA
  disposed,           // ERR_SPARQ_DISPOSED
  internal,           // ERR_SPARQ_INTERNAL: a bug in sparq, never the caller's fault
};

inline const char* code_name(Code c) {
  switch (c) {
    case Code::ok: return "OK";
    case Code::invalid_arg_type: return "ERR_INVALID_ARG_TYPE";
    case Code::invalid_arg_value: return "ERR_INVALID_ARG_VALUE";
    case Code::shape: return "ERR_SPARQ_SHAPE";
    case Code::dtype: return "ERR_SPARQ_DTYPE";
    case Code::device: return "ERR_SPARQ_DEVICE";
    case Code::unsupported: return "ERR_SPARQ_UNSUPPORTED";
    case Code::oom: return "ERR_SPARQ_OOM";
    case Code::cuda: return "ERR_SPARQ_CUDA";
    case Code::disposed: return "ERR_SPARQ_DISPOSED";
    case Code::internal: return "ERR_SPARQ_INTERNAL";
  }
  return "ERR_SPARQ_INTERNAL";
}

class Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status OK() { return Status(); }
  bool ok() const { return code_ == Code::ok; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Code code_ = Code::ok;
  std::string message_;
};

#define SPARQ_RETURN_IF_ERROR(expr)            \
  do {                                         \
    ::sparq::Status _st = (expr);              \
    if (!_st.ok()) return _st;                 \
  } while (0)

}  // namespace sparq
