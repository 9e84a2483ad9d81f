// Internal interface between matmul.cc (dispatch, threading, scratch) and the per-ISA kernel
// files kernels_scalar.cc, kernels_avx2.cc and kernels_avx512.cc. Not a public header.
//
// Activation formats (our own; they need not match ggml bit for bit):
//  - A32 (for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 weights): per block of 32 values, a float scale
//    d = amax / 127 and s = d * sum(q), int8 q in [-127, 127] = round(x / d). The q of a row are
//    stored contiguously (k bytes), d and s in their own arrays (k / 32 floats each).
//  - AK (for Q4_K, Q5_K, Q6_K): per super-block of 256 values a float d = amax / 127, int8 q, and
//    int16 sums of each group of 16 q (k / 16 of them).
// Both quantizers are bit-identical on every ISA (same float operations, exact integer sums), so
// kernels on different ISAs see the same integers; they differ only in float summation order.
//
// Everything here is pure and thread-safe; kernels write only their output range.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tracemark/model/ggml_type.h"

namespace tracemark::kernels {

// The most token rows one kernel call processes per weight-row load.
inline constexpr int kMaxTileTokens = 4;

enum class Isa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

const char* IsaName(Isa isa);
// The best ISA this CPU supports (cpuid), ignoring any override.
Isa DetectIsa();
// Environment variable that selects the ISA for the process ("scalar", "avx2", "avx512");
// ignored when unset, unknown or unsupported by the CPU.
inline constexpr const char* kIsaEnvVar = "TRACEMARK_KERNEL_ISA";
// The ISA MatMul uses now: the override if one is set and supported, else kIsaEnvVar's choice,
// else DetectIsa().
Isa ActiveIsa();
// Forces an ISA (tests and benchmarks). Returns false, changing nothing, if the CPU lacks it.
// Not thread-safe with concurrent MatMul calls.
bool SetIsaOverride(Isa isa);
void ClearIsaOverride();

// One token row's activations as a kernel sees them.
struct ActRow {
  const float* x = nullptr;     // fp32 values (float weight types)
  const int8_t* q = nullptr;    // quantized values, k of them
  const float* d = nullptr;     // per-block scales (A32: k/32, AK: k/256)
  const float* s = nullptr;     // A32 only: d * sum(q) per block
  const int16_t* bsums = nullptr;  // AK only: sum of each group of 16 q
};

enum class ActFormat { kF32, kA32, kAK };
ActFormat ActFormatFor(GgmlType type);

// Computes y[t * ldy + r] = dot(W row r, act[t]) for r in [0, n_rows) and t in [0, nt), where W
// row r starts at w + r * row_bytes and has k elements. 1 <= nt <= kMaxTileTokens. The result for
// a given (row, token) does not depend on nt or on n_rows.
using RowsKernel = void (*)(const uint8_t* w, size_t row_bytes, int64_t n_rows, int64_t k,
                            const ActRow* act, int nt, float* y, int64_t ldy);

// Per-ISA kernel tables; nullptr where the ISA has no kernel for the type (the caller falls
// back to the scalar kernel).
RowsKernel ScalarKernel(GgmlType type);
RowsKernel Avx2Kernel(GgmlType type);
RowsKernel Avx512Kernel(GgmlType type);

// Quantizers. q has k bytes; d and s k/32 floats (A32) or d k/256 floats and bsums k/16 (AK).
// k must be a multiple of 32 (A32) or 256 (AK).
void QuantizeA32Scalar(const float* x, int64_t k, int8_t* q, float* d, float* s);
void QuantizeAKScalar(const float* x, int64_t k, int8_t* q, float* d, int16_t* bsums);
void QuantizeA32Avx2(const float* x, int64_t k, int8_t* q, float* d, float* s);
void QuantizeAKAvx2(const float* x, int64_t k, int8_t* q, float* d, int16_t* bsums);

}  // namespace tracemark::kernels
