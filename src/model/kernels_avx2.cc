// AVX2 kernels (the build baseline x86-64-v3: AVX2, FMA, F16C) and the SIMD activation
// quantizers. Integer dot products use maddubs (u8 x s8 -> s16 pairs) then madd (-> s32); the
// unsigned operand is always the weight code (Q8_0: |w| with the sign moved onto the activation),
// so no pair sum can saturate: |code| <= 128 and |q| <= 127 give at most 2 * 128 * 127 < 32767.
#include <immintrin.h>

#include <cstring>

#include "model/kernels_internal.h"
#include "tracemark/model/quant.h"

namespace tracemark::kernels {
namespace {

constexpr float kQ8Max = 127.0f;

inline float HSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float HalfToFloat(uint16_t h) { return _cvtsh_ss(h); }

inline float AbsMax(const float* x, int n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  for (int j = 0; j < n; j += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Quantizes 32 floats with inverse scale id to int8 (round to nearest even); returns the sum.
inline int32_t Quantize32(const float* x, float id, int8_t* q) {
  const __m256 vid = _mm256_set1_ps(id);
  __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), vid));
  __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), vid));
  __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), vid));
  __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), vid));
  __m256i sum = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
  // packs work within 128-bit lanes; a final permute restores element order.
  __m256i p01 = _mm256_packs_epi32(i0, i1);
  __m256i p23 = _mm256_packs_epi32(i2, i3);
  __m256i p = _mm256_packs_epi16(p01, p23);
  p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), p);
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

inline __m256i LoadU256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m128i LoadU128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }

// Sum of u8 x s8 products in 8 int32 lanes (4 products per lane).
inline __m256i DotU8S8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// Spreads the 32 bits of qh to 32 bytes: 0x10 where the bit is set, else 0.
inline __m256i HighBitsToBytes(uint32_t qh) {
  const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2,
                                        2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
  __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int32_t>(qh)), shuf);
  v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
  return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

inline __m256i Nibbles32(const uint8_t* qs) {
  const __m128i v = LoadU128(qs);
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(v, 4), v);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

inline uint32_t LoadU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// ---- 32-blocks ----

// Weight codes (unsigned) and float factors of one block.
template <typename Block>
struct Block32;

template <>
struct Block32<BlockQ4_0> {
  static inline __m256i Codes(const BlockQ4_0& b) { return Nibbles32(b.qs); }
  static inline float Scale(const BlockQ4_0& b) { return HalfToFloat(b.d); }
  static inline float Coef(const BlockQ4_0&, float scale) { return -8.0f * scale; }
};
template <>
struct Block32<BlockQ4_1> {
  static inline __m256i Codes(const BlockQ4_1& b) { return Nibbles32(b.qs); }
  static inline float Scale(const BlockQ4_1& b) { return HalfToFloat(b.d); }
  static inline float Coef(const BlockQ4_1& b, float) { return HalfToFloat(b.m); }
};
template <>
struct Block32<BlockQ5_0> {
  static inline __m256i Codes(const BlockQ5_0& b) {
    return _mm256_or_si256(Nibbles32(b.qs), HighBitsToBytes(LoadU32(b.qh)));
  }
  static inline float Scale(const BlockQ5_0& b) { return HalfToFloat(b.d); }
  static inline float Coef(const BlockQ5_0&, float scale) { return -16.0f * scale; }
};
template <>
struct Block32<BlockQ5_1> {
  static inline __m256i Codes(const BlockQ5_1& b) {
    return _mm256_or_si256(Nibbles32(b.qs), HighBitsToBytes(LoadU32(b.qh)));
  }
  static inline float Scale(const BlockQ5_1& b) { return HalfToFloat(b.d); }
  static inline float Coef(const BlockQ5_1& b, float) { return HalfToFloat(b.m); }
};

template <typename Block, int NT>
void Rows32(const uint8_t* w, size_t row_bytes, int64_t n_rows, int64_t k, const ActRow* act,
            float* y, int64_t ldy) {
  const int64_t nb = k / 32;
  for (int64_t r = 0; r < n_rows; ++r) {
    const Block* blocks = reinterpret_cast<const Block*>(w + static_cast<size_t>(r) * row_bytes);
    __m256 acc[NT];
    float corr[NT];
    for (int t = 0; t < NT; ++t) {
      acc[t] = _mm256_setzero_ps();
      corr[t] = 0.0f;
    }
    for (int64_t b = 0; b < nb; ++b) {
      const Block& blk = blocks[b];
      const __m256i codes = Block32<Block>::Codes(blk);
      const float scale = Block32<Block>::Scale(blk);
      const float coef = Block32<Block>::Coef(blk, scale);
      for (int t = 0; t < NT; ++t) {
        const __m256i a = LoadU256(act[t].q + b * 32);
        const __m256 p = _mm256_cvtepi32_ps(DotU8S8(codes, a));
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(scale * act[t].d[b]), p, acc[t]);
        corr[t] += coef * act[t].s[b];
      }
    }
    for (int t = 0; t < NT; ++t) y[t * ldy + r] = HSum(acc[t]) + corr[t];
  }
}

