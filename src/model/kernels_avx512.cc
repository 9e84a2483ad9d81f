// AVX-512 kernels (F, BW, VL, VNNI), used only after a runtime cpuid check (matmul.cc).
//
// Everything below the target pragma is compiled for AVX-512 and lives in an anonymous namespace,
// so no inline function shared with other translation units is ever emitted with AVX-512
// instructions (the standard headers are included before the pragma). Q4_1 runs against the
// interleaved activation layout (16 blocks per vector, one block per 32-bit lane) and Q8_0
// against the quad layout (4 blocks per vector), both 8 tokens per tile (kernels_internal.h);
// the other 32-blocks are processed two at a time (64 codes per zmm, vpdpbusd: u8 x s8 -> s32);
// K-quants a 64-element chunk at a time with vpmaddubsw then vpdpwssd against the sub-block
// scales.
#include <immintrin.h>

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <type_traits>

#include "model/kernels_internal.h"
#include "tracemark/model/quant.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq")
// GCC 12's avx512fintrin.h builds several intrinsics from a deliberately undefined register
// (_mm512_undefined_*), which -W(maybe-)uninitialized reports inside the system header.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace tracemark::kernels {
namespace {

inline float HalfToFloat(uint16_t h) { return _cvtsh_ss(h); }

inline __m512i LoadU512(const void* p) { return _mm512_loadu_si512(p); }
inline __m256i LoadU256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m128i LoadU128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }

inline uint32_t LoadU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

inline float HSum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Codes of two blocks in element order: [b0 0..31 | b1 0..31], from 16 nibble bytes each.
inline __m512i Nibbles64(const uint8_t* qs0, const uint8_t* qs1) {
  const __m256i t0 = _mm256_broadcastsi128_si256(LoadU128(qs0));
  const __m256i t1 = _mm256_broadcastsi128_si256(LoadU128(qs1));
  const __m512i x = _mm512_inserti64x4(_mm512_castsi256_si512(t0), t1, 1);
  // 128-bit chunks 1 and 3 (16-bit lanes 8-15 and 24-31) take the high nibbles.
  const __m512i sh = _mm512_mask_srli_epi16(x, 0xff00ff00u, x, 4);
  return _mm512_and_si512(sh, _mm512_set1_epi8(0x0f));
}

// One block (32 codes) in a ymm.
inline __m256i Nibbles32(const uint8_t* qs) {
  const __m128i v = LoadU128(qs);
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0f));
}

template <typename Block>
struct Traits32;
template <>
struct Traits32<BlockQ4_0> {
  static constexpr bool kHigh = false, kMin = false, kSigned = false;
  static constexpr float kOffset = -8.0f;
};
template <>
struct Traits32<BlockQ4_1> {
  static constexpr bool kHigh = false, kMin = true, kSigned = false;
  static constexpr float kOffset = 0.0f;
};
template <>
struct Traits32<BlockQ5_0> {
  static constexpr bool kHigh = true, kMin = false, kSigned = false;
  static constexpr float kOffset = -16.0f;
};
template <>
struct Traits32<BlockQ5_1> {
  static constexpr bool kHigh = true, kMin = true, kSigned = false;
  static constexpr float kOffset = 0.0f;
};
template <>
struct Traits32<BlockQ8_0> {
  static constexpr bool kHigh = false, kMin = false, kSigned = true;
  static constexpr float kOffset = 0.0f;
};

// Blocks whose scales are gathered and converted together.
constexpr int kGroupBlocks = 16;

// Weight codes of two consecutive blocks: [b0 | b1] in element order (unsigned, or raw int8
// for Q8_0).
template <typename Block>
inline __m512i Codes64(const Block& b0, const Block& b1) {
  if constexpr (Traits32<Block>::kSigned) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(LoadU256(b0.qs)), LoadU256(b1.qs), 1);
  } else {
    __m512i codes = Nibbles64(b0.qs, b1.qs);
    if constexpr (Traits32<Block>::kHigh) {
      const __mmask64 hm = static_cast<__mmask64>(LoadU32(b0.qh)) |
                           (static_cast<__mmask64>(LoadU32(b1.qh)) << 32);
      codes = _mm512_mask_add_epi8(codes, hm, codes, _mm512_set1_epi8(0x10));
    }
    return codes;
  }
}

