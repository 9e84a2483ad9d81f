// Reference scalar dequantization. Operation order mirrors gguf-py's quants.py (float32 numpy):
// products and sums are separate roundings, so this file is compiled with -ffp-contract=off
// (src/model/CMakeLists.txt) to keep the compiler from fusing them into FMAs.
#include "tracemark/model/quant.h"

#include <cassert>

namespace tracemark {

uint16_t Fp32ToFp16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) {  // NaN: quiet, keep the top 9 payload bits.
    return static_cast<uint16_t>(sign | 0x7e00u | ((ax >> 13) & 0x1ffu));
  }
  const uint32_t e = ax >> 23;                                // biased float exponent
  if (e > 142) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 2^16: infinity
  const uint32_t mant = ax & 0x7fffffu;
  if (e >= 113) {  // normal half
    uint32_t h = ((e - 112) << 10) | (mant >> 13);
    const uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // carry may reach infinity: correct
    return static_cast<uint16_t>(sign | h);
  }
  // Subnormal half (or zero): count units of 2^-24.
  const uint32_t shift = 126 - e;
  if (shift > 24) return sign;  // below half the smallest subnormal (float denormals too)
  const uint32_t m = mant | 0x800000u;
  uint32_t h = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

uint16_t Fp32ToBf16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 64u);
  return static_cast<uint16_t>((x + (0x7fffu + ((x >> 16) & 1u))) >> 16);
}

bool CanDequantize(GgmlType type) {
  switch (type) {
    case GgmlType::kF32:
    case GgmlType::kF16:
    case GgmlType::kBF16:
    case GgmlType::kQ4_0:
    case GgmlType::kQ4_1:
    case GgmlType::kQ5_0:
    case GgmlType::kQ5_1:
    case GgmlType::kQ8_0:
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K:
    case GgmlType::kQ6_K:
      return true;
    default:
      return false;
  }
}

void DequantizeRowQ4_0(const BlockQ4_0* x, float* y, int64_t n) {
  const int64_t nb = n / kQK4_0;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = Fp16ToFp32(x[i].d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      const int q0 = (x[i].qs[j] & 0x0f) - 8;
      const int q1 = (x[i].qs[j] >> 4) - 8;
      y[i * kQK4_0 + j] = d * static_cast<float>(q0);
      y[i * kQK4_0 + j + kQK4_0 / 2] = d * static_cast<float>(q1);
    }
  }
}

void DequantizeRowQ4_1(const BlockQ4_1* x, float* y, int64_t n) {
  const int64_t nb = n / kQK4_1;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = Fp16ToFp32(x[i].d);
    const float m = Fp16ToFp32(x[i].m);
    for (int j = 0; j < kQK4_1 / 2; ++j) {
      const int q0 = x[i].qs[j] & 0x0f;
      const int q1 = x[i].qs[j] >> 4;
      y[i * kQK4_1 + j] = d * static_cast<float>(q0) + m;
      y[i * kQK4_1 + j + kQK4_1 / 2] = d * static_cast<float>(q1) + m;
    }
  }
}

namespace {
uint32_t LoadU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
}  // namespace

void DequantizeRowQ5_0(const BlockQ5_0* x, float* y, int64_t n) {
  const int64_t nb = n / kQK5_0;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = Fp16ToFp32(x[i].d);
    const uint32_t qh = LoadU32(x[i].qh);
    for (int j = 0; j < kQK5_0 / 2; ++j) {
      const int h0 = static_cast<int>((qh >> j) & 1u) << 4;
      const int h1 = static_cast<int>((qh >> (j + 16)) & 1u) << 4;
      const int q0 = ((x[i].qs[j] & 0x0f) | h0) - 16;
      const int q1 = ((x[i].qs[j] >> 4) | h1) - 16;
      y[i * kQK5_0 + j] = d * static_cast<float>(q0);
      y[i * kQK5_0 + j + kQK5_0 / 2] = d * static_cast<float>(q1);
    }
  }
}

void DequantizeRowQ5_1(const BlockQ5_1* x, float* y, int64_t n) {
  const int64_t nb = n / kQK5_1;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = Fp16ToFp32(x[i].d);
    const float m = Fp16ToFp32(x[i].m);
    const uint32_t qh = LoadU32(x[i].qh);
    for (int j = 0; j < kQK5_1 / 2; ++j) {
      const int h0 = static_cast<int>((qh >> j) & 1u) << 4;
      const int h1 = static_cast<int>((qh >> (j + 16)) & 1u) << 4;
      const int q0 = (x[i].qs[j] & 0x0f) | h0;
      const int q1 = (x[i].qs[j] >> 4) | h1;
      y[i * kQK5_1 + j] = d * static_cast<float>(q0) + m;
      y[i * kQK5_1 + j + kQK5_1 / 2] = d * static_cast<float>(q1) + m;
    }
  }
}

void DequantizeRowQ8_0(const BlockQ8_0* x, float* y, int64_t n) {
  const int64_t nb = n / kQK8_0;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = Fp16ToFp32(x[i].d);
    for (int j = 0; j < kQK8_0; ++j) y[i * kQK8_0 + j] = static_cast<float>(x[i].qs[j]) * d;
  }
}