template <int NT>
void RowsQ8_0(const uint8_t* w, size_t row_bytes, int64_t n_rows, int64_t k, const ActRow* act,
              float* y, int64_t ldy) {
  const int64_t nb = k / 32;
  for (int64_t r = 0; r < n_rows; ++r) {
    const auto* blocks = reinterpret_cast<const BlockQ8_0*>(w + static_cast<size_t>(r) * row_bytes);
    __m256 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const __m256i ws = LoadU256(blocks[b].qs);
      const __m256i wabs = _mm256_sign_epi8(ws, ws);
      const float scale = HalfToFloat(blocks[b].d);
      for (int t = 0; t < NT; ++t) {
        const __m256i a = _mm256_sign_epi8(LoadU256(act[t].q + b * 32), ws);
        const __m256 p = _mm256_cvtepi32_ps(DotU8S8(wabs, a));
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(scale * act[t].d[b]), p, acc[t]);
      }
    }
    for (int t = 0; t < NT; ++t) y[t * ldy + r] = HSum(acc[t]);
  }
}

// ---- K-quants ----

// Unpacks the 8 six-bit scales and mins of a Q4_K/Q5_K block into bytes (see quant.h
// UnpackScaleMinK4: sub-blocks 0-3 keep the low 6 bits of bytes 0-7; sub-blocks 4-7 take a
// nibble of bytes 8-11 plus the top 2 bits of bytes 0-7 as bits 4-5).
inline void ScalesMinsK4(const uint8_t* s, uint64_t* sc, uint64_t* mn) {
  const uint32_t u0 = LoadU32(s), u1 = LoadU32(s + 4), u2 = LoadU32(s + 8);
  const uint32_t sc_lo = u0 & 0x3f3f3f3fu;
  const uint32_t mn_lo = u1 & 0x3f3f3f3fu;
  const uint32_t sc_hi = (u2 & 0x0f0f0f0fu) | ((u0 >> 2) & 0x30303030u);
  const uint32_t mn_hi = ((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 2) & 0x30303030u);
  *sc = sc_lo | (static_cast<uint64_t>(sc_hi) << 32);
  *mn = mn_lo | (static_cast<uint64_t>(mn_hi) << 32);
}

// [m0, m0, m1, m1, ..., m7, m7] as int16, matching the 16 bsums of a super-block.
inline __m256i MinsPairs(uint64_t mn) {
  const __m128i m = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(mn)));
  return _mm256_set_m128i(_mm_unpackhi_epi16(m, m), _mm_unpacklo_epi16(m, m));
}

