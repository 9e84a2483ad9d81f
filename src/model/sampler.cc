// Sampler implementation. See include/tracemark/model/sampler.h for the pipeline.
//
// Cost model for a 262144-entry vocabulary: every path makes O(V) flat passes (hook, max, a
// vectorizable exp) and sorts only the candidates that survive truncation. Top-k selects with a
// bounded heap (k <= kSamplerHeapTopKMax) or nth_element; top-p / min-p without top-k find the
// cut in a histogram of the weights and sort only the tokens at or above the crossing bucket.
// Built with -fno-trapping-math (lets GCC vectorize the exp loop; no result changes) and
// -ffp-contract=off (the same bits from every compiler).
#include "tracemark/model/sampler.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

namespace tracemark {
namespace {

inline uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// exp(x) for x <= 0 in fp32 (Cephes-style range reduction and degree-6 polynomial, relative
// error about 2e-7). Returns exactly 1 for x == 0 and exactly 0 below kExpMin or for NaN.
// Plain arithmetic so the loops that call it vectorize, and every build gives the same bits.
constexpr float kExpMin = -87.0f;
inline float ExpNonPositive(float x) {
  const bool keep = x >= kExpMin;  // false for NaN and -inf
  const float xc = keep ? x : 0.0f;
  const float n = std::floor(xc * 1.44269504088896341f + 0.5f);
  float r = xc - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const int32_t e = static_cast<int32_t>(n) + 127;
  const float scale = std::bit_cast<float>(static_cast<uint32_t>(e) << 23);
  return keep ? y * scale : 0.0f;
}

// True when (la, ia) ranks before (lb, ib): higher logit first, then lower id. NaN ranks last.
inline bool Better(float la, int32_t ia, float lb, int32_t ib) {
  if (la > lb) return true;
  if (la < lb) return false;
  if (la == lb) return ia < ib;
  // At least one NaN.
  if (std::isnan(lb) && !std::isnan(la)) return true;
  if (std::isnan(la) && !std::isnan(lb)) return false;
  return ia < ib;
}

float MaxLogit(std::span<const float> logits) {
  // Eight independent lanes so the loop vectorizes; NaN never wins a comparison.
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  float acc[8] = {kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf};
  const size_t n = logits.size();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] = logits[i + j] > acc[j] ? logits[i + j] : acc[j];
  }
  float m = kNegInf;
  for (; i < n; ++i) m = logits[i] > m ? logits[i] : m;
  for (float a : acc) m = a > m ? a : m;
  return m;
}

// The lowest id holding the largest logit; 0 when every logit is NaN.
int32_t Argmax(std::span<const float> logits) {
  const float m = MaxLogit(logits);
  for (size_t i = 0; i < logits.size(); ++i) {
    if (logits[i] == m) return static_cast<int32_t>(i);
  }
  return 0;
}

// A key whose ascending order is descending logit, then ascending id (logit not NaN).
inline uint64_t RankKey(float logit, int32_t id) {
  const uint32_t bits = std::bit_cast<uint32_t>(logit == 0.0f ? 0.0f : logit);
  const uint32_t ascending = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  return (static_cast<uint64_t>(~ascending) << 32) | static_cast<uint32_t>(id);
}

inline int32_t BucketOf(float w) {
  return static_cast<int32_t>(std::bit_cast<uint32_t>(w) >> kSamplerBucketShift);
}

// Sum of floats in double with 8 independent lanes (vectorizable, fixed order).
double SumDouble(const float* x, size_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += x[i + j];
  }
  double tail = 0;
  for (; i < n; ++i) tail += x[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

}  // namespace

void Rng::Seed(uint64_t seed) {
  // splitmix64 expands the seed into the 256-bit state (never all zero).
  uint64_t x = seed;
  for (uint64_t& s : s_) {
    x += 0x9E3779B97F4A7C15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    s = z ^ (z >> 31);
  }
}

