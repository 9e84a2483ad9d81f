// Blocked attention; see attention.h.
#include "attention.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops.h"

namespace tracemark::attn {
namespace {

constexpr int32_t kKeyBlock = 8;     // keys per transposed block (one ymm of scores)
constexpr int32_t kValueBlock = 32;  // keys per converted value block
constexpr int32_t kDvChunk = 32;     // output floats kept in registers per query (4 ymm)

inline int32_t RoundUp8(int32_t x) { return (x + 7) & ~7; }

// 8x8 float transpose: rows r[0..8) in, columns out (c[i] lane j = r[j] lane i).
inline void Transpose8(const __m256 r[8], __m256 c[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
  c[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  c[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  c[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  c[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  c[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  c[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  c[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  c[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// Copies key rows j0..j0+nb of the view into kt[d][0..8) (transposed), zero lanes >= nb.
// A full block of fp16 keys (every decode step's bulk) converts and transposes 8x8 tiles in
// registers; partial blocks and fp32 keys go through the scalar path.
void LoadKeyBlockT(const KvView& kv, int32_t j0, int32_t nb, float* kt, float* row_buf) {
  const int32_t dk = kv.dk;
  if (nb == kKeyBlock && kv.k16 != nullptr && dk % 8 == 0) {
    const uint16_t* rows[kKeyBlock];
    for (int32_t b = 0; b < kKeyBlock; ++b) {
      rows[b] = kv.k16 + static_cast<size_t>((kv.first_cell + j0 + b) % kv.cells) * dk;
    }
    __m256 r[8], c[8];
    for (int32_t d = 0; d < dk; d += 8) {
      for (int b = 0; b < 8; ++b) {
        r[b] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[b] + d)));
      }
      Transpose8(r, c);
      for (int i = 0; i < 8; ++i) _mm256_storeu_ps(kt + static_cast<size_t>(d + i) * kKeyBlock, c[i]);
    }
    return;
  }
  std::memset(kt, 0, sizeof(float) * dk * kKeyBlock);
  for (int32_t b = 0; b < nb; ++b) {
    const size_t cell = static_cast<size_t>((kv.first_cell + j0 + b) % kv.cells);
    const float* src;
    if (kv.k16 != nullptr) {
      ops::F16ToF32(kv.k16 + cell * dk, row_buf, dk);
      src = row_buf;
    } else {
      src = kv.k32 + cell * dk;
    }
    for (int32_t d = 0; d < dk; ++d) kt[d * kKeyBlock + b] = src[d];
  }
}

// Scores of NQ queries (rows of qs, stride dk) against one transposed key block.
template <int NQ>
void ScoreBlock(const float* qs, int32_t dk, const float* kt, float* const* s_out) {
  __m256 acc[NQ][2];
  for (int u = 0; u < NQ; ++u) acc[u][0] = acc[u][1] = _mm256_setzero_ps();
  int32_t d = 0;
  for (; d + 2 <= dk; d += 2) {
    const __m256 k0 = _mm256_loadu_ps(kt + d * kKeyBlock);
    const __m256 k1 = _mm256_loadu_ps(kt + (d + 1) * kKeyBlock);
    for (int u = 0; u < NQ; ++u) {
      acc[u][0] = _mm256_fmadd_ps(_mm256_broadcast_ss(qs + u * dk + d), k0, acc[u][0]);
      acc[u][1] = _mm256_fmadd_ps(_mm256_broadcast_ss(qs + u * dk + d + 1), k1, acc[u][1]);
    }
  }
  for (; d < dk; ++d) {
    const __m256 k0 = _mm256_loadu_ps(kt + d * kKeyBlock);
    for (int u = 0; u < NQ; ++u) acc[u][0] = _mm256_fmadd_ps(_mm256_broadcast_ss(qs + u * dk + d), k0, acc[u][0]);
  }
  for (int u = 0; u < NQ; ++u) _mm256_storeu_ps(s_out[u], _mm256_add_ps(acc[u][0], acc[u][1]));
}

// out[u][c..c+32) += sum_j p[u][j] * vf[j][c..c+32) for NQ queries.
template <int NQ>
void ValueBlock(const float* const* p, const float* vf, int32_t nb, int32_t dv, int32_t c, float* const* out) {
  __m256 acc[NQ][4];
  for (int u = 0; u < NQ; ++u) {
    for (int r = 0; r < 4; ++r) acc[u][r] = _mm256_loadu_ps(out[u] + c + 8 * r);
  }
  for (int32_t j = 0; j < nb; ++j) {
    const float* vr = vf + static_cast<size_t>(j) * dv + c;
    const __m256 v0 = _mm256_loadu_ps(vr), v1 = _mm256_loadu_ps(vr + 8);
    const __m256 v2 = _mm256_loadu_ps(vr + 16), v3 = _mm256_loadu_ps(vr + 24);
    for (int u = 0; u < NQ; ++u) {
      const __m256 pu = _mm256_broadcast_ss(p[u] + j);
      acc[u][0] = _mm256_fmadd_ps(pu, v0, acc[u][0]);
      acc[u][1] = _mm256_fmadd_ps(pu, v1, acc[u][1]);
      acc[u][2] = _mm256_fmadd_ps(pu, v2, acc[u][2]);
      acc[u][3] = _mm256_fmadd_ps(pu, v3, acc[u][3]);
    }
  }
  for (int u = 0; u < NQ; ++u) {
    for (int r = 0; r < 4; ++r) _mm256_storeu_ps(out[u] + c + 8 * r, acc[u][r]);
  }
}

}  // namespace

size_t ScratchFloats(int32_t nq, int32_t span, int32_t dk, int32_t dv) {
  return static_cast<size_t>(nq) * RoundUp8(span)     // scores
         + static_cast<size_t>(nq) * dk               // scaled queries
         + static_cast<size_t>(dk) * kKeyBlock        // transposed key block
         + static_cast<size_t>(std::max(dk, dv))      // one converted row
         + static_cast<size_t>(kValueBlock) * dv;     // converted value block
}

void AttendBlock(const KvView& kv, int32_t span, int32_t nq, const float* const* q, float* const* out,
                 const int32_t* lo, const int32_t* hi, float scale, float* scratch) {
  const int32_t dk = kv.dk, dv = kv.dv;
  const int32_t stride = RoundUp8(span);
  float* S = scratch;
  float* qs = S + static_cast<size_t>(nq) * stride;
  float* kt = qs + static_cast<size_t>(nq) * dk;
  float* row_buf = kt + static_cast<size_t>(dk) * kKeyBlock;
  float* vf = row_buf + std::max(dk, dv);

  for (int32_t i = 0; i < nq; ++i) {
    for (int32_t d = 0; d < dk; ++d) qs[static_cast<size_t>(i) * dk + d] = q[i][d] * scale;
  }
  // Scores, 8 keys x up to 4 queries at a time.
  float* s_out[4];
  for (int32_t j0 = 0; j0 < span; j0 += kKeyBlock) {
    const int32_t nb = std::min(kKeyBlock, span - j0);
    LoadKeyBlockT(kv, j0, nb, kt, row_buf);
    int32_t i = 0;
    for (; i + 4 <= nq; i += 4) {
      for (int u = 0; u < 4; ++u) s_out[u] = S + static_cast<size_t>(i + u) * stride + j0;
      ScoreBlock<4>(qs + static_cast<size_t>(i) * dk, dk, kt, s_out);
    }
    for (; i < nq; ++i) {
      s_out[0] = S + static_cast<size_t>(i) * stride + j0;
      ScoreBlock<1>(qs + static_cast<size_t>(i) * dk, dk, kt, s_out);
    }
  }
  // Softmax over each query's visible range; zero elsewhere so the value pass can run uniformly.
  int32_t lo_min = span, hi_max = -1;
  for (int32_t i = 0; i < nq; ++i) {
    float* s = S + static_cast<size_t>(i) * stride;
    ops::Softmax(s + lo[i], hi[i] - lo[i] + 1);
    std::fill(s, s + lo[i], 0.0f);
    std::fill(s + hi[i] + 1, s + span, 0.0f);
    lo_min = std::min(lo_min, lo[i]);
    hi_max = std::max(hi_max, hi[i]);
    std::fill(out[i], out[i] + dv, 0.0f);
  }
  // Values: blocks of kValueBlock rows converted once, accumulated into every query.
  const float* p[4];
  float* o[4];
  for (int32_t j0 = lo_min; j0 <= hi_max; j0 += kValueBlock) {
    const int32_t nb = std::min(kValueBlock, hi_max + 1 - j0);
    for (int32_t b = 0; b < nb; ++b) {
      const size_t cell = static_cast<size_t>((kv.first_cell + j0 + b) % kv.cells);
      if (kv.v16 != nullptr) {
        ops::F16ToF32(kv.v16 + cell * dv, vf + static_cast<size_t>(b) * dv, dv);
      } else {
        std::memcpy(vf + static_cast<size_t>(b) * dv, kv.v32 + cell * dv, sizeof(float) * dv);
      }
    }
    int32_t c = 0;
    for (; c + kDvChunk <= dv; c += kDvChunk) {
      int32_t i = 0;
      for (; i + 2 <= nq; i += 2) {
        for (int u = 0; u < 2; ++u) {
          p[u] = S + static_cast<size_t>(i + u) * stride + j0;
          o[u] = out[i + u];
        }
        ValueBlock<2>(p, vf, nb, dv, c, o);
      }
      for (; i < nq; ++i) {
        p[0] = S + static_cast<size_t>(i) * stride + j0;
        o[0] = out[i];
        ValueBlock<1>(p, vf, nb, dv, c, o);
      }
    }
    for (; c < dv; ++c) {  // dv not a multiple of 32
      for (int32_t i = 0; i < nq; ++i) {
        const float* pi = S + static_cast<size_t>(i) * stride + j0;
        float acc = out[i][c];
        for (int32_t b = 0; b < nb; ++b) acc += pi[b] * vf[static_cast<size_t>(b) * dv + c];
        out[i][c] = acc;
      }
    }
  }
}

}  // namespace tracemark::attn
