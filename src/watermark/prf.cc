#include "tracemark/watermark/prf.h"

#include <cstring>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace tracemark::watermark {

void Philox4x32Batch(uint64_t key, size_t n, const uint32_t* in0, const uint32_t* in1,
                     const uint32_t* in2, const uint32_t* in3, uint32_t* out0, uint32_t* out1,
                     uint32_t* out2, uint32_t* out3) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  size_t base = 0;
#if defined(__AVX2__)
  // Eight blocks per step. _mm256_mul_epu32 multiplies the even 32-bit lanes into 64-bit
  // products; the odd lanes are shifted down and multiplied separately, then the low and high
  // halves are blended back into per-lane words.
  {
    const __m256i m0 = _mm256_set1_epi32(static_cast<int>(kM0));
    const __m256i m1 = _mm256_set1_epi32(static_cast<int>(kM1));
    for (; base + 8 <= n; base += 8) {
      __m256i c0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in0 + base));
      __m256i c1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in1 + base));
      __m256i c2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in2 + base));
      __m256i c3 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in3 + base));
      uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
      for (int round = 0; round < 10; ++round) {
        const __m256i pe0 = _mm256_mul_epu32(c0, m0);
        const __m256i po0 = _mm256_mul_epu32(_mm256_srli_epi64(c0, 32), m0);
        const __m256i pe1 = _mm256_mul_epu32(c2, m1);
        const __m256i po1 = _mm256_mul_epu32(_mm256_srli_epi64(c2, 32), m1);
        const __m256i lo0 = _mm256_blend_epi32(pe0, _mm256_slli_epi64(po0, 32), 0xAA);
        const __m256i hi0 = _mm256_blend_epi32(_mm256_srli_epi64(pe0, 32), po0, 0xAA);
        const __m256i lo1 = _mm256_blend_epi32(pe1, _mm256_slli_epi64(po1, 32), 0xAA);
        const __m256i hi1 = _mm256_blend_epi32(_mm256_srli_epi64(pe1, 32), po1, 0xAA);
        const __m256i kk0 = _mm256_set1_epi32(static_cast<int>(k0));
        const __m256i kk1 = _mm256_set1_epi32(static_cast<int>(k1));
        c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), kk0);
        c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), kk1);
        c1 = lo1;
        c3 = lo0;
        k0 += kW0;
        k1 += kW1;
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out0 + base), c0);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out1 + base), c1);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out2 + base), c2);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out3 + base), c3);
    }
  }
#endif
  constexpr size_t kLanes = 16;
  for (; base + kLanes <= n; base += kLanes) {
    uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
    std::memcpy(c0, in0 + base, sizeof(c0));
    std::memcpy(c1, in1 + base, sizeof(c1));
    std::memcpy(c2, in2 + base, sizeof(c2));
    std::memcpy(c3, in3 + base, sizeof(c3));
    uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
    for (int round = 0; round < 10; ++round) {
      for (size_t j = 0; j < kLanes; ++j) {
        const uint64_t p0 = static_cast<uint64_t>(kM0) * c0[j];
        const uint64_t p1 = static_cast<uint64_t>(kM1) * c2[j];
        const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1[j] ^ k0;
        const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3[j] ^ k1;
        c1[j] = static_cast<uint32_t>(p1);
        c3[j] = static_cast<uint32_t>(p0);
        c0[j] = n0;
        c2[j] = n2;
      }
      k0 += kW0;
      k1 += kW1;
    }
    std::memcpy(out0 + base, c0, sizeof(c0));
    std::memcpy(out1 + base, c1, sizeof(c1));
    std::memcpy(out2 + base, c2, sizeof(c2));
    std::memcpy(out3 + base, c3, sizeof(c3));
  }
  for (; base < n; ++base) {
    const PhiloxBlock b = Philox4x32(key, {in0[base], in1[base], in2[base], in3[base]});
    out0[base] = b[0];
    out1[base] = b[1];
    out2[base] = b[2];
    out3[base] = b[3];
  }
}

}  // namespace tracemark::watermark
