// Test helper for the watermark suites: a keyring whose 32-byte master secret is one repeated
// byte, so a test's keys (and its generated texts) are the same on every run. Test code only.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "tracemark/watermark/keyring.h"

namespace tracemark::watermark {

inline Keyring FixedSecretKeyring(std::string_view spec, uint8_t fill) {
  std::vector<uint8_t> secret(32, fill);
  auto ring = Keyring::FromSecret(secret, spec);
  EXPECT_TRUE(ring.ok()) << ring.status().message();
  return std::move(ring).value();
}

}  // namespace tracemark::watermark
