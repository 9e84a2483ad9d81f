#include "tracemark/watermark/hook.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include "tracemark/watermark/synthid_hf.h"

namespace tracemark::watermark {

namespace {
uint32_t GreenThreshold(double gamma) {
  return static_cast<uint32_t>(std::floor(gamma * 4294967296.0));
}

// PRF words of (key, context, ids[k], slot) for k < n, in chunks through the batched Philox.
// `out` receives word slot % 4 of each block.
constexpr size_t kWordChunk = 512;
template <typename F>
void ForEachWordChunk(uint64_t key, uint64_t hash, uint32_t slot, const int32_t* ids, size_t n,
                      F&& f) {
  uint32_t c0[kWordChunk], c1[kWordChunk], c3[kWordChunk];
  uint32_t o0[kWordChunk], o1[kWordChunk], o2[kWordChunk], o3[kWordChunk];
  const size_t m = std::min(n, kWordChunk);
  std::fill(c0, c0 + m, static_cast<uint32_t>(hash));
  std::fill(c1, c1 + m, static_cast<uint32_t>(hash >> 32));
  std::fill(c3, c3 + m, slot >> 2);
  uint32_t* outs[4] = {o0, o1, o2, o3};
  const uint32_t* words = outs[slot & 3];
  for (size_t base = 0; base < n; base += kWordChunk) {
    const size_t len = std::min(kWordChunk, n - base);
    Philox4x32Batch(key, len, c0, c1, reinterpret_cast<const uint32_t*>(ids + base), c3, o0, o1, o2, o3);
    f(base, len, words);
  }
}
}  // namespace

WatermarkHook::WatermarkHook(const SchemeParams& params, const SchemeKeys& keys,
                             uint64_t account_id, uint64_t account_key)
    : params_(params),
      keys_(keys),
      account_id_(account_id),
      account_key_(account_key),
      green_threshold_(GreenThreshold(params.gamma)) {}

bool WatermarkHook::Prepare(std::span<const int32_t> context) {
  pending_ = false;
  const ContextInfo info = HashContext(keys_.context_key, params_, context, context.size());
  if (params_.skip_repeated_contexts && seen_.Contains(info.hash, 0)) {
    ++skipped_repeats_;
    return false;
  }
  step_hash_ = info.hash;
  switch (info.lane) {
    case Lane::kProvider:
      step_key_ = keys_.provider_key;
      step_slot_ = 0;
      break;
    case Lane::kPayload:
      step_key_ = keys_.provider_key;
      step_slot_ = PayloadSlot(info.position, PayloadDigit(account_id_, info.position));
      break;
    case Lane::kAccount:
      step_key_ = account_key_;
      step_slot_ = 0;
      break;
  }
  pending_ = true;
  return true;
}

void WatermarkHook::ProcessLogits(std::span<float> logits, std::span<const int32_t> context) {
  if (params_.kind != SchemeKind::kKgw) return;
  if (!Prepare(context)) return;
  const float delta = static_cast<float>(params_.delta);
  const size_t n = logits.size();
  if (iota_.size() != n) {
    iota_.resize(n);
    for (size_t v = 0; v < n; ++v) iota_[v] = static_cast<int32_t>(v);
  }
  const uint32_t threshold = green_threshold_;
  ForEachWordChunk(step_key_, step_hash_, step_slot_, iota_.data(), n,
                   [&](size_t base, size_t len, const uint32_t* w) {
                     float* l = logits.data() + base;
                     for (size_t k = 0; k < len; ++k) l[k] += w[k] < threshold ? delta : 0.0f;
                   });
  ++watermarked_steps_;
}

int32_t WatermarkHook::Choose(const TokenCandidates& c, std::span<const int32_t> context, Rng& rng) {
  if (params_.kind == SchemeKind::kKgw) return -1;
  const size_t n = c.ids.size();
  if (n == 0) return -1;
  if (params_.kind == SchemeKind::kGumbel) {
    // The coin is drawn before Prepare so the context is not marked used by an unkeyed step.
    if (params_.unkeyed_fraction > 0.0 && rng.Uniform() < params_.unkeyed_fraction) {
      pending_ = false;
      return -1;
    }
    if (!Prepare(context)) return -1;
    // argmin_v E_v / p_v with E_v = -log(u_v) ~ Exp(1); since E_v >= 1 - u_v, a candidate with
    // (1 - u_v) >= best * p_v cannot win and needs no logarithm.
    double best = std::numeric_limits<double>::infinity();
    int32_t choice = -1;
    ForEachWordChunk(step_key_, step_hash_, step_slot_, c.ids.data(), n,
                     [&](size_t base, size_t len, const uint32_t* w) {
                       for (size_t k = 0; k < len; ++k) {
                         const double p = c.probs[base + k];
                         if (!(p > 0.0)) continue;
                         const double u = WordToUniform(w[k]);
                         if (1.0 - u >= best * p) continue;
                         const double e = -std::log(u) / p;
                         if (e < best) {
                           best = e;
                           choice = c.ids[base + k];
                         }
                       }
                     });
    if (choice < 0) {
      pending_ = false;
      return -1;
    }
    ++watermarked_steps_;
    return choice;
  }
  // SynthID tournament, closed form per layer: p <- p * (1 + g - sum_y p_y g_y).
  if (!Prepare(context)) return -1;
  if (scratch_.size() < n) scratch_.resize(n);
  if (g_words_.size() < n) g_words_.resize(n);
  double* p = scratch_.data();
  uint32_t* words = g_words_.data();
  for (size_t i = 0; i < n; ++i) p[i] = c.probs[i] > 0.0f ? c.probs[i] : 0.0;
  ForEachWordChunk(step_key_, step_hash_, step_slot_, c.ids.data(), n,
                   [&](size_t base, size_t len, const uint32_t* w) {
                     std::copy(w, w + len, words + base);
                   });
  for (int l = 0; l < params_.layers; ++l) {
    // Four partial sums (fixed order: deterministic) let the reduction vectorize.
    double part[4] = {0.0, 0.0, 0.0, 0.0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
      for (size_t q = 0; q < 4; ++q) part[q] += p[i + q] * static_cast<double>((words[i + q] >> l) & 1u);
    }
    double mass = (part[0] + part[1]) + (part[2] + part[3]);
    for (; i < n; ++i) mass += p[i] * static_cast<double>((words[i] >> l) & 1u);
    for (size_t i = 0; i < n; ++i) {
      p[i] *= 1.0 + static_cast<double>((words[i] >> l) & 1u) - mass;
    }
  }
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) total += p[i];
  const double r = rng.Uniform() * total;
  double acc = 0.0;
  int32_t choice = -1;
  for (size_t i = 0; i < n; ++i) {
    if (p[i] <= 0.0) continue;
    choice = c.ids[i];
    acc += p[i];
    if (r < acc) break;
  }
  if (choice < 0) {
    pending_ = false;
    return -1;
  }
  ++watermarked_steps_;
  return choice;
}