template <typename Block>
inline __m256i Codes32(const Block& b0) {
  if constexpr (Traits32<Block>::kSigned) {
    return LoadU256(b0.qs);
  } else {
    __m256i codes = Nibbles32(b0.qs);
    if constexpr (Traits32<Block>::kHigh) {
      codes = _mm256_mask_add_epi8(codes, LoadU32(b0.qh), codes, _mm256_set1_epi8(0x10));
    }
    return codes;
  }
}

// Horizontal sum (one fixed tree).
inline float ReduceAdd(__m512 a) {
  const __m256 t = _mm256_add_ps(_mm512_castps512_ps256(a),
                                 _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
  __m128 u = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
  u = _mm_add_ps(u, _mm_movehl_ps(u, u));
  u = _mm_add_ss(u, _mm_movehdup_ps(u));
  return _mm_cvtss_f32(u);
}

// 32-blocks, one row. Per group of 16 blocks, one gather fetches the row's 16 fp16 scales (and
// mins), so the per-block float work is one permute and one FMA per token; offsets and mins are
// applied per group with the activation block sums (vector FMA). (Processing two rows per pass
// was tried: faster from cache, but 3-4x slower when streaming from DRAM.)
template <typename Block, int NT>
inline void Rows32Row(const uint8_t* w, size_t row_bytes, int64_t r, int64_t nb,
                      const ActRow* act, float* y, int64_t ldy) {
  using T = Traits32<Block>;
  constexpr bool kCorr = T::kMin || T::kOffset != 0.0f;
  const __m512i gather_idx = _mm512_mullo_epi32(
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
      _mm512_set1_epi32(static_cast<int>(sizeof(Block))));
  const __m512i pair_base = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i two = _mm512_set1_epi32(2);
  const Block* blocks = reinterpret_cast<const Block*>(w + static_cast<size_t>(r) * row_bytes);
  __m512 acc[NT], corr[NT];
  __m256 acc1[NT];
  for (int t = 0; t < NT; ++t) {
    acc[t] = corr[t] = _mm512_setzero_ps();
    acc1[t] = _mm256_setzero_ps();
  }
  for (int64_t g = 0; g < nb; g += kGroupBlocks) {
    const int cnt = static_cast<int>(std::min<int64_t>(kGroupBlocks, nb - g));
    const __mmask16 gm = static_cast<__mmask16>((1u << cnt) - 1);
    // 32 bits at each block start: d (and m for Q4_1/Q5_1 in the high half).
    const __m512i dm = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), gm, gather_idx,
                                                   blocks + g, 1);
    const __m512 wd = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dm));
    __m512 sc[NT];
    for (int t = 0; t < NT; ++t) sc[t] = _mm512_mul_ps(wd, _mm512_maskz_loadu_ps(gm, act[t].d + g));
    if constexpr (kCorr) {
      __m512 coef;
      if constexpr (T::kMin) {
        coef = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dm, 16)));
      } else {
        coef = _mm512_mul_ps(wd, _mm512_set1_ps(T::kOffset));
      }
      for (int t = 0; t < NT; ++t) {
        corr[t] = _mm512_fmadd_ps(coef, _mm512_maskz_loadu_ps(gm, act[t].s + g), corr[t]);
      }
    }
    const Block* gb = blocks + g;
    auto pair = [&](int j, __m512i pidx) {
      const __m512i codes = Codes64(gb[j], gb[j + 1]);
      __m512i ucodes = codes;
      __mmask64 neg = 0;
      if constexpr (T::kSigned) {
        ucodes = _mm512_abs_epi8(codes);
        neg = _mm512_movepi8_mask(codes);
      }
      for (int t = 0; t < NT; ++t) {
        __m512i a = LoadU512(act[t].q + (g + j) * 32);
        if constexpr (T::kSigned) a = _mm512_mask_sub_epi8(a, neg, _mm512_setzero_si512(), a);
        const __m512 p = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ucodes, a));
        acc[t] = _mm512_fmadd_ps(_mm512_permutexvar_ps(pidx, sc[t]), p, acc[t]);
      }
    };
    __m512i pidx = pair_base;
    int j = 0;
    if (cnt == kGroupBlocks) {
      // Full group: a constant trip count the compiler unrolls (no loop overhead per pair).
#pragma GCC unroll 8
      for (int jj = 0; jj < kGroupBlocks; jj += 2) {
        pair(jj, _mm512_add_epi32(pair_base, _mm512_set1_epi32(jj)));
      }
      j = kGroupBlocks;
    } else {
      for (; j + 2 <= cnt; j += 2, pidx = _mm512_add_epi32(pidx, two)) pair(j, pidx);
    }
    if (j < cnt) {
      const __m256i codes = Codes32(gb[j]);
      __m256i ucodes = codes;
      if constexpr (T::kSigned) ucodes = _mm256_abs_epi8(codes);
      const __m512i sidx = _mm512_set1_epi32(j);
      for (int t = 0; t < NT; ++t) {
        __m256i a = LoadU256(act[t].q + (g + j) * 32);
        if constexpr (T::kSigned) a = _mm256_sign_epi8(a, codes);
        const __m256 p = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), ucodes, a));
        const __m256 s = _mm512_castps512_ps256(_mm512_permutexvar_ps(sidx, sc[t]));
        acc1[t] = _mm256_fmadd_ps(s, p, acc1[t]);
      }
    }
  }
  for (int t = 0; t < NT; ++t) {
    __m512 total = _mm512_add_ps(acc[t], _mm512_zextps256_ps512(acc1[t]));
    if constexpr (kCorr) total = _mm512_add_ps(total, corr[t]);
    y[t * ldy + r] = ReduceAdd(total);
  }
}

