// Errors that device code finds in the data (an index or a length out of range). CUDA kernels set
// the device's error word (first code wins, atomicCAS); the completion thread reads it when a read
// or synchronize completes and turns it into a failure of that stream. CPU kernels return a Status
// with the same message instead.
#pragma once

namespace sparq {

enum DeviceError : int {
  kDeviceErrorNone = 0,
  kDeviceErrorLengthOutOfRange = 1,    // a per-sequence length outside [0, capacity]
  kDeviceErrorPositionOutOfRange = 2,  // a position index that is negative
  kDeviceErrorIndexOutOfRange = 3,     // a gather/scatter index outside its dimension
  kDeviceErrorMalformedCsr = 4,        // a CSR matrix with a bad indptr or unsorted/out-of-range columns
  kDeviceErrorBadRowPointers = 5,      // SpGEMM numeric: a rowptr of C that its symbolic phase did not produce
};

inline const char* device_error_message(int code) {
  switch (code) {
    case kDeviceErrorLengthOutOfRange: return "a length in the lengths tensor is outside [0, capacity]";
    case kDeviceErrorPositionOutOfRange: return "a position in the positions tensor is negative";
    case kDeviceErrorIndexOutOfRange: return "an index is outside its dimension";
    case kDeviceErrorMalformedCsr:
      return "a CSR matrix is malformed (indptr must run from 0 to nnz without decreasing; column indices must be "
             "in range and strictly increasing within each row)";
    case kDeviceErrorBadRowPointers:
      return "rowptr does not come from spgemmSymbolic on these inputs (a row's range is out of bounds or does not match "
             "its number of entries)";
    default: return "a queued op found invalid data";
  }
}

}  // namespace sparq
