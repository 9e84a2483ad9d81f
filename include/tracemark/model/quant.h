// ggml block formats: fp16/bf16 conversion, block struct layouts and reference dequantization.
//
// The block structs mirror ggml's ggml-common.h byte for byte (sizes pinned by static_assert) so
// kernels can cast a tensor's mapped bytes to `const BlockQ4_K*` and index blocks directly; scale
// fields hold raw IEEE fp16 bits (convert with Fp16ToFp32). Blocks contain only 1- and 2-byte
// fields (Q8_K also a float), and GGUF tensor data is 32-byte aligned with even block sizes, so
// the natural alignment of every struct is met inside a mapped tensor.
//
// DequantizeRow is the scalar reference: it is bit-exact with the PyPI `gguf` package's
// gguf.quants.dequantize (same float32 operations in the same order, no fused multiply-add;
// checked by quant_test.cc against committed vectors). It is not the fast path; the matmul kernels
// are. All functions are pure and thread-safe.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

#include "tracemark/model/ggml_type.h"

namespace tracemark {

inline constexpr int kQK4_0 = 32;
inline constexpr int kQK4_1 = 32;
inline constexpr int kQK5_0 = 32;
inline constexpr int kQK5_1 = 32;
inline constexpr int kQK8_0 = 32;
inline constexpr int kQK8_1 = 32;
inline constexpr int kQK_K = 256;       // super-block size of the K-quants
inline constexpr int kKScaleSize = 12;  // packed 6-bit scales and mins of Q4_K/Q5_K

// d: fp16 scale. Element j < 16: low nibble of qs[j]; j + 16: high nibble. y = d * (q - 8).
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK4_0 / 2];
};
// As Q4_0 with an fp16 min m. y = d * q + m.
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQK4_1 / 2];
};
// qh: bit j is the fifth bit of element j (little-endian u32 as 4 bytes). y = d * (q - 16).
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK5_0 / 2];
};
// y = d * q + m, q 5 bits as Q5_0.
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK5_1 / 2];
};
// y = d * qs[j].
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK8_0];
};
// Activation format of ggml for Q4_1/Q5_1 dot products: s = d * sum(qs) (fp16).
struct BlockQ8_1 {
  uint16_t d;
  uint16_t s;
  int8_t qs[kQK8_1];
};
// 8 sub-blocks of 32 with 6-bit scale and min each (see UnpackScaleMinK4).
// y = d * sc * q - dmin * m.
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleSize];
  uint8_t qs[kQK_K / 2];
};
// Q4_K plus one high bit per element in qh.
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleSize];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
// 16 sub-blocks of 16 with int8 scales; d comes last. y = d * sc * (q - 32).
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};
// Activation format of ggml for K-quant dot products: f32 scale, int8 values, and the sums of
// each group of 16 values.
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};

static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 block must be 18 bytes");
static_assert(sizeof(BlockQ4_1) == 20, "Q4_1 block must be 20 bytes");
static_assert(sizeof(BlockQ5_0) == 22, "Q5_0 block must be 22 bytes");
static_assert(sizeof(BlockQ5_1) == 24, "Q5_1 block must be 24 bytes");
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block must be 34 bytes");
static_assert(sizeof(BlockQ8_1) == 36, "Q8_1 block must be 36 bytes");
static_assert(sizeof(BlockQ4_K) == 144, "Q4_K block must be 144 bytes");
static_assert(sizeof(BlockQ5_K) == 176, "Q5_K block must be 176 bytes");
static_assert(sizeof(BlockQ6_K) == 210, "Q6_K block must be 210 bytes");
static_assert(sizeof(BlockQ8_K) == 292, "Q8_K block must be 292 bytes");
static_assert(std::endian::native == std::endian::little, "block formats are little-endian");

// Exact IEEE binary16 -> binary32 (every half, subnormals included, is representable). Infinities
// map to infinities; NaN keeps its sign and payload (shifted), as numpy does.
inline float Fp16ToFp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {
    // Subnormal: value = mant * 2^-24; normalize around the top set bit p (0..9).
    const uint32_t p = 31u - static_cast<uint32_t>(std::countl_zero(mant));
    bits = sign | ((p + 103u) << 23) | ((mant << (23u - p)) & 0x7fffffu);
  }
  return std::bit_cast<float>(bits);
}

// Exact bfloat16 -> binary32 (the top half of the float's bits).
inline float Bf16ToFp32(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

// binary32 -> binary16, round to nearest, ties to even (as F16C vcvtps2ph with imm 0 and numpy).
// Overflow gives infinity; NaN gives a quiet NaN with the sign and top payload bits kept.
uint16_t Fp32ToFp16(float f);

// binary32 -> bfloat16, round to nearest even; NaN made quiet (as ggml_compute_fp32_to_bf16).
uint16_t Fp32ToBf16(float f);

// Unpacks the 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block (ggml's
// get_scale_min_k4).
inline void UnpackScaleMinK4(int j, const uint8_t* scales, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((scales[j + 4] & 0x0f) | ((scales[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
  }
}

// True for the types DequantizeRow handles: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K,
// Q5_K, Q6_K (the `supported` set of TypeTraits).
bool CanDequantize(GgmlType type);

// Writes n floats decoded from the row at src. Preconditions (programmer errors, asserted):
// CanDequantize(type), n >= 0 and n a multiple of the type's block size. src must be 2-byte
// aligned (every row of a GGUF tensor is: data is 32-byte aligned and block sizes are even).
void DequantizeRow(GgmlType type, const void* src, float* dst, int64_t n);

// Per-type entry points (n a multiple of the block size).
void DequantizeRowQ4_0(const BlockQ4_0* x, float* y, int64_t n);
void DequantizeRowQ4_1(const BlockQ4_1* x, float* y, int64_t n);
void DequantizeRowQ5_0(const BlockQ5_0* x, float* y, int64_t n);
void DequantizeRowQ5_1(const BlockQ5_1* x, float* y, int64_t n);
void DequantizeRowQ8_0(const BlockQ8_0* x, float* y, int64_t n);
void DequantizeRowQ4_K(const BlockQ4_K* x, float* y, int64_t n);
void DequantizeRowQ5_K(const BlockQ5_K* x, float* y, int64_t n);
void DequantizeRowQ6_K(const BlockQ6_K* x, float* y, int64_t n);

}  // namespace tracemark