void DequantizeRowQ4_K(const BlockQ4_K* x, float* y, int64_t n) {
  const int64_t nb = n / kQK_K;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = Fp16ToFp32(x[i].d);
    const float dmin = Fp16ToFp32(x[i].dmin);
    const uint8_t* q = x[i].qs;
    float* out = y + i * kQK_K;
    // 4 chunks of 64 outputs; each chunk reads 32 bytes: low nibbles, then high nibbles.
    for (int c = 0; c < 4; ++c) {
      uint8_t sc, m;
      UnpackScaleMinK4(2 * c, x[i].scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc);
      const float m1 = dmin * static_cast<float>(m);
      UnpackScaleMinK4(2 * c + 1, x[i].scales, &sc, &m);
      const float d2 = d * static_cast<float>(sc);
      const float m2 = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) out[64 * c + l] = d1 * static_cast<float>(q[l] & 0x0f) - m1;
      for (int l = 0; l < 32; ++l) out[64 * c + 32 + l] = d2 * static_cast<float>(q[l] >> 4) - m2;
      q += 32;
    }
  }
}

void DequantizeRowQ5_K(const BlockQ5_K* x, float* y, int64_t n) {
  const int64_t nb = n / kQK_K;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = Fp16ToFp32(x[i].d);
    const float dmin = Fp16ToFp32(x[i].dmin);
    const uint8_t* ql = x[i].qs;
    const uint8_t* qh = x[i].qh;
    float* out = y + i * kQK_K;
    for (int c = 0; c < 4; ++c) {
      uint8_t sc, m;
      UnpackScaleMinK4(2 * c, x[i].scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc);
      const float m1 = dmin * static_cast<float>(m);
      UnpackScaleMinK4(2 * c + 1, x[i].scales, &sc, &m);
      const float d2 = d * static_cast<float>(sc);
      const float m2 = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) {
        const int q = (ql[l] & 0x0f) | (((qh[l] >> (2 * c)) & 1) << 4);
        out[64 * c + l] = d1 * static_cast<float>(q) - m1;
      }
      for (int l = 0; l < 32; ++l) {
        const int q = (ql[l] >> 4) | (((qh[l] >> (2 * c + 1)) & 1) << 4);
        out[64 * c + 32 + l] = d2 * static_cast<float>(q) - m2;
      }
      ql += 32;
    }
  }
}

void DequantizeRowQ6_K(const BlockQ6_K* x, float* y, int64_t n) {
  const int64_t nb = n / kQK_K;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = Fp16ToFp32(x[i].d);
    float* out = y + i * kQK_K;
    // Two halves of 128 outputs: ql advances 64 bytes, qh 32, scales 8.
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = x[i].ql + 64 * h;
      const uint8_t* qh = x[i].qh + 32 * h;
      const int8_t* sc = x[i].scales + 8 * h;
      float* o = out + 128 * h;
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        o[l] = (d * static_cast<float>(sc[is + 0])) * static_cast<float>(q1);
        o[l + 32] = (d * static_cast<float>(sc[is + 2])) * static_cast<float>(q2);
        o[l + 64] = (d * static_cast<float>(sc[is + 4])) * static_cast<float>(q3);
        o[l + 96] = (d * static_cast<float>(sc[is + 6])) * static_cast<float>(q4);
      }
    }
  }
}

void DequantizeRow(GgmlType type, const void* src, float* dst, int64_t n) {
  assert(n >= 0);
  const auto* bytes = static_cast<const uint8_t*>(src);
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(dst, bytes, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::kF16:
      for (int64_t j = 0; j < n; ++j) {
        uint16_t h;
        std::memcpy(&h, bytes + 2 * j, 2);
        dst[j] = Fp16ToFp32(h);
      }
      return;
    case GgmlType::kBF16:
      for (int64_t j = 0; j < n; ++j) {
        uint16_t b;
        std::memcpy(&b, bytes + 2 * j, 2);
        dst[j] = Bf16ToFp32(b);
      }
      return;
    case GgmlType::kQ4_0:
      assert(n % kQK4_0 == 0);
      return DequantizeRowQ4_0(static_cast<const BlockQ4_0*>(src), dst, n);
    case GgmlType::kQ4_1:
      assert(n % kQK4_1 == 0);
      return DequantizeRowQ4_1(static_cast<const BlockQ4_1*>(src), dst, n);
    case GgmlType::kQ5_0:
      assert(n % kQK5_0 == 0);
      return DequantizeRowQ5_0(static_cast<const BlockQ5_0*>(src), dst, n);
    case GgmlType::kQ5_1:
      assert(n % kQK5_1 == 0);
      return DequantizeRowQ5_1(static_cast<const BlockQ5_1*>(src), dst, n);
    case GgmlType::kQ8_0:
      assert(n % kQK8_0 == 0);
      return DequantizeRowQ8_0(static_cast<const BlockQ8_0*>(src), dst, n);
    case GgmlType::kQ4_K:
      assert(n % kQK_K == 0);
      return DequantizeRowQ4_K(static_cast<const BlockQ4_K*>(src), dst, n);
    case GgmlType::kQ5_K:
      assert(n % kQK_K == 0);
      return DequantizeRowQ5_K(static_cast<const BlockQ5_K*>(src), dst, n);
    case GgmlType::kQ6_K:
      assert(n % kQK_K == 0);
      return DequantizeRowQ6_K(static_cast<const BlockQ6_K*>(src), dst, n);
    default:
      assert(false && "DequantizeRow: type not supported (check CanDequantize first)");
      return;
  }
}

}  // namespace tracemark
