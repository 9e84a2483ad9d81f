// SplitMix64: a small seeded generator for the student's initialization and batch sampling.
// Fixed arithmetic (no std:: distributions, whose outputs differ between standard libraries), so
// a seed gives the same numbers everywhere. Not thread-safe; one per user.
#pragma once

#include <cmath>
#include <cstdint>

namespace tracemark::redteam {

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in (0, 1).
  double Uniform() { return (static_cast<double>(Next() >> 11) + 0.5) * 0x1.0p-53; }
  // Uniform integer in [0, n), n > 0 (modulo bias is below 2^-40 for the sizes used here).
  uint64_t Below(uint64_t n) { return Next() % n; }
  // Standard normal (Box-Muller; one value per call).
  double Normal() {
    const double u1 = Uniform(), u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  uint64_t state_;
};

}  // namespace tracemark::redteam