template <typename Block, int NT>
void Rows32(const uint8_t* w, size_t row_bytes, int64_t n_rows, int64_t k, const ActRow* act,
            float* y, int64_t ldy) {
  const int64_t nb = k / 32;
  for (int64_t r = 0; r < n_rows; ++r) Rows32Row<Block, NT>(w, row_bytes, r, nb, act, y, ldy);
}


// ---- Q4_1 against interleaved activations ----
//
// A group is 16 consecutive blocks; lane i of every vector below belongs to block i of the group.
// The group's 320 weight bytes (16 blocks x 5 dwords: d|m, then 4 dwords of nibbles) are loaded
// as 5 vectors and dword p of every block (p = 0..4) is gathered into one vector by two-source
// permutes: dword 5i + p lies in the first, second or third 128-byte window (a mask per window).
// Per token the 8 vpdpbusd (nibble vectors x interleaved activation vectors) leave each block's
// exact integer dot product in its lane; one convert and two FMAs (scale, min) finish the group.
// The per-token state is one accumulator, so 8 tokens share each weight load without spills.
struct Q4_1Picker {
  __m512i idx[5];
  __mmask16 mid[5], hi[5];
  Q4_1Picker() {
    const __m512i lane5 = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(5));
    for (int p = 0; p < 5; ++p) {
      idx[p] = _mm512_add_epi32(lane5, _mm512_set1_epi32(p));
      const __mmask16 ge32 = _mm512_cmpge_epu32_mask(idx[p], _mm512_set1_epi32(32));
      hi[p] = _mm512_cmpge_epu32_mask(idx[p], _mm512_set1_epi32(64));
      mid[p] = static_cast<__mmask16>(ge32 & ~hi[p]);
    }
  }
  // Dword p of each of the 16 blocks held in s[0..4].
  inline __m512i Pick(const __m512i* s, int p) const {
    const __m512i lo = _mm512_permutex2var_epi32(s[0], idx[p], s[1]);
    const __m512i md = _mm512_permutex2var_epi32(s[2], idx[p], s[3]);
    const __m512i t = _mm512_mask_mov_epi32(lo, mid[p], md);
    return _mm512_mask_permutexvar_epi32(t, hi[p], idx[p], s[4]);
  }
};

