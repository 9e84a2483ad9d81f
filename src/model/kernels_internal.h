// Internal interface between matmul.cc (dispatch, threading, scratch) and the per-ISA kernel
// files kernels_scalar.cc, kernels_avx2.cc and kernels_avx512.cc. Not a public header.
//
// Activation formats (our own; they need not match ggml bit for bit):
//  - A32 (for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 weights): per block of 32 values, a float scale
//    d = amax / 127 and s = d * sum(q), int8 q in [-127, 127] = round(x / d). The q of a row are
//    stored contiguously (k bytes), d and s in their own arrays (k / 32 floats each).
//  - AK (for Q4_K, Q5_K, Q6_K): per super-block of 256 values a float d = amax / 127, int8 q, and
//    int16 sums of each group of 16 q (k / 16 of them).
//  - A32 interleaved (AVX-512 kernels for Q4_1 and Q8_0 only; built beside A32 when that ISA is
//    active): the same int8 codes reordered so that one 32-bit lane holds 4 codes of one block.
//    Per group of kInterleaveBlocks = 16 blocks, kInterleaveVectors = 8 vectors of 64 bytes;
//    vector j, lane i holds block (16 g + i)'s codes at InterleavedOffset(j) + 0..3. Lanes of
//    blocks past the row end are zero. One vpdpbusd per vector then yields 16 per-block partial
//    sums at once, so the float work (convert, scale, accumulate) is once per 16 blocks and token
//    instead of once per 2 blocks. qsum holds each block's exact code sum (int32).
//  - A32 quads (AVX-512 kernel for Q8_0 only, also built with the interleaved copy): per 4
//    blocks kQuadBytes = 256 bytes: a 64-byte vector with codes 0..15 of the 4 blocks (16 bytes
//    each, in block order), one with codes 16..31, 16 int32 with -128 * qsum of block c in lane
//    4c and 0 in the other lanes (the exact correction for Q8_0's codes offset by +128 to
//    unsigned), and 16 floats with d of block c in lanes 4c..4c+3. Blocks past the row end are
//    zero.
// Both quantizers are bit-identical on every ISA (same float operations, exact integer sums), so
// kernels on different ISAs see the same integers; they differ only in float summation order.
//
// Everything here is pure and thread-safe; kernels write only their output range.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tracemark/model/ggml_type.h"

namespace tracemark::kernels {

// The most token rows one kernel call processes per weight-row load: kMaxTileTokens for most
// kernels, kMaxWideTileTokens for those TileTokens() names (their per-token state is small
// enough to keep 8 tokens in registers).
inline constexpr int kMaxTileTokens = 4;
inline constexpr int kMaxWideTileTokens = 8;

// A32 quad layout (see above).
inline constexpr int kQuadBlocks = 4;
inline constexpr int kQuadBytes = 256;

// Interleaved A32 layout (see above).
inline constexpr int kInterleaveBlocks = 16;
inline constexpr int kInterleaveVectors = 8;
inline constexpr int kInterleaveGroupBytes = kInterleaveBlocks * 32;
// First code of a block that vector j holds: vectors 2i and 2i+1 hold codes 4i..4i+3 and
// 16+4i..16+4i+3, the low and high nibbles of weight bytes 4i..4i+3 of Q4_0/Q4_1.
inline constexpr int InterleavedOffset(int j) { return 4 * (j / 2) + 16 * (j % 2); }

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
  const int8_t* qi = nullptr;      // A32 interleaved codes (AVX-512 only), 512 bytes per group
  const int32_t* qsum = nullptr;   // A32 interleaved only: exact sum of each block's codes
  const uint8_t* quad = nullptr;   // A32 quads (AVX-512 only), kQuadBytes per 4 blocks
};

enum class ActFormat { kF32, kA32, kAK };
ActFormat ActFormatFor(GgmlType type);

// Computes y[t * ldy + r] = dot(W row r, act[t]) for r in [0, n_rows) and t in [0, nt), where W
// row r starts at w + r * row_bytes and has k elements. 1 <= nt <= kMaxTileTokens. The result for
// a given (row, token) does not depend on nt or on n_rows.
using RowsKernel = void (*)(const uint8_t* w, size_t row_bytes, int64_t n_rows, int64_t k,
                            const ActRow* act, int nt, float* y, int64_t ldy);

// The tile (most tokens per call) of the kernel that `isa` uses for `type`: kMaxWideTileTokens
// for the AVX-512 interleaved kernels, else kMaxTileTokens.
int TileTokens(Isa isa, GgmlType type);
// True when the kernels of `isa` read ActRow::qi/qsum for A32 activations.
bool UsesInterleavedA32(Isa isa);

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
// Reorders A32 codes q (k of them) into the interleaved layout: qi gets
// ceil(k / 32 / kInterleaveBlocks) * kInterleaveGroupBytes bytes, qsum k / 32 sums.
void InterleaveA32(const int8_t* q, int64_t k, int8_t* qi, int32_t* qsum);
// Builds the quad layout from A32 codes q, scales d and block sums qsum (from InterleaveA32):
// ceil(k / 32 / kQuadBlocks) * kQuadBytes bytes, 64-byte aligned.
void QuadA32(const int8_t* q, const float* d, const int32_t* qsum, int64_t k, uint8_t* quad);

}  // namespace tracemark::kernels
