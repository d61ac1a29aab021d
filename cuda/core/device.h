// Device identity: 'cpu' or 'cuda:N'.
#pragma once
#include <string>

namespace sparq {

struct Device {
  enum Kind : unsigned char { kCpu = 0, kCuda = 1 };
  Kind kind = kCpu;
  int index = 0;

  static Device cpu() { return Device{}; }
  static Device cuda(int i) { Device d; d.kind = kCuda; d.index = i; return d; }
  bool is_cpu() const { return kind == kCpu; }
  bool is_cuda() const { return kind == kCuda; }
  bool operator==(const Device& o) const { return kind == o.kind && (kind == kCpu || index == o.index); }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string name() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }
};

}  // namespace sparq