// Tail (SmolLM2's 576 = 16 + 2 blocks): a whole interleaved group would cost as much as 16
// blocks, so the cnt < 16 tail blocks go two at a time against the plain A32 codes, with the
// scale of each half picked from a vector of the tail's scales. Masked loads fetch only the
// vectors that hold tail blocks, so nothing past the row's last block is read (loads with an
// all-zero mask were slow when streaming from DRAM).
template <int NT>
inline void Q4_1Tail(const uint8_t* gp, int cnt, int64_t g, const Q4_1Picker& pick,
                     const ActRow* act, __m512* acc) {
  constexpr int kDwordsPerBlock = static_cast<int>(sizeof(BlockQ4_1) / 4);
  __m512i s[5];
  const int dwords = kDwordsPerBlock * cnt;
  for (int v = 0; v < 5; ++v) {
    const int left = std::clamp(dwords - 16 * v, 0, 16);
    s[v] = left == 0 ? _mm512_setzero_si512()
                     : _mm512_maskz_loadu_epi32(static_cast<__mmask16>((1u << left) - 1), gp + 64 * v);
  }
  const __m512i dm = pick.Pick(s, 0);
  const __m512 wd = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dm));
  const __m512 wm = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dm, 16)));
  const __mmask16 gm = static_cast<__mmask16>((1u << cnt) - 1);
  const BlockQ4_1* tb = reinterpret_cast<const BlockQ4_1*>(gp);
  __m512 sc[NT];
  for (int t = 0; t < NT; ++t) {
    sc[t] = _mm512_mul_ps(wd, _mm512_maskz_loadu_ps(gm, act[t].d + g));
    acc[t] = _mm512_fmadd_ps(wm, _mm512_maskz_loadu_ps(gm, act[t].s + g), acc[t]);
  }
  const __m512i pair_base = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  for (int j = 0; j < cnt; j += 2) {
    const bool two = j + 1 < cnt;
    const __m512i codes =
        two ? Nibbles64(tb[j].qs, tb[j + 1].qs) : _mm512_zextsi256_si512(Nibbles32(tb[j].qs));
    const __m512i pidx = _mm512_add_epi32(pair_base, _mm512_set1_epi32(j));
    for (int t = 0; t < NT; ++t) {
      const int8_t* qa = act[t].q + (g + j) * 32;
      const __m512i a = two ? LoadU512(qa) : _mm512_zextsi256_si512(LoadU256(qa));
      const __m512 p = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), codes, a));
      acc[t] = _mm512_fmadd_ps(_mm512_permutexvar_ps(pidx, sc[t]), p, acc[t]);
    }
  }
}

template <int NT>
void RowsQ4_1I(const uint8_t* w, size_t row_bytes, int64_t n_rows, int64_t k, const ActRow* act,
               float* y, int64_t ldy) {
  static_assert(sizeof(BlockQ4_1) == 20);
  const int64_t nb = k / 32;
  const int64_t full = nb / kInterleaveBlocks * kInterleaveBlocks;
  const Q4_1Picker pick;
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  for (int64_t r = 0; r < n_rows; ++r) {
    const uint8_t* row = w + static_cast<size_t>(r) * row_bytes;
    __m512 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t g = 0; g < full; g += kInterleaveBlocks) {
      const uint8_t* gp = row + g * static_cast<int64_t>(sizeof(BlockQ4_1));
      __m512i s[5];
      for (int v = 0; v < 5; ++v) s[v] = LoadU512(gp + 64 * v);
      const __m512i dm = pick.Pick(s, 0);
      const __m512 wd = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dm));
      const __m512 wm = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dm, 16)));
      __m512i codes[kInterleaveVectors];
      for (int p = 0; p < 4; ++p) {
        const __m512i v = pick.Pick(s, 1 + p);
        codes[2 * p] = _mm512_and_si512(v, low4);
        codes[2 * p + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
      }
      const int64_t group_off = g / kInterleaveBlocks * kInterleaveGroupBytes;
      for (int t = 0; t < NT; ++t) {
        const int8_t* qa = act[t].qi + group_off;
        __m512i i0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), codes[0], LoadU512(qa));
        __m512i i1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), codes[1], LoadU512(qa + 64));
        for (int j = 2; j < kInterleaveVectors; j += 2) {
          i0 = _mm512_dpbusd_epi32(i0, codes[j], LoadU512(qa + 64 * j));
          i1 = _mm512_dpbusd_epi32(i1, codes[j + 1], LoadU512(qa + 64 * (j + 1)));
        }
        const __m512 sc = _mm512_mul_ps(wd, _mm512_loadu_ps(act[t].d + g));
        acc[t] = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(_mm512_add_epi32(i0, i1)), acc[t]);
        acc[t] = _mm512_fmadd_ps(wm, _mm512_loadu_ps(act[t].s + g), acc[t]);
      }
    }
    if (full < nb) {
      Q4_1Tail<NT>(row + full * static_cast<int64_t>(sizeof(BlockQ4_1)), static_cast<int>(nb - full),
                   full, pick, act, acc);
    }
    for (int t = 0; t < NT; ++t) y[t * ldy + r] = ReduceAdd(acc[t]);
  }
}