template <bool kFifthBit, int NT>
void RowsQ45K(const uint8_t* w, size_t row_bytes, int64_t n_rows, int64_t k, const ActRow* act,
              float* y, int64_t ldy) {
  using Block = std::conditional_t<kFifthBit, BlockQ5_K, BlockQ4_K>;
  const int64_t nb = k / kQK_K;
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  const __m256i one = _mm256_set1_epi8(1);
  for (int64_t r = 0; r < n_rows; ++r) {
    const Block* blocks = reinterpret_cast<const Block*>(w + static_cast<size_t>(r) * row_bytes);
    __m256 acc[NT], acc_min[NT];
    for (int t = 0; t < NT; ++t) acc[t] = acc_min[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const Block& blk = blocks[b];
      uint64_t sc, mn;
      ScalesMinsK4(blk.scales, &sc, &mn);
      const float d = HalfToFloat(blk.d);
      const float dmin = HalfToFloat(blk.dmin);
      __m256i isum[NT];
      for (int t = 0; t < NT; ++t) isum[t] = _mm256_setzero_si256();
      __m256i qh = _mm256_setzero_si256();
      if constexpr (kFifthBit) qh = LoadU256(blk.qh);
      for (int c = 0; c < 4; ++c) {
        const __m256i v = LoadU256(blk.qs + 32 * c);
        __m256i lo = _mm256_and_si256(v, low4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
        if constexpr (kFifthBit) {
          const __m256i hb_lo = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one);
          const __m256i hb_hi = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one);
          lo = _mm256_or_si256(lo, _mm256_slli_epi16(hb_lo, 4));
          hi = _mm256_or_si256(hi, _mm256_slli_epi16(hb_hi, 4));
        }
        const __m256i sc_lo = _mm256_set1_epi16(static_cast<int16_t>((sc >> (16 * c)) & 0xff));
        const __m256i sc_hi = _mm256_set1_epi16(static_cast<int16_t>((sc >> (16 * c + 8)) & 0xff));
        for (int t = 0; t < NT; ++t) {
          const int8_t* q = act[t].q + b * kQK_K + 64 * c;
          const __m256i p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, LoadU256(q)), sc_lo);
          const __m256i p_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, LoadU256(q + 32)), sc_hi);
          isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(p_lo, p_hi));
        }
      }
      const __m256i mins = MinsPairs(mn);
      for (int t = 0; t < NT; ++t) {
        const float da = act[t].d[b];
        const __m256i bs = LoadU256(act[t].bsums + b * 16);
        const __m256 m = _mm256_cvtepi32_ps(_mm256_madd_epi16(bs, mins));
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * da), _mm256_cvtepi32_ps(isum[t]), acc[t]);
        acc_min[t] = _mm256_fmadd_ps(_mm256_set1_ps(dmin * da), m, acc_min[t]);
      }
    }
    for (int t = 0; t < NT; ++t) y[t * ldy + r] = HSum(acc[t]) - HSum(acc_min[t]);
  }
}

template <int NT>
void RowsQ6K(const uint8_t* w, size_t row_bytes, int64_t n_rows, int64_t k, const ActRow* act,
             float* y, int64_t ldy) {
  const int64_t nb = k / kQK_K;
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  const __m256i bits45 = _mm256_set1_epi8(0x30);
  // Shuffles picking int16 scale 2i for the low 128-bit lane and 2i+1 for the high lane.
  __m256i pick[4];
  for (int i = 0; i < 4; ++i) {
    const char lo0 = static_cast<char>(4 * i), lo1 = static_cast<char>(4 * i + 1);
    const char hi0 = static_cast<char>(4 * i + 2), hi1 = static_cast<char>(4 * i + 3);
    pick[i] = _mm256_setr_epi8(lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1,
                               lo0, lo1, hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1,
                               hi0, hi1, hi0, hi1);
  }
  for (int64_t r = 0; r < n_rows; ++r) {
    const auto* blocks = reinterpret_cast<const BlockQ6_K*>(w + static_cast<size_t>(r) * row_bytes);
    __m256 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const BlockQ6_K& blk = blocks[b];
      const __m128i sc8 = LoadU128(blk.scales);
      const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
      __m256i isum[NT];
      for (int t = 0; t < NT; ++t) {
        // The -32 offset: -32 * sum_g sc_g * bsum_g.
        const __m256i bs = LoadU256(act[t].bsums + b * 16);
        isum[t] = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5);
        isum[t] = _mm256_sub_epi32(_mm256_setzero_si256(), isum[t]);
      }
      for (int h = 0; h < 2; ++h) {
        const __m256i l0 = LoadU256(blk.ql + 64 * h);
        const __m256i l1 = LoadU256(blk.ql + 64 * h + 32);
        const __m256i qh = LoadU256(blk.qh + 32 * h);
        __m256i codes[4];
        codes[0] = _mm256_or_si256(_mm256_and_si256(l0, low4),
                                   _mm256_and_si256(_mm256_slli_epi16(qh, 4), bits45));
        codes[1] = _mm256_or_si256(_mm256_and_si256(l1, low4),
                                   _mm256_and_si256(_mm256_slli_epi16(qh, 2), bits45));
        codes[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4),
                                   _mm256_and_si256(qh, bits45));
        codes[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                                   _mm256_and_si256(_mm256_srli_epi16(qh, 2), bits45));
        const __m128i sc_half = _mm_cvtepi8_epi16(h == 0 ? sc8 : _mm_unpackhi_epi64(sc8, sc8));
        const __m256i sc_b = _mm256_broadcastsi128_si256(sc_half);
        for (int i = 0; i < 4; ++i) {
          const __m256i scv = _mm256_shuffle_epi8(sc_b, pick[i]);
          for (int t = 0; t < NT; ++t) {
            const __m256i a = LoadU256(act[t].q + b * kQK_K + 128 * h + 32 * i);
            isum[t] = _mm256_add_epi32(
                isum[t], _mm256_madd_epi16(_mm256_maddubs_epi16(codes[i], a), scv));
          }
        }
      }
      const float d = HalfToFloat(blk.d);
      for (int t = 0; t < NT; ++t) {
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * act[t].d[b]), _mm256_cvtepi32_ps(isum[t]),
                                 acc[t]);
      }
    }
    for (int t = 0; t < NT; ++t) y[t * ldy + r] = HSum(acc[t]);
  }
}

