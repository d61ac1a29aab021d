/**
 * sparq: efficient-inference kernels for Node.js. See README.md for the API overview.
 */
export { SparqError, type SparqErrorCode } from './errors.js';
export { type DType, type TypedArrayFor, DTYPES, BYTES_PER_ELEMENT, float16Bits, bfloat16Bits, float16Value, bfloat16Value } from './dtype.js';
export { type Device, type DeviceName, type CudaDevice, type MemoryStats, cuda, emptyCache, memory, synchronize } from './device.js';
export { Tensor } from './tensor.js';
export { type TensorOptions, type TensorData, tensor, empty, full, zeros, ones } from './creation.js';
export { type FloatDType, type RandomOptions, random } from './random.js';
export { type SparqInfo, info, doctorReport } from './info.js';
export { type AttentionState, type DecodeOptions, type RopeOptions, type SdpaOptions, attention, rope } from './attention.js';
export { type KiviCacheOptions, type KiviCacheState, type KvAttendOptions, type KvBits, type KvCacheOptions, type KvFloatDType, type QuantizeOptions, type QuantizedTensor, KiviCache, kv } from './kv.js';
export { type RatAttentionOptions, type RatCacheOptions, type RatForwardOptions, type RatPrefillOptions, type RatScanOptions, type RatScanResult, RatCache, rat } from './rat.js';
export { type CsrInit, type FromMatrixMarketOptions, type IndexDType, type MatmulOptions, type ValueDType, Csr, sparse } from './sparse.js';
export { internal } from './internal.js';