// ---- Q8_0 against quad activations ----
//
// Four blocks per vector, one per 128-bit lane: the 34-byte blocks are not dword-aligned, so a
// 16-block interleave would need a gather or many permutes per vector (vpgatherdd measured ~10x
// slower here). Per quad the weight side is 4 loads, 2 lane shuffles and the sign flip (codes
// + 128, unsigned for vpdpbusd); per token 2 vpdpbusd that start from the activation's exact
// -128 * sum(a) correction, one convert, one multiply by the activation scales and one FMA with
// the weight scales: half the per-token float work of the pairwise kernel.
template <int NT>
void RowsQ8_0Q(const uint8_t* w, size_t row_bytes, int64_t n_rows, int64_t k, const ActRow* act,
               float* y, int64_t ldy) {
  static_assert(sizeof(BlockQ8_0) == 34);
  const int64_t nb = k / 32;
  const __m512i sign = _mm512_set1_epi8(static_cast<char>(0x80));
  // Lane l takes the weight scale of block l / 4.
  const __m512i expand = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  for (int64_t r = 0; r < n_rows; ++r) {
    const BlockQ8_0* blocks = reinterpret_cast<const BlockQ8_0*>(w + static_cast<size_t>(r) * row_bytes);
    __m512 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b += kQuadBlocks) {
      const int cnt = static_cast<int>(std::min<int64_t>(kQuadBlocks, nb - b));
      const BlockQ8_0* qb = blocks + b;
      __m256i c[kQuadBlocks];
      __m128i dh = _mm_setzero_si128();
      for (int i = 0; i < kQuadBlocks; ++i) {
        if (i < cnt) {
          c[i] = LoadU256(qb[i].qs);
          dh = _mm_insert_epi16(dh, qb[i].d, i);
        } else {
          c[i] = _mm256_setzero_si256();
        }
      }
      const __m512i c01 = _mm512_inserti64x4(_mm512_castsi256_si512(c[0]), c[1], 1);
      const __m512i c23 = _mm512_inserti64x4(_mm512_castsi256_si512(c[2]), c[3], 1);
      // Missing blocks have zero activations, so their flipped codes multiply zeros.
      const __m512i v0 = _mm512_xor_si512(_mm512_shuffle_i64x2(c01, c23, _MM_SHUFFLE(2, 0, 2, 0)), sign);
      const __m512i v1 = _mm512_xor_si512(_mm512_shuffle_i64x2(c01, c23, _MM_SHUFFLE(3, 1, 3, 1)), sign);
      const __m512 wd = _mm512_permutexvar_ps(expand, _mm512_castps128_ps512(_mm_cvtph_ps(dh)));
      const int64_t quad_off = b / kQuadBlocks * kQuadBytes;
      for (int t = 0; t < NT; ++t) {
        const uint8_t* qa = act[t].quad + quad_off;
        __m512i i0 = _mm512_load_si512(qa + 128);
        i0 = _mm512_dpbusd_epi32(i0, v0, _mm512_load_si512(qa));
        i0 = _mm512_dpbusd_epi32(i0, v1, _mm512_load_si512(qa + 64));
        const __m512 ad = _mm512_load_ps(reinterpret_cast<const float*>(qa + 192));
        const __m512 p = _mm512_mul_ps(_mm512_cvtepi32_ps(i0), ad);
        acc[t] = _mm512_fmadd_ps(wd, p, acc[t]);
      }
    }
    for (int t = 0; t < NT; ++t) y[t * ldy + r] = ReduceAdd(acc[t]);
  }
}

// ---- K-quants ----

inline void ScalesMinsK4(const uint8_t* s, uint64_t* sc, uint64_t* mn) {
  const uint32_t u0 = LoadU32(s), u1 = LoadU32(s + 4), u2 = LoadU32(s + 8);
  const uint32_t sc_lo = u0 & 0x3f3f3f3fu;
  const uint32_t mn_lo = u1 & 0x3f3f3f3fu;
  const uint32_t sc_hi = (u2 & 0x0f0f0f0fu) | ((u0 >> 2) & 0x30303030u);
  const uint32_t mn_hi = ((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 2) & 0x30303030u);
  *sc = sc_lo | (static_cast<uint64_t>(sc_hi) << 32);
  *mn = mn_lo | (static_cast<uint64_t>(mn_hi) << 32);
}

inline __m256i MinsPairs(uint64_t mn) {
  const __m128i m = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(mn)));
  return _mm256_set_m128i(_mm_unpackhi_epi16(m, m), _mm_unpacklo_epi16(m, m));
}