uint64_t Rng::Next() {
  // xoshiro256** (Blackman and Vigna).
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

Sampler::Sampler(const SamplingParams& params, int32_t vocab_size, SamplerHook* hook)
    : params_(params), vocab_size_(vocab_size), hook_(hook), rng_(params.seed) {
  assert(vocab_size > 0);
  const size_t v = static_cast<size_t>(vocab_size);
  ids_.resize(v);
  cand_logits_.resize(v);
  probs_.resize(v);
  weights_.resize(v);
  heap_.reserve(kSamplerHeapTopKMax);
  const bool bucketed = !(params.top_k > 0 && params.top_k < vocab_size) &&
                        (params.top_p < 1.0f || params.min_p > 0.0f);
  if (bucketed) {
    bucket_mass_.resize(kSamplerNumBuckets);
    keys_.resize(v);
  }
}

void Sampler::SelectTopK(std::span<const float> logits, int32_t k) {
  const int32_t v = vocab_size_;
  if (k <= kSamplerHeapTopKMax) {
    // Min-heap on rank: heap_.front() is the worst kept entry. Ids arrive in increasing order,
    // so an equal logit never displaces a kept one (the kept id is lower).
    auto worse = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
      return Better(a.first, a.second, b.first, b.second);
    };
    heap_.clear();
    for (int32_t i = 0; i < k; ++i) heap_.emplace_back(logits[i], i);
    std::make_heap(heap_.begin(), heap_.end(), worse);
    float worst = heap_.front().first;
    const bool worst_nan = std::isnan(worst);
    for (int32_t i = k; i < v; ++i) {
      const float l = logits[i];
      if (l > worst || (worst_nan && !std::isnan(l))) {
        std::pop_heap(heap_.begin(), heap_.end(), worse);
        heap_.back() = {l, i};
        std::push_heap(heap_.begin(), heap_.end(), worse);
        worst = heap_.front().first;
        if (worst_nan && !std::isnan(worst)) {
          // Once the worst kept entry is a number, the plain comparison suffices.
          for (++i; i < v; ++i) {
            const float l2 = logits[i];
            if (l2 > worst) {
              std::pop_heap(heap_.begin(), heap_.end(), worse);
              heap_.back() = {l2, i};
              std::push_heap(heap_.begin(), heap_.end(), worse);
              worst = heap_.front().first;
            }
          }
          break;
        }
      }
    }
    std::sort_heap(heap_.begin(), heap_.end(), worse);  // ascending by `worse` = best first
    for (int32_t i = 0; i < k; ++i) ids_[i] = heap_[i].second;
    return;
  }
  std::iota(ids_.begin(), ids_.end(), 0);
  auto better = [&](int32_t a, int32_t b) { return Better(logits[a], a, logits[b], b); };
  if (k < v) std::nth_element(ids_.begin(), ids_.begin() + k, ids_.end(), better);
  std::sort(ids_.begin(), ids_.begin() + k, better);
}

int32_t Sampler::CutSorted(int32_t n, double z) const {
  // weights_[i] is the (unnormalized) weight of the i-th best candidate, weights_[0] == 1.
  int32_t cut = n;
  if (params_.min_p > 0.0f) {
    // min-p: keep p_i >= min_p * p_max, i.e. weight >= min_p (the best weight is 1).
    for (int32_t i = 1; i < n; ++i) {
      if (weights_[i] < params_.min_p) {
        cut = i;
        break;
      }
    }
  }
  if (params_.top_p < 1.0f) {
    // top-p: the smallest prefix whose mass reaches top_p (the crossing token is kept).
    const double target = static_cast<double>(params_.top_p) * z;
    double cum = 0;
    for (int32_t i = 0; i < cut; ++i) {
      cum += weights_[i];
      if (cum >= target) {
        cut = i + 1;
        break;
      }
    }
  }
  return cut;
}

