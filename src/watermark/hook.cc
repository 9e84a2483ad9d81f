#include "tracemark/watermark/hook.h"

#include <bit>
#include <cmath>
#include <limits>

namespace tracemark::watermark {

namespace {
uint32_t GreenThreshold(double gamma) {
  return static_cast<uint32_t>(std::floor(gamma * 4294967296.0));
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
  const int32_t n = static_cast<int32_t>(logits.size());
  for (int32_t v = 0; v < n; ++v) {
    if (TokenWord(step_key_, step_hash_, v, step_slot_) < green_threshold_) logits[v] += delta;
  }
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
    for (size_t i = 0; i < n; ++i) {
      const double p = c.probs[i];
      if (!(p > 0.0)) continue;
      const double u = WordToUniform(TokenWord(step_key_, step_hash_, c.ids[i], step_slot_));
      if (1.0 - u >= best * p) continue;
      const double e = -std::log(u) / p;
      if (e < best) {
        best = e;
        choice = c.ids[i];
      }
    }
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
  for (size_t i = 0; i < n; ++i) {
    p[i] = c.probs[i] > 0.0f ? c.probs[i] : 0.0;
    words[i] = p[i] > 0.0 ? TokenWord(step_key_, step_hash_, c.ids[i], step_slot_) : 0u;
  }
  for (int l = 0; l < params_.layers; ++l) {
    double mass = 0.0;
    for (size_t i = 0; i < n; ++i) {
      mass += ((words[i] >> l) & 1u) ? p[i] : 0.0;
    }
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