template <bool kFifthBit, int NT>
void RowsQ45K(const uint8_t* w, size_t row_bytes, int64_t n_rows, int64_t k, const ActRow* act,
              float* y, int64_t ldy) {
  using Block = std::conditional_t<kFifthBit, BlockQ5_K, BlockQ4_K>;
  const int64_t nb = k / kQK_K;
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const __m512i high = _mm512_set1_epi8(0x10);
  // Scale index per 16-bit lane for chunk c: lanes 0-15 sub-block 2c, 16-31 sub-block 2c+1.
  __m512i pick[4];
  for (int c = 0; c < 4; ++c) {
    pick[c] = _mm512_mask_blend_epi16(0xffff0000u, _mm512_set1_epi16(static_cast<int16_t>(2 * c)),
                                      _mm512_set1_epi16(static_cast<int16_t>(2 * c + 1)));
  }
  for (int64_t r = 0; r < n_rows; ++r) {
    const Block* blocks = reinterpret_cast<const Block*>(w + static_cast<size_t>(r) * row_bytes);
    __m512 acc[NT];
    __m256 acc_min[NT];
    for (int t = 0; t < NT; ++t) {
      acc[t] = _mm512_setzero_ps();
      acc_min[t] = _mm256_setzero_ps();
    }
    for (int64_t b = 0; b < nb; ++b) {
      const Block& blk = blocks[b];
      uint64_t sc, mn;
      ScalesMinsK4(blk.scales, &sc, &mn);
      const __m512i sc16 = _mm512_broadcast_i32x4(
          _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(sc))));
      const float d = HalfToFloat(blk.d);
      const float dmin = HalfToFloat(blk.dmin);
      __m512i isum[NT];
      for (int t = 0; t < NT; ++t) isum[t] = _mm512_setzero_si512();
      __m256i qh = _mm256_setzero_si256();
      if constexpr (kFifthBit) qh = LoadU256(blk.qh);
      for (int c = 0; c < 4; ++c) {
        const __m512i x = _mm512_broadcast_i64x4(LoadU256(blk.qs + 32 * c));
        __m512i codes = _mm512_and_si512(_mm512_mask_srli_epi16(x, 0xffff0000u, x, 4), low4);
        if constexpr (kFifthBit) {
          const __mmask32 m_lo = _mm256_test_epi8_mask(qh, _mm256_set1_epi8(static_cast<char>(1 << (2 * c))));
          const __mmask32 m_hi =
              _mm256_test_epi8_mask(qh, _mm256_set1_epi8(static_cast<char>(1 << (2 * c + 1))));
          const __mmask64 hm = static_cast<__mmask64>(m_lo) | (static_cast<__mmask64>(m_hi) << 32);
          codes = _mm512_mask_add_epi8(codes, hm, codes, high);
        }
        const __m512i scv = _mm512_permutexvar_epi16(pick[c], sc16);
        for (int t = 0; t < NT; ++t) {
          const __m512i a = LoadU512(act[t].q + b * kQK_K + 64 * c);
          isum[t] = _mm512_dpwssd_epi32(isum[t], _mm512_maddubs_epi16(codes, a), scv);
        }
      }
      const __m256i mins = MinsPairs(mn);
      for (int t = 0; t < NT; ++t) {
        const float da = act[t].d[b];
        const __m256i bs = LoadU256(act[t].bsums + b * 16);
        const __m256 m = _mm256_cvtepi32_ps(_mm256_madd_epi16(bs, mins));
        acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(d * da), _mm512_cvtepi32_ps(isum[t]), acc[t]);
        acc_min[t] = _mm256_fmadd_ps(_mm256_set1_ps(dmin * da), m, acc_min[t]);
      }
    }
    for (int t = 0; t < NT; ++t) {
      y[t * ldy + r] = _mm512_reduce_add_ps(acc[t]) - HSum256(acc_min[t]);
    }
  }
}