// ---- Float weights ----

struct LoadF32 {
  static inline __m256 Load8(const uint8_t* row, int64_t j) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + j);
  }
  static inline float Load1(const uint8_t* row, int64_t j) {
    float v;
    std::memcpy(&v, row + 4 * j, 4);
    return v;
  }
};
struct LoadF16 {
  static inline __m256 Load8(const uint8_t* row, int64_t j) {
    return _mm256_cvtph_ps(LoadU128(row + 2 * j));
  }
  static inline float Load1(const uint8_t* row, int64_t j) {
    uint16_t h;
    std::memcpy(&h, row + 2 * j, 2);
    return HalfToFloat(h);
  }
};
struct LoadBf16 {
  static inline __m256 Load8(const uint8_t* row, int64_t j) {
    const __m256i v = _mm256_cvtepu16_epi32(LoadU128(row + 2 * j));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
  }
  static inline float Load1(const uint8_t* row, int64_t j) {
    uint16_t h;
    std::memcpy(&h, row + 2 * j, 2);
    return Bf16ToFp32(h);
  }
};

template <typename L, int NT>
void RowsFloat(const uint8_t* w, size_t row_bytes, int64_t n_rows, int64_t k, const ActRow* act,
               float* y, int64_t ldy) {
  const int64_t k8 = k & ~int64_t{7};
  for (int64_t r = 0; r < n_rows; ++r) {
    const uint8_t* row = w + static_cast<size_t>(r) * row_bytes;
    __m256 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t j = 0; j < k8; j += 8) {
      const __m256 wv = L::Load8(row, j);
      for (int t = 0; t < NT; ++t) acc[t] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(act[t].x + j), acc[t]);
    }
    for (int t = 0; t < NT; ++t) {
      float s = HSum(acc[t]);
      for (int64_t j = k8; j < k; ++j) s += L::Load1(row, j) * act[t].x[j];
      y[t * ldy + r] = s;
    }
  }
}

// Dispatches the token count to the template instance.
#define TM_NT_DISPATCH(name, ...)                                                              \
  void name(const uint8_t* w, size_t rb, int64_t nr, int64_t k, const ActRow* a, int nt,         \
            float* y, int64_t ldy) {                                                           \
    switch (nt) {                                                                              \
      case 1: __VA_ARGS__<1>(w, rb, nr, k, a, y, ldy); break;                                 \
      case 2: __VA_ARGS__<2>(w, rb, nr, k, a, y, ldy); break;                                 \
      case 3: __VA_ARGS__<3>(w, rb, nr, k, a, y, ldy); break;                                 \
      default: __VA_ARGS__<4>(w, rb, nr, k, a, y, ldy); break;                                \
    }                                                                                          \
  }

template <int NT> void RowsQ4_0(const uint8_t* w, size_t rb, int64_t nr, int64_t k, const ActRow* a, float* y, int64_t ldy) { Rows32<BlockQ4_0, NT>(w, rb, nr, k, a, y, ldy); }
template <int NT> void RowsQ4_1(const uint8_t* w, size_t rb, int64_t nr, int64_t k, const ActRow* a, float* y, int64_t ldy) { Rows32<BlockQ4_1, NT>(w, rb, nr, k, a, y, ldy); }
template <int NT> void RowsQ5_0(const uint8_t* w, size_t rb, int64_t nr, int64_t k, const ActRow* a, float* y, int64_t ldy) { Rows32<BlockQ5_0, NT>(w, rb, nr, k, a, y, ldy); }
template <int NT> void RowsQ5_1(const uint8_t* w, size_t rb, int64_t nr, int64_t k, const ActRow* a, float* y, int64_t ldy) { Rows32<BlockQ5_1, NT>(w, rb, nr, k, a, y, ldy); }
template <int NT> void RowsQ4K(const uint8_t* w, size_t rb, int64_t nr, int64_t k, const ActRow* a, float* y, int64_t ldy) { RowsQ45K<false, NT>(w, rb, nr, k, a, y, ldy); }
template <int NT> void RowsQ5K(const uint8_t* w, size_t rb, int64_t nr, int64_t k, const ActRow* a, float* y, int64_t ldy) { RowsQ45K<true, NT>(w, rb, nr, k, a, y, ldy); }
template <int NT> void RowsF32(const uint8_t* w, size_t rb, int64_t nr, int64_t k, const ActRow* a, float* y, int64_t ldy) { RowsFloat<LoadF32, NT>(w, rb, nr, k, a, y, ldy); }
template <int NT> void RowsF16(const uint8_t* w, size_t rb, int64_t nr, int64_t k, const ActRow* a, float* y, int64_t ldy) { RowsFloat<LoadF16, NT>(w, rb, nr, k, a, y, ldy); }
template <int NT> void RowsBf16(const uint8_t* w, size_t rb, int64_t nr, int64_t k, const ActRow* a, float* y, int64_t ldy) { RowsFloat<LoadBf16, NT>(w, rb, nr, k, a, y, ldy); }

