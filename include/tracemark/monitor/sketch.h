// Fixed-size streaming sketches for the distillation monitor: 64-bit hashing of byte strings,
// HyperLogLog distinct counters, a fixed-width MinHash signature, and a decayed-rate block that
// ages several counters with one exponential per update. Every sketch has a size fixed at compile
// time so per-account memory is bounded no matter how long an account runs.
// Plain value types; not synchronized (the Monitor that owns them serializes access).
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <string_view>

namespace tracemark::monitor {

// Finalizer of MurmurHash3 (public-domain algorithm): a bijective 64-bit mix.
inline constexpr uint64_t Mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// FNV-1a over the bytes, then Mix64 so that low and high bits are both usable.
inline constexpr uint64_t HashBytes(std::string_view s, uint64_t seed = 0) {
  uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return Mix64(h);
}

inline constexpr uint64_t HashCombine(uint64_t a, uint64_t b) { return Mix64(a ^ (b + 0x9e3779b97f4a7c15ULL + (a << 6))); }

// HyperLogLog (Flajolet et al. 2007) with 2^kPrecision one-byte registers and the linear-counting
// correction for small cardinalities. Relative error about 1.04 / sqrt(2^kPrecision).
template <int kPrecision>
class HyperLogLog {
 public:
  static constexpr int kRegisters = 1 << kPrecision;

  void Add(uint64_t hash) {
    const uint32_t idx = static_cast<uint32_t>(hash >> (64 - kPrecision));
    const uint64_t rest = (hash << kPrecision) | (uint64_t{1} << (kPrecision - 1));
    const uint8_t rank = static_cast<uint8_t>(__builtin_clzll(rest) + 1);
    if (rank > reg_[idx]) reg_[idx] = rank;
  }

  double Estimate() const {
    double sum = 0;
    int zeros = 0;
    for (uint8_t r : reg_) {
      sum += std::ldexp(1.0, -r);
      zeros += r == 0;
    }
    const double m = kRegisters;
    const double alpha = kRegisters >= 128 ? 0.7213 / (1 + 1.079 / m) : (kRegisters == 64 ? 0.709 : 0.697);
    double e = alpha * m * m / sum;
    if (e <= 2.5 * m && zeros > 0) e = m * std::log(m / zeros);
    return e;
  }

  // Union: register-wise maximum.
  void Merge(const HyperLogLog& other) {
    for (int i = 0; i < kRegisters; ++i) reg_[i] = other.reg_[i] > reg_[i] ? other.reg_[i] : reg_[i];
  }

 private:
  std::array<uint8_t, kRegisters> reg_{};
};

// MinHash signature of a set of 64-bit shingle hashes with kMinHashSize multiply-shift hash
// functions; the share of equal slots estimates the Jaccard similarity of two sets.
inline constexpr int kMinHashSize = 16;
using MinHashSignature = std::array<uint32_t, kMinHashSize>;

class MinHasher {
 public:
  MinHasher();
  void Reset() { sig_.fill(UINT32_MAX); }
  void Add(uint64_t shingle) {
    for (int i = 0; i < kMinHashSize; ++i) {
      const uint32_t v = static_cast<uint32_t>((mul_[i] * shingle + add_[i]) >> 32);
      sig_[i] = v < sig_[i] ? v : sig_[i];
    }
  }
  const MinHashSignature& signature() const { return sig_; }

 private:
  std::array<uint64_t, kMinHashSize> mul_;
  std::array<uint64_t, kMinHashSize> add_;
  MinHashSignature sig_;
};

// Share of equal slots (estimated Jaccard similarity); empty signatures compare as 0.
double MinHashSimilarity(const MinHashSignature& a, const MinHashSignature& b);

// N counters that all decay with the same half-life: Advance(now) multiplies every counter by
// 2^(-dt / half_life) once, so an update costs one exp2 however many counters there are.
template <int N>
struct DecayedCounters {
  std::array<float, N> v{};
  int64_t last_ms = 0;

  void Advance(int64_t now_ms, double half_life_ms) {
    if (now_ms > last_ms) {
      if (last_ms != 0) {
        const float f = static_cast<float>(std::exp2(-static_cast<double>(now_ms - last_ms) / half_life_ms));
        for (float& x : v) x *= f;
      }
      last_ms = now_ms;
    }
  }
};

}  // namespace tracemark::monitor