template <int NT>
void RowsQ6K(const uint8_t* w, size_t row_bytes, int64_t n_rows, int64_t k, const ActRow* act,
             float* y, int64_t ldy) {
  const int64_t nb = k / kQK_K;
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const __m512i bits45 = _mm512_set1_epi8(0x30);
  // Shift counts per 16-bit lane: the first 32 bytes of a chunk take qh bits (0,1) or (4,5), the
  // last 32 bytes bits (2,3) or (6,7).
  const __m512i shl = _mm512_mask_blend_epi16(0xffff0000u, _mm512_set1_epi16(4), _mm512_set1_epi16(2));
  const __m512i shr = _mm512_mask_blend_epi16(0xffff0000u, _mm512_setzero_si512(), _mm512_set1_epi16(2));
  // Scale index per 16-bit lane of maddubs output for chunk j (0..3 over the super-block):
  // lane l covers elements 2l, 2l+1 of the chunk, i.e. group 4j + l / 8.
  __m512i pick[4];
  for (int j = 0; j < 4; ++j) {
    alignas(64) int16_t idx[32];
    for (int l = 0; l < 32; ++l) idx[l] = static_cast<int16_t>(4 * j + l / 8);
    pick[j] = _mm512_load_si512(idx);
  }
  for (int64_t r = 0; r < n_rows; ++r) {
    const auto* blocks = reinterpret_cast<const BlockQ6_K*>(w + static_cast<size_t>(r) * row_bytes);
    __m512 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const BlockQ6_K& blk = blocks[b];
      const __m256i sc16_256 = _mm256_cvtepi8_epi16(LoadU128(blk.scales));
      const __m512i sc16 = _mm512_broadcast_i64x4(sc16_256);
      __m512i isum[NT];
      for (int t = 0; t < NT; ++t) {
        const __m256i bs = LoadU256(act[t].bsums + b * 16);
        const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(sc16_256, bs), 5);
        isum[t] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_zextsi256_si512(off));
      }
      for (int h = 0; h < 2; ++h) {
        const __m512i l = LoadU512(blk.ql + 64 * h);
        const __m512i qh = _mm512_broadcast_i64x4(LoadU256(blk.qh + 32 * h));
        const __m512i c0 = _mm512_or_si512(_mm512_and_si512(l, low4),
                                           _mm512_and_si512(_mm512_sllv_epi16(qh, shl), bits45));
        const __m512i c1 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), low4),
                                           _mm512_and_si512(_mm512_srlv_epi16(qh, shr), bits45));
        const __m512i s0 = _mm512_permutexvar_epi16(pick[2 * h], sc16);
        const __m512i s1 = _mm512_permutexvar_epi16(pick[2 * h + 1], sc16);
        for (int t = 0; t < NT; ++t) {
          const int8_t* q = act[t].q + b * kQK_K + 128 * h;
          isum[t] = _mm512_dpwssd_epi32(isum[t], _mm512_maddubs_epi16(c0, LoadU512(q)), s0);
          isum[t] = _mm512_dpwssd_epi32(isum[t], _mm512_maddubs_epi16(c1, LoadU512(q + 64)), s1);
        }
      }
      const float d = HalfToFloat(blk.d);
      for (int t = 0; t < NT; ++t) {
        acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(d * act[t].d[b]), _mm512_cvtepi32_ps(isum[t]), acc[t]);
      }
    }
    for (int t = 0; t < NT; ++t) y[t * ldy + r] = _mm512_reduce_add_ps(acc[t]);
  }
}

// ---- Float weights: 16 elements per step, masked tail ----

struct LoadF32 {
  static constexpr int kBytes = 4;
  static inline __m512 Load(const uint8_t* p, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(p));
  }
};
struct LoadF16 {
  static constexpr int kBytes = 2;
  static inline __m512 Load(const uint8_t* p, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
  }
};
struct LoadBf16 {
  static constexpr int kBytes = 2;
  static inline __m512 Load(const uint8_t* p, __mmask16 m) {
    const __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
  }
};

template <typename L, int NT>
void RowsFloat(const uint8_t* w, size_t row_bytes, int64_t n_rows, int64_t k, const ActRow* act,
               float* y, int64_t ldy) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const uint8_t* row = w + static_cast<size_t>(r) * row_bytes;
    __m512 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t j = 0; j < k; j += 16) {
      const int64_t left = k - j;
      const __mmask16 m = left >= 16 ? static_cast<__mmask16>(0xffff)
                                     : static_cast<__mmask16>((1u << left) - 1);
      const __m512 wv = L::Load(row + j * L::kBytes, m);
      for (int t = 0; t < NT; ++t) {
        acc[t] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, act[t].x + j), acc[t]);
      }
    }
    for (int t = 0; t < NT; ++t) y[t * ldy + r] = _mm512_reduce_add_ps(acc[t]);
  }
}

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
template <int NT> void RowsQ5_0(const uint8_t* w, size_t rb, int64_t nr, int64_t k, const ActRow* a, float* y, int64_t ldy) { Rows32<BlockQ5_0, NT>(w, rb, nr, k, a, y, ldy); }
template <int NT> void RowsQ5_1(const uint8_t* w, size_t rb, int64_t nr, int64_t k, const ActRow* a, float* y, int64_t ldy) { Rows32<BlockQ5_1, NT>(w, rb, nr, k, a, y, ldy); }
template <int NT> void RowsQ4K(const uint8_t* w, size_t rb, int64_t nr, int64_t k, const ActRow* a, float* y, int64_t ldy) { RowsQ45K<false, NT>(w, rb, nr, k, a, y, ldy); }
template <int NT> void RowsQ5K(const uint8_t* w, size_t rb, int64_t nr, int64_t k, const ActRow* a, float* y, int64_t ldy) { RowsQ45K<true, NT>(w, rb, nr, k, a, y, ldy); }
template <int NT> void RowsF32(const uint8_t* w, size_t rb, int64_t nr, int64_t k, const ActRow* a, float* y, int64_t ldy) { RowsFloat<LoadF32, NT>(w, rb, nr, k, a, y, ldy); }
template <int NT> void RowsF16(const uint8_t* w, size_t rb, int64_t nr, int64_t k, const ActRow* a, float* y, int64_t ldy) { RowsFloat<LoadF16, NT>(w, rb, nr, k, a, y, ldy); }
template <int NT> void RowsBf16(const uint8_t* w, size_t rb, int64_t nr, int64_t k, const ActRow* a, float* y, int64_t ldy) { RowsFloat<LoadBf16, NT>(w, rb, nr, k, a, y, ldy); }