TM_NT_DISPATCH(KQ4_0, RowsQ4_0)
TM_NT_DISPATCH(KQ4_1, RowsQ4_1)
TM_NT_DISPATCH(KQ5_0, RowsQ5_0)
TM_NT_DISPATCH(KQ5_1, RowsQ5_1)
TM_NT_DISPATCH(KQ8_0, RowsQ8_0)
TM_NT_DISPATCH(KQ4_K, RowsQ4K)
TM_NT_DISPATCH(KQ5_K, RowsQ5K)
TM_NT_DISPATCH(KQ6_K, RowsQ6K)
TM_NT_DISPATCH(KF32, RowsF32)
TM_NT_DISPATCH(KF16, RowsF16)
TM_NT_DISPATCH(KBf16, RowsBf16)

}  // namespace

void QuantizeA32Avx2(const float* x, int64_t k, int8_t* q, float* d, float* s) {
  for (int64_t b = 0; b < k / 32; ++b) {
    const float amax = AbsMax(x + b * 32, 32);
    const float db = amax / kQ8Max;
    const float id = amax > 0.0f ? kQ8Max / amax : 0.0f;
    const int32_t sum = Quantize32(x + b * 32, id, q + b * 32);
    d[b] = db;
    s[b] = db * static_cast<float>(sum);
  }
}

void QuantizeAKAvx2(const float* x, int64_t k, int8_t* q, float* d, int16_t* bsums) {
  for (int64_t b = 0; b < k / kQK_K; ++b) {
    const float* xb = x + b * kQK_K;
    const float amax = AbsMax(xb, kQK_K);
    const float id = amax > 0.0f ? kQ8Max / amax : 0.0f;
    d[b] = amax / kQ8Max;
    for (int c = 0; c < kQK_K / 32; ++c) {
      int8_t* qc = q + b * kQK_K + 32 * c;
      Quantize32(xb + 32 * c, id, qc);
      // Group sums of 16: widen to int16 and add horizontally.
      const __m256i v = _mm256_cvtepi8_epi16(LoadU128(qc));
      const __m256i u = _mm256_cvtepi8_epi16(LoadU128(qc + 16));
      // hadd + madd leave int32 sums of 4 elements: [v0-3, v4-7, u0-3, u4-7 | v8-11, v12-15,
      // u8-11, u12-15], where v are elements 0-15 of the chunk and u elements 16-31.
      __m256i s2 = _mm256_hadd_epi16(v, u);
      s2 = _mm256_madd_epi16(s2, _mm256_set1_epi16(1));
      alignas(32) int32_t part[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(part), s2);
      bsums[b * 16 + 2 * c] = static_cast<int16_t>(part[0] + part[1] + part[4] + part[5]);
      bsums[b * 16 + 2 * c + 1] = static_cast<int16_t>(part[2] + part[3] + part[6] + part[7]);
    }
  }
}

RowsKernel Avx2Kernel(GgmlType type) {
  switch (type) {
    case GgmlType::kF32: return KF32;
    case GgmlType::kF16: return KF16;
    case GgmlType::kBF16: return KBf16;
    case GgmlType::kQ4_0: return KQ4_0;
    case GgmlType::kQ4_1: return KQ4_1;
    case GgmlType::kQ5_0: return KQ5_0;
    case GgmlType::kQ5_1: return KQ5_1;
    case GgmlType::kQ8_0: return KQ8_0;
    case GgmlType::kQ4_K: return KQ4_K;
    case GgmlType::kQ5_K: return KQ5_K;
    case GgmlType::kQ6_K: return KQ6_K;
    default: return nullptr;
  }
}

}  // namespace tracemark::kernels
