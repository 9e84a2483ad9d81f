// The counter-based keyed PRF every watermark scheme draws from: Philox4x32-10 (Salmon et al.,
// "Parallel random numbers: as easy as 1, 2, 3", SC'11), the generator vLLM's watermark uses.
// A 64-bit key (the low 8 bytes of an HKDF-derived key) and a 128-bit counter give four 32-bit
// words. Same inputs, same words, on every machine: generation and detection agree bit for bit.
//
// Philox is a statistical PRF, not a cryptographic one: its outputs never leave the process (the
// sampler only reveals which token won), and the keys come from HKDF of a 256-bit secret.
// All functions are pure and thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace tracemark::watermark {

using PhiloxBlock = std::array<uint32_t, 4>;

inline PhiloxBlock Philox4x32(uint64_t key, PhiloxBlock ctr) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kM0) * ctr[0];
    const uint64_t p1 = static_cast<uint64_t>(kM1) * ctr[2];
    ctr = {static_cast<uint32_t>(p1 >> 32) ^ ctr[1] ^ k0, static_cast<uint32_t>(p1),
           static_cast<uint32_t>(p0 >> 32) ^ ctr[3] ^ k1, static_cast<uint32_t>(p0)};
    k0 += kW0;
    k1 += kW1;
  }
  return ctr;
}

// Tokens before the start of a sequence (context shorter than h) hash as this id.
inline constexpr uint32_t kPadToken = 0xFFFFFFFFu;

// One 32-bit word for (key, context hash, token, slot): block slot/4, word slot%4. Slots let one
// (context, token) carry independent words for several uses (payload digits, SynthID layers).
inline uint32_t TokenWord(uint64_t key, uint64_t context_hash, int32_t token, uint32_t slot) {
  const PhiloxBlock b = Philox4x32(
      key, {static_cast<uint32_t>(context_hash), static_cast<uint32_t>(context_hash >> 32),
            static_cast<uint32_t>(token), slot >> 2});
  return b[slot & 3];
}

// n independent Philox4x32-10 blocks under one key, structure-of-arrays (counter word k of block
// j in in[k][j]; outputs likewise). Written as plain fixed-width loops so the compiler vectorizes
// the 32x32->64 multiplies (AVX2 vpmuludq); same results as Philox4x32 block by block.
void Philox4x32Batch(uint64_t key, size_t n, const uint32_t* in0, const uint32_t* in1,
                     const uint32_t* in2, const uint32_t* in3, uint32_t* out0, uint32_t* out1,
                     uint32_t* out2, uint32_t* out3);

// A 32-bit word as a uniform in (0, 1): (w + 1/2) / 2^32.
inline double WordToUniform(uint32_t w) { return (static_cast<double>(w) + 0.5) * 0x1.0p-32; }

}  // namespace tracemark::watermark