TM_NT_DISPATCH(KQ4_0, RowsQ4_0)
// Tile of up to kMaxWideTileTokens tokens (TileTokens()).
void KQ4_1I(const uint8_t* w, size_t rb, int64_t nr, int64_t k, const ActRow* a, int nt, float* y,
            int64_t ldy) {
  switch (nt) {
    case 1: RowsQ4_1I<1>(w, rb, nr, k, a, y, ldy); break;
    case 2: RowsQ4_1I<2>(w, rb, nr, k, a, y, ldy); break;
    case 3: RowsQ4_1I<3>(w, rb, nr, k, a, y, ldy); break;
    case 4: RowsQ4_1I<4>(w, rb, nr, k, a, y, ldy); break;
    case 5: RowsQ4_1I<5>(w, rb, nr, k, a, y, ldy); break;
    case 6: RowsQ4_1I<6>(w, rb, nr, k, a, y, ldy); break;
    case 7: RowsQ4_1I<7>(w, rb, nr, k, a, y, ldy); break;
    default: RowsQ4_1I<8>(w, rb, nr, k, a, y, ldy); break;
  }
}
TM_NT_DISPATCH(KQ5_0, RowsQ5_0)
TM_NT_DISPATCH(KQ5_1, RowsQ5_1)
void KQ8_0Q(const uint8_t* w, size_t rb, int64_t nr, int64_t k, const ActRow* a, int nt, float* y,
            int64_t ldy) {
  switch (nt) {
    case 1: RowsQ8_0Q<1>(w, rb, nr, k, a, y, ldy); break;
    case 2: RowsQ8_0Q<2>(w, rb, nr, k, a, y, ldy); break;
    case 3: RowsQ8_0Q<3>(w, rb, nr, k, a, y, ldy); break;
    case 4: RowsQ8_0Q<4>(w, rb, nr, k, a, y, ldy); break;
    case 5: RowsQ8_0Q<5>(w, rb, nr, k, a, y, ldy); break;
    case 6: RowsQ8_0Q<6>(w, rb, nr, k, a, y, ldy); break;
    case 7: RowsQ8_0Q<7>(w, rb, nr, k, a, y, ldy); break;
    default: RowsQ8_0Q<8>(w, rb, nr, k, a, y, ldy); break;
  }
}
TM_NT_DISPATCH(KQ4_K, RowsQ4K)
TM_NT_DISPATCH(KQ5_K, RowsQ5K)
TM_NT_DISPATCH(KQ6_K, RowsQ6K)
TM_NT_DISPATCH(KF32, RowsF32)
TM_NT_DISPATCH(KF16, RowsF16)
TM_NT_DISPATCH(KBf16, RowsBf16)

}  // namespace

RowsKernel Avx512Kernel(GgmlType type) {
  switch (type) {
    case GgmlType::kF32: return KF32;
    case GgmlType::kF16: return KF16;
    case GgmlType::kBF16: return KBf16;
    case GgmlType::kQ4_0: return KQ4_0;
    case GgmlType::kQ4_1: return KQ4_1I;
    case GgmlType::kQ5_0: return KQ5_0;
    case GgmlType::kQ5_1: return KQ5_1;
    case GgmlType::kQ8_0: return KQ8_0Q;
    case GgmlType::kQ4_K: return KQ4_K;
    case GgmlType::kQ5_K: return KQ5_K;
    case GgmlType::kQ6_K: return KQ6_K;
    default: return nullptr;
  }
}

}  // namespace tracemark::kernels

#pragma GCC diagnostic pop
#pragma GCC pop_options
