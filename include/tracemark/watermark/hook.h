// The watermark at generation time: a SamplerHook (model/sampler.h) built per request from the
// keyring's active version (its scheme spec) and the account the output is served to.
//
//   gumbel   Choose(): exponential-minimum sampling argmin_v -log(u_v)/p_v over the candidates,
//            u_v = PRF(key, context, v); a share `unkeyed` of steps is drawn by the request RNG
//            instead, so regenerations differ (the diversity problem, docs/watermark.md).
//   kgw-*    ProcessLogits(): +delta on green ids of the full vocabulary.
//   synthid  Choose(): closed-form tournament over m layers, then a draw with the request RNG.
// A context (last h tokens) that already produced a watermarked token in this request is not
// watermarked again (repeated-context skipping), so repeats cannot bias the sequence.
// One hook per request; not thread-safe. Scratch grows to the candidate count once.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "tracemark/watermark/tuple_set.h"
#include "tracemark/base/status.h"
#include "tracemark/model/sampler.h"
#include "tracemark/watermark/keyring.h"
#include "tracemark/watermark/scheme.h"

namespace tracemark::watermark {

class WatermarkHook : public SamplerHook {
 public:
  WatermarkHook(const SchemeParams& params, const SchemeKeys& keys, uint64_t account_id,
                uint64_t account_key);

  void ProcessLogits(std::span<float> logits, std::span<const int32_t> context) override;
  int32_t Choose(const TokenCandidates& candidates, std::span<const int32_t> context,
                 Rng& rng) override;
  void Accept(int32_t token) override;

  const SchemeParams& params() const { return params_; }
  int64_t watermarked_steps() const { return watermarked_steps_; }
  int64_t skipped_repeats() const { return skipped_repeats_; }

 private:
  // Computes the step's context, key and slot; false when the context was already used.
  bool Prepare(std::span<const int32_t> context);

  SchemeParams params_;
  SchemeKeys keys_;
  uint64_t account_id_;
  uint64_t account_key_;
  uint32_t green_threshold_;
  // Current step.
  uint64_t step_hash_ = 0;
  uint64_t step_key_ = 0;
  uint32_t step_slot_ = 0;
  bool pending_ = false;
  TupleSet seen_;  // (context hash, 0) of watermarked steps
  std::vector<double> scratch_;     // SynthID candidate probabilities
  std::vector<uint32_t> g_words_;   // SynthID g-value words (bit l = layer l)
  std::vector<int32_t> iota_;       // KGW: 0 .. vocab-1, the ids whose green bits are drawn
  int64_t watermarked_steps_ = 0;
  int64_t skipped_repeats_ = 0;
};

// Builds the hook for `account_id` with the keyring's active version and scheme. The account id
// must be below 16^payload digits of that scheme (2^20 by default).
Result<std::unique_ptr<SamplerHook>> MakeWatermarkHook(const Keyring& keyring, uint64_t account_id);

}  // namespace tracemark::watermark