int32_t Sampler::BuildCandidates(std::span<const float> logits) {
  const int32_t v = vocab_size_;
  const float t = params_.temperature;
  const bool use_top_k = params_.top_k > 0 && params_.top_k < v;
  const bool use_top_p = params_.top_p < 1.0f;
  const bool use_min_p = params_.min_p > 0.0f;
  int32_t n = 0;
  bool identity = false;  // candidates are the whole vocabulary in id order

  if (use_top_k) {
    const int32_t k = params_.top_k;
    SelectTopK(logits, k);
    const float m = logits[ids_[0]];
    for (int32_t i = 0; i < k; ++i) weights_[i] = ExpNonPositive((logits[ids_[i]] - m) / t);
    const double z = SumDouble(weights_.data(), static_cast<size_t>(k));
    n = (use_top_p || use_min_p) ? CutSorted(k, z) : k;
  } else if (use_top_p || use_min_p) {
    // Weights and normalizer over the full vocabulary (one vectorized pass), then a histogram
    // of the weights by bucket; only the tokens from the crossing bucket up get sorted.
    const float m = MaxLogit(logits);
    float* w = probs_.data();  // per-id weights; probs_ is rewritten at the end
    for (int32_t i = 0; i < v; ++i) w[i] = ExpNonPositive((logits[i] - m) / t);
    const double z = SumDouble(w, static_cast<size_t>(v));
    std::fill(bucket_mass_.begin(), bucket_mass_.end(), 0.0);
    for (int32_t i = 0; i < v; ++i) bucket_mass_[BucketOf(w[i])] += w[i];
    int32_t first_bucket = 0;
    if (use_top_p) {
      const double target = static_cast<double>(params_.top_p) * z;
      double cum = 0;
      for (int32_t b = kSamplerNumBuckets - 1; b >= 0; --b) {
        cum += bucket_mass_[b];
        if (cum >= target) {
          first_bucket = b;
          break;
        }
      }
    }
    if (use_min_p) first_bucket = std::max(first_bucket, BucketOf(params_.min_p));
    first_bucket = std::min(first_bucket, BucketOf(1.0f));  // the best token always qualifies
    // Weight 0 (masked, NaN or underflowed) tokens never become candidates.
    first_bucket = std::max(first_bucket, 1);
    // Sort (descending logit, ascending id) as one integer key: faster than an indirect sort.
    uint64_t* keys = keys_.data();
    for (int32_t i = 0; i < v; ++i) {
      if (BucketOf(w[i]) >= first_bucket) keys[n++] = RankKey(logits[i], i);
    }
    if (n == 0) return 0;
    std::sort(keys, keys + n);
    for (int32_t i = 0; i < n; ++i) {
      ids_[i] = static_cast<int32_t>(keys[i] & 0xFFFFFFFFu);
      weights_[i] = w[ids_[i]];
    }
    n = CutSorted(n, z);
  } else {
    // No truncation: every token, in id order.
    const float m = MaxLogit(logits);
    std::iota(ids_.begin(), ids_.end(), 0);
    float* w = weights_.data();
    for (int32_t i = 0; i < v; ++i) w[i] = ExpNonPositive((logits[i] - m) / t);
    n = v;
    identity = true;
  }

  return Normalize(logits, n, identity);
}

int32_t Sampler::Normalize(std::span<const float> logits, int32_t n, bool identity) {
  const float t = params_.temperature;
  const double kept = SumDouble(weights_.data(), static_cast<size_t>(n));
  if (!(kept > 0.0) || !std::isfinite(kept)) return 0;
  const double inv = 1.0 / kept;
  const float* w = weights_.data();
  float* p = probs_.data();
  for (int32_t i = 0; i < n; ++i) p[i] = static_cast<float>(w[i] * inv);
  float* cl = cand_logits_.data();
  if (identity) {
    for (int32_t i = 0; i < n; ++i) cl[i] = logits[i] / t;  // ids_[i] == i: no gather
  } else {
    for (int32_t i = 0; i < n; ++i) cl[i] = logits[ids_[i]] / t;
  }
  return n;
}

int32_t Sampler::Sample(std::span<float> logits, std::span<const int32_t> context) {
  assert(logits.size() == static_cast<size_t>(vocab_size_));
  if (hook_ != nullptr) hook_->ProcessLogits(logits, context);

  int32_t token = -1;
  if (!(params_.temperature > 0.0f)) {
    token = Argmax(logits);
  } else {
    const int32_t n = BuildCandidates(logits);
    if (n == 0) {
      token = Argmax(logits);
    } else {
      if (hook_ != nullptr) {
        const size_t un = static_cast<size_t>(n);
        TokenCandidates cands{std::span<const int32_t>(ids_.data(), un),
                              std::span<const float>(cand_logits_.data(), un),
                              std::span<const float>(probs_.data(), un)};
        const int32_t chosen = hook_->Choose(cands, context, rng_);
        if (chosen >= 0 && chosen < vocab_size_) token = chosen;
      }
      if (token < 0) {
        // Multinomial draw: the first candidate whose cumulative probability exceeds u,
        // found block by block (block sums vectorize) and then within the block.
        const double total = SumDouble(probs_.data(), static_cast<size_t>(n));
        const double u = rng_.Uniform() * total;
        double cum = 0;
        token = ids_[n - 1];
        int32_t start = 0;
        while (start < n) {
          const int32_t len = std::min(kSamplerDrawBlock, n - start);
          const double block = SumDouble(probs_.data() + start, static_cast<size_t>(len));
          if (u < cum + block || start + len == n) {
            for (int32_t i = start; i < start + len; ++i) {
              cum += probs_[i];
              if (u < cum) {
                token = ids_[i];
                break;
              }
            }
            break;
          }
          cum += block;
          start += len;
        }
      }
    }
  }
  if (hook_ != nullptr) hook_->Accept(token);
  return token;
}

}  // namespace tracemark
