// Scalar reference kernels and the activation quantizers (portable C++, no intrinsics).
//
// The integer math is the same as in the SIMD kernels: per weight block an exact integer dot
// product of the unsigned (or, for Q8_0, signed) weight codes with the int8 activations, then
// float scales; offsets (Q4_0 -8, Q5_0 -16, Q6_K -32) and mins use the activation block sums.
#include <cmath>
#include <cstring>

#include "model/kernels_internal.h"
#include "tracemark/model/quant.h"

namespace tracemark::kernels {
namespace {

constexpr float kQ8Max = 127.0f;

inline float AbsMax(const float* x, int64_t n) {
  float amax = 0.0f;
  for (int64_t j = 0; j < n; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  return amax;
}

// ---- Float weights ----

template <typename Load>
void FloatRows(const uint8_t* w, size_t row_bytes, int64_t n_rows, int64_t k, const ActRow* act,
               int nt, float* y, int64_t ldy, Load load) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const uint8_t* row = w + static_cast<size_t>(r) * row_bytes;
    for (int t = 0; t < nt; ++t) {
      double acc = 0;
      for (int64_t j = 0; j < k; ++j) acc += static_cast<double>(load(row, j)) * act[t].x[j];
      y[t * ldy + r] = static_cast<float>(acc);
    }
  }
}

void F32Rows(const uint8_t* w, size_t rb, int64_t nr, int64_t k, const ActRow* a, int nt, float* y,
             int64_t ldy) {
  FloatRows(w, rb, nr, k, a, nt, y, ldy, [](const uint8_t* row, int64_t j) {
    float v;
    std::memcpy(&v, row + 4 * j, 4);
    return v;
  });
}
void F16Rows(const uint8_t* w, size_t rb, int64_t nr, int64_t k, const ActRow* a, int nt, float* y,
             int64_t ldy) {
  FloatRows(w, rb, nr, k, a, nt, y, ldy, [](const uint8_t* row, int64_t j) {
    uint16_t h;
    std::memcpy(&h, row + 2 * j, 2);
    return Fp16ToFp32(h);
  });
}
void Bf16Rows(const uint8_t* w, size_t rb, int64_t nr, int64_t k, const ActRow* a, int nt, float* y,
              int64_t ldy) {
  FloatRows(w, rb, nr, k, a, nt, y, ldy, [](const uint8_t* row, int64_t j) {
    uint16_t h;
    std::memcpy(&h, row + 2 * j, 2);
    return Bf16ToFp32(h);
  });
}

// ---- 32-blocks: decode codes, then integer dot ----

// Decodes block b into 32 codes and returns (scale, offset coefficient): the block contributes
// scale * da * dot(codes, q) + coef * s.
struct Decoded32 {
  int codes[32];
  float scale;
  float coef;
};

template <typename Block>
void Decode32(const Block& blk, Decoded32* out);

template <>
void Decode32(const BlockQ4_0& b, Decoded32* o) {
  for (int j = 0; j < 16; ++j) {
    o->codes[j] = b.qs[j] & 0x0f;
    o->codes[j + 16] = b.qs[j] >> 4;
  }
  o->scale = Fp16ToFp32(b.d);
  o->coef = -8.0f * o->scale;
}
template <>
void Decode32(const BlockQ4_1& b, Decoded32* o) {
  for (int j = 0; j < 16; ++j) {
    o->codes[j] = b.qs[j] & 0x0f;
    o->codes[j + 16] = b.qs[j] >> 4;
  }
  o->scale = Fp16ToFp32(b.d);
  o->coef = Fp16ToFp32(b.m);
}
inline uint32_t LoadQh(const uint8_t* qh) {
  uint32_t v;
  std::memcpy(&v, qh, 4);
  return v;
}
template <>
void Decode32(const BlockQ5_0& b, Decoded32* o) {
  const uint32_t qh = LoadQh(b.qh);
  for (int j = 0; j < 16; ++j) {
    o->codes[j] = (b.qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
    o->codes[j + 16] = (b.qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
  }
  o->scale = Fp16ToFp32(b.d);
  o->coef = -16.0f * o->scale;
}
template <>
void Decode32(const BlockQ5_1& b, Decoded32* o) {
  const uint32_t qh = LoadQh(b.qh);
  for (int j = 0; j < 16; ++j) {
    o->codes[j] = (b.qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
    o->codes[j + 16] = (b.qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
  }
  o->scale = Fp16ToFp32(b.d);
  o->coef = Fp16ToFp32(b.m);
}
template <>
void Decode32(const BlockQ8_0& b, Decoded32* o) {
  for (int j = 0; j < 32; ++j) o->codes[j] = b.qs[j];
  o->scale = Fp16ToFp32(b.d);
  o->coef = 0.0f;
}

template <typename Block>
void Rows32(const uint8_t* w, size_t row_bytes, int64_t n_rows, int64_t k, const ActRow* act,
            int nt, float* y, int64_t ldy) {
  const int64_t nb = k / 32;
  Decoded32 dec;
  for (int64_t r = 0; r < n_rows; ++r) {
    const Block* blocks = reinterpret_cast<const Block*>(w + static_cast<size_t>(r) * row_bytes);
    float acc[kMaxTileTokens] = {0, 0, 0, 0};
    for (int64_t b = 0; b < nb; ++b) {
      Decode32(blocks[b], &dec);
      for (int t = 0; t < nt; ++t) {
        const int8_t* q = act[t].q + b * 32;
        int32_t p = 0;
        for (int j = 0; j < 32; ++j) p += dec.codes[j] * q[j];
        acc[t] += dec.scale * act[t].d[b] * static_cast<float>(p) + dec.coef * act[t].s[b];
      }
    }
    for (int t = 0; t < nt; ++t) y[t * ldy + r] = acc[t];
  }
}

// ---- K-quants ----

void Q4KRows(const uint8_t* w, size_t row_bytes, int64_t n_rows, int64_t k, const ActRow* act,
             int nt, float* y, int64_t ldy) {
  const int64_t nb = k / kQK_K;
  for (int64_t r = 0; r < n_rows; ++r) {
    const auto* blocks = reinterpret_cast<const BlockQ4_K*>(w + static_cast<size_t>(r) * row_bytes);
    float acc[kMaxTileTokens] = {0, 0, 0, 0};
    for (int64_t b = 0; b < nb; ++b) {
      const BlockQ4_K& blk = blocks[b];
      uint8_t sc[8], mn[8];
      for (int j = 0; j < 8; ++j) UnpackScaleMinK4(j, blk.scales, &sc[j], &mn[j]);
      const float d = Fp16ToFp32(blk.d);
      const float dmin = Fp16ToFp32(blk.dmin);
      for (int t = 0; t < nt; ++t) {
        const int8_t* q = act[t].q + b * kQK_K;
        const int16_t* bs = act[t].bsums + b * 16;
        int32_t main = 0, mins = 0;
        for (int c = 0; c < 4; ++c) {
          int32_t lo = 0, hi = 0;
          for (int l = 0; l < 32; ++l) {
            lo += (blk.qs[32 * c + l] & 0x0f) * q[64 * c + l];
            hi += (blk.qs[32 * c + l] >> 4) * q[64 * c + 32 + l];
          }
          main += lo * sc[2 * c] + hi * sc[2 * c + 1];
        }
        for (int j = 0; j < 8; ++j) mins += mn[j] * (bs[2 * j] + bs[2 * j + 1]);
        const float da = act[t].d[b];
        acc[t] += d * da * static_cast<float>(main) - dmin * da * static_cast<float>(mins);
      }
    }
    for (int t = 0; t < nt; ++t) y[t * ldy + r] = acc[t];
  }
}

void Q5KRows(const uint8_t* w, size_t row_bytes, int64_t n_rows, int64_t k, const ActRow* act,
             int nt, float* y, int64_t ldy) {
  const int64_t nb = k / kQK_K;
  for (int64_t r = 0; r < n_rows; ++r) {
    const auto* blocks = reinterpret_cast<const BlockQ5_K*>(w + static_cast<size_t>(r) * row_bytes);
    float acc[kMaxTileTokens] = {0, 0, 0, 0};
    for (int64_t b = 0; b < nb; ++b) {
      const BlockQ5_K& blk = blocks[b];
      uint8_t sc[8], mn[8];
      for (int j = 0; j < 8; ++j) UnpackScaleMinK4(j, blk.scales, &sc[j], &mn[j]);
      const float d = Fp16ToFp32(blk.d);
      const float dmin = Fp16ToFp32(blk.dmin);
      for (int t = 0; t < nt; ++t) {
        const int8_t* q = act[t].q + b * kQK_K;
        const int16_t* bs = act[t].bsums + b * 16;
        int32_t main = 0, mins = 0;
        for (int c = 0; c < 4; ++c) {
          int32_t lo = 0, hi = 0;
          for (int l = 0; l < 32; ++l) {
            const int h_lo = (blk.qh[l] >> (2 * c)) & 1;
            const int h_hi = (blk.qh[l] >> (2 * c + 1)) & 1;
            lo += ((blk.qs[32 * c + l] & 0x0f) | (h_lo << 4)) * q[64 * c + l];
            hi += ((blk.qs[32 * c + l] >> 4) | (h_hi << 4)) * q[64 * c + 32 + l];
          }
          main += lo * sc[2 * c] + hi * sc[2 * c + 1];
        }
        for (int j = 0; j < 8; ++j) mins += mn[j] * (bs[2 * j] + bs[2 * j + 1]);
        const float da = act[t].d[b];
        acc[t] += d * da * static_cast<float>(main) - dmin * da * static_cast<float>(mins);
      }
    }
    for (int t = 0; t < nt; ++t) y[t * ldy + r] = acc[t];
  }
}

void Q6KRows(const uint8_t* w, size_t row_bytes, int64_t n_rows, int64_t k, const ActRow* act,
             int nt, float* y, int64_t ldy) {
  const int64_t nb = k / kQK_K;
  int codes[kQK_K];
  for (int64_t r = 0; r < n_rows; ++r) {
    const auto* blocks = reinterpret_cast<const BlockQ6_K*>(w + static_cast<size_t>(r) * row_bytes);
    float acc[kMaxTileTokens] = {0, 0, 0, 0};
    for (int64_t b = 0; b < nb; ++b) {
      const BlockQ6_K& blk = blocks[b];
      for (int h = 0; h < 2; ++h) {
        const uint8_t* ql = blk.ql + 64 * h;
        const uint8_t* qh = blk.qh + 32 * h;
        int* out = codes + 128 * h;
        for (int l = 0; l < 32; ++l) {
          out[l] = (ql[l] & 0x0f) | ((qh[l] & 3) << 4);
          out[l + 32] = (ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4);
          out[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
          out[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
        }
      }
      const float d = Fp16ToFp32(blk.d);
      for (int t = 0; t < nt; ++t) {
        const int8_t* q = act[t].q + b * kQK_K;
        const int16_t* bs = act[t].bsums + b * 16;
        int32_t isum = 0;
        for (int g = 0; g < 16; ++g) {
          int32_t p = 0;
          for (int l = 0; l < 16; ++l) p += codes[16 * g + l] * q[16 * g + l];
          isum += blk.scales[g] * (p - 32 * bs[g]);
        }
        acc[t] += d * act[t].d[b] * static_cast<float>(isum);
      }
    }
    for (int t = 0; t < nt; ++t) y[t * ldy + r] = acc[t];
  }
}

}  // namespace

void InterleaveA32(const int8_t* q, int64_t k, int8_t* qi, int32_t* qsum) {
  const int64_t nb = k / 32;
  const int64_t groups = (nb + kInterleaveBlocks - 1) / kInterleaveBlocks;
  std::memset(qi, 0, static_cast<size_t>(groups * kInterleaveGroupBytes));
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* src = q + b * 32;
    int8_t* dst = qi + (b / kInterleaveBlocks) * kInterleaveGroupBytes + (b % kInterleaveBlocks) * 4;
    for (int j = 0; j < kInterleaveVectors; ++j) std::memcpy(dst + j * 64, src + InterleavedOffset(j), 4);
    int32_t sum = 0;
    for (int e = 0; e < 32; ++e) sum += src[e];
    qsum[b] = sum;
  }
}

void QuadA32(const int8_t* q, const float* d, const int32_t* qsum, int64_t k, uint8_t* quad) {
  const int64_t nb = k / 32;
  const int64_t quads = (nb + kQuadBlocks - 1) / kQuadBlocks;
  std::memset(quad, 0, static_cast<size_t>(quads * kQuadBytes));
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* dst = quad + (b / kQuadBlocks) * kQuadBytes;
    const int c = static_cast<int>(b % kQuadBlocks);
    std::memcpy(dst + 16 * c, q + b * 32, 16);
    std::memcpy(dst + 64 + 16 * c, q + b * 32 + 16, 16);
    const int32_t corr = -128 * qsum[b];
    std::memcpy(dst + 128 + 16 * c, &corr, 4);
    for (int l = 0; l < 4; ++l) std::memcpy(dst + 192 + 16 * c + 4 * l, &d[b], 4);
  }
}

void QuantizeA32Scalar(const float* x, int64_t k, int8_t* q, float* d, float* s) {
  for (int64_t b = 0; b < k / 32; ++b) {
    const float* xb = x + b * 32;
    const float amax = AbsMax(xb, 32);
    const float db = amax / kQ8Max;
    const float id = amax > 0.0f ? kQ8Max / amax : 0.0f;
    int32_t sum = 0;
    for (int j = 0; j < 32; ++j) {
      const int v = static_cast<int>(std::nearbyint(xb[j] * id));
      q[b * 32 + j] = static_cast<int8_t>(v);
      sum += v;
    }
    d[b] = db;
    s[b] = db * static_cast<float>(sum);
  }
}

void QuantizeAKScalar(const float* x, int64_t k, int8_t* q, float* d, int16_t* bsums) {
  for (int64_t b = 0; b < k / kQK_K; ++b) {
    const float* xb = x + b * kQK_K;
    const float amax = AbsMax(xb, kQK_K);
    const float id = amax > 0.0f ? kQ8Max / amax : 0.0f;
    d[b] = amax / kQ8Max;
    for (int g = 0; g < 16; ++g) {
      int32_t sum = 0;
      for (int j = 0; j < 16; ++j) {
        const int v = static_cast<int>(std::nearbyint(xb[16 * g + j] * id));
        q[b * kQK_K + 16 * g + j] = static_cast<int8_t>(v);
        sum += v;
      }
      bsums[b * 16 + g] = static_cast<int16_t>(sum);
    }
  }
}

RowsKernel ScalarKernel(GgmlType type) {
  switch (type) {
    case GgmlType::kF32: return F32Rows;
    case GgmlType::kF16: return F16Rows;
    case GgmlType::kBF16: return Bf16Rows;
    case GgmlType::kQ4_0: return Rows32<BlockQ4_0>;
    case GgmlType::kQ4_1: return Rows32<BlockQ4_1>;
    case GgmlType::kQ5_0: return Rows32<BlockQ5_0>;
    case GgmlType::kQ5_1: return Rows32<BlockQ5_1>;
    case GgmlType::kQ8_0: return Rows32<BlockQ8_0>;
    case GgmlType::kQ4_K: return Q4KRows;
    case GgmlType::kQ5_K: return Q5KRows;
    case GgmlType::kQ6_K: return Q6KRows;
    default: return nullptr;
  }
}

}  // namespace tracemark::kernels
