// Test helpers for the watermark suites: a keyring whose 32-byte master secret is one repeated
// byte, so a test's keys (and its generated texts) are the same on every run, and watermarked
// text from the synthetic LM. Test code only.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "tracemark/watermark/hook.h"
#include "tracemark/watermark/keyring.h"
#include "watermark/synthetic.h"

namespace tracemark::watermark {

inline Keyring FixedSecretKeyring(std::string_view spec, uint8_t fill) {
  std::vector<uint8_t> secret(32, fill);
  auto ring = Keyring::FromSecret(secret, spec);
  EXPECT_TRUE(ring.ok()) << ring.status().message();
  return std::move(ring).value();
}

// n tokens of the synthetic LM watermarked for `account` after the prompt {1, 2, 3, 4}; returns
// the generated tokens only.
inline std::vector<int32_t> GenerateMarked(const Keyring& ring, uint64_t account, int n, uint64_t seed,
                                           const sim::SyntheticLmOptions& options) {
  sim::SyntheticLm lm(options, seed);
  std::vector<int32_t> tokens{1, 2, 3, 4};
  auto hook = MakeWatermarkHook(ring, account);
  EXPECT_TRUE(hook.ok()) << hook.status().message();
  lm.Generate(tokens, n, hook->get(), seed ^ 0xabcdef);
  return std::vector<int32_t>(tokens.begin() + 4, tokens.end());
}

}  // namespace tracemark::watermark