void WatermarkHook::Accept(int32_t token) {
  if (pending_ && params_.skip_repeated_contexts &&
      seen_.size() < static_cast<size_t>(params_.context_history)) {
    seen_.Insert(step_hash_, 0);
  }
  pending_ = false;
}

Result<std::unique_ptr<SamplerHook>> MakeWatermarkHook(const Keyring& keyring, uint64_t account_id) {
  const int version = keyring.active_version();
  const KeyVersion* v = keyring.Find(version);
  if (v == nullptr) return NotFound("keyring: no active key version");
  TM_ASSIGN_OR_RETURN(SchemeParams params, ParseSchemeSpec(v->scheme));
  if (params.kind == SchemeKind::kSynthIdHf) return MakeSynthIdHfHook(keyring, version, params);
  if (account_id >= params.AccountSpace()) {
    return InvalidArgument("account id " + std::to_string(account_id) + " is outside the payload space [0, " +
                           std::to_string(params.AccountSpace()) + ") of scheme '" + v->scheme +
                           "'; rotate to a scheme with a larger payload= (digits of 4 bits)");
  }
  TM_ASSIGN_OR_RETURN(SchemeKeys keys, keyring.DeriveSchemeKeys(version));
  TM_ASSIGN_OR_RETURN(uint64_t account_key, keyring.DeriveAccountKey(version, account_id));
  return std::unique_ptr<SamplerHook>(new WatermarkHook(params, keys, account_id, account_key));
}

}  // namespace tracemark::watermark
