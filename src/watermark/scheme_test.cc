#include "tracemark/watermark/scheme.h"

#include <gtest/gtest.h>

#include <vector>

#include "tracemark/watermark/prf.h"

namespace tracemark::watermark {
namespace {

// Known-answer vectors of Philox4x32-10 from the Random123 distribution (kat_vectors).
TEST(Philox, Random123KnownAnswers) {
  EXPECT_EQ(Philox4x32(0, {0, 0, 0, 0}),
            (PhiloxBlock{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  EXPECT_EQ(Philox4x32(0xffffffffffffffffull, {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}),
            (PhiloxBlock{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
  EXPECT_EQ(Philox4x32(0x299f31d0a4093822ull, {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}),
            (PhiloxBlock{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

TEST(SchemeSpec, DefaultsAndRoundTrip) {
  for (const char* spec : {"gumbel", "kgw-lefthash", "kgw-selfhash", "synthid",
                           "gumbel:h=2,unkeyed=0,payload=8", "kgw-selfhash:gamma=0.5,delta=1.5",
                           "synthid:layers=20,dedup=0,history=100"}) {
    auto p = ParseSchemeSpec(spec);
    ASSERT_TRUE(p.ok()) << spec << ": " << p.status().message();
    auto again = ParseSchemeSpec(p->ToSpec());
    ASSERT_TRUE(again.ok()) << p->ToSpec();
    EXPECT_EQ(again->ToSpec(), p->ToSpec());
  }
  EXPECT_EQ(ParseSchemeSpec("kgw-lefthash")->context_width, 1);
  EXPECT_EQ(ParseSchemeSpec("kgw-selfhash")->context_width, 4);
  EXPECT_EQ(ParseSchemeSpec("gumbel")->AccountSpace(), uint64_t{1} << 20);
  EXPECT_EQ(ParseSchemeSpec("gumbel:payload=8")->AccountSpace(), uint64_t{1} << 32);
}

TEST(SchemeSpec, RejectsBadInput) {
  for (const char* spec : {"", "aaronson", "gumbel:h=0", "gumbel:h=9", "kgw-lefthash:gamma=1",
                           "kgw-lefthash:gamma=abc", "synthid:layers=33", "gumbel:payload=9",
                           "gumbel:unkeyed=1", "gumbel:nope=1", "gumbel:h", "gumbel:dedup=2"}) {
    EXPECT_FALSE(ParseSchemeSpec(spec).ok()) << spec;
  }
}

// Key versions stored before `lanes` existed must parse to the same lanes and the same canonical
// text (the spec is part of the HKDF info, so a changed ToSpec would change every derived key).
TEST(SchemeSpec, LanesParameterKeepsStoredSpecsUnchanged) {
  const char* stored = "gumbel:h=4,unkeyed=0.1,payload=5,dedup=1,history=8192";
  auto legacy = ParseSchemeSpec(stored);
  ASSERT_TRUE(legacy.ok());
  EXPECT_EQ(legacy->provider_sixteenths, kProviderLaneSixteenths);
  EXPECT_EQ(legacy->payload_sixteenths, kPayloadLaneSixteenths);
  EXPECT_EQ(legacy->ToSpec(), stored);
  auto six = ParseSchemeSpec("gumbel:lanes=6/1/1");
  ASSERT_TRUE(six.ok()) << six.status().message();
  EXPECT_EQ(six->provider_sixteenths, 12u);
  EXPECT_EQ(six->payload_sixteenths, 2u);
  EXPECT_NE(six->ToSpec().find(",lanes=6/1/1"), std::string::npos) << six->ToSpec();
  EXPECT_EQ(ParseSchemeSpec(six->ToSpec())->ToSpec(), six->ToSpec());
  EXPECT_EQ(ParseSchemeSpec("gumbel:lanes=4/2/2")->ToSpec().find("lanes"), std::string::npos);
  for (const char* bad : {"gumbel:lanes=8/0/0", "gumbel:lanes=6/1", "gumbel:lanes=5/2/2", "gumbel:lanes=6/1/1/0",
                          "gumbel:lanes=a/b/c", "gumbel:lanes=", "gumbel:lanes=7/0/1"}) {
    EXPECT_FALSE(ParseSchemeSpec(bad).ok()) << bad;
  }
  // The split is what HashContext assigns.
  std::vector<int32_t> tokens;
  for (int i = 0; i < 40000; ++i) tokens.push_back((i * 7919) % 49152);
  int lanes[3] = {0, 0, 0};
  for (size_t i = 4; i < tokens.size(); ++i) ++lanes[static_cast<int>(HashContext(99, *six, tokens, i).lane)];
  const double n = static_cast<double>(tokens.size() - 4);
  EXPECT_NEAR(lanes[0] / n, 0.75, 0.02);
  EXPECT_NEAR(lanes[1] / n, 0.125, 0.02);
  EXPECT_NEAR(lanes[2] / n, 0.125, 0.02);
}

// Sixteenths: a split with an odd share is written in sixteenths, an even one in eighths (so the
// 6/1/1 versions stored before sixteenths existed keep their canonical text), and an eighths spec
// assigns every context the same lane as its sixteenths spelling.
TEST(SchemeSpec, LanesInSixteenths) {
  auto fine = ParseSchemeSpec("gumbel:lanes=14/1/1");
  ASSERT_TRUE(fine.ok()) << fine.status().message();
  EXPECT_EQ(fine->provider_sixteenths, 14u);
  EXPECT_EQ(fine->payload_sixteenths, 1u);
  EXPECT_NE(fine->ToSpec().find(",lanes=14/1/1"), std::string::npos) << fine->ToSpec();
  EXPECT_EQ(ParseSchemeSpec(fine->ToSpec())->ToSpec(), fine->ToSpec());
  EXPECT_EQ(ParseSchemeSpec("gumbel:lanes=12/2/2")->ToSpec(), ParseSchemeSpec("gumbel:lanes=6/1/1")->ToSpec());
  EXPECT_EQ(ParseSchemeSpec("gumbel:lanes=8/4/4")->ToSpec().find("lanes"), std::string::npos);
  for (const char* bad : {"gumbel:lanes=15/1/0", "gumbel:lanes=14/1/2", "gumbel:lanes=16/0/0", "gumbel:lanes=30/1/1"}) {
    EXPECT_FALSE(ParseSchemeSpec(bad).ok()) << bad;
  }
  std::vector<int32_t> tokens;
  for (int i = 0; i < 40000; ++i) tokens.push_back((i * 7919) % 49152);
  const auto six = *ParseSchemeSpec("gumbel:lanes=6/1/1");
  const auto twelve = *ParseSchemeSpec("gumbel:lanes=12/2/2");
  int lanes[3] = {0, 0, 0};
  for (size_t i = 4; i < tokens.size(); ++i) {
    const ContextInfo a = HashContext(99, six, tokens, i);
    ASSERT_EQ(a.lane, HashContext(99, twelve, tokens, i).lane);
    ++lanes[static_cast<int>(HashContext(99, *fine, tokens, i).lane)];
  }
  const double n = static_cast<double>(tokens.size() - 4);
  EXPECT_NEAR(lanes[0] / n, 14 / 16.0, 0.02);
  EXPECT_NEAR(lanes[1] / n, 1 / 16.0, 0.01);
  EXPECT_NEAR(lanes[2] / n, 1 / 16.0, 0.01);
}

TEST(HashContext, LanesAreBalancedAndDeterministic) {
  auto p = *ParseSchemeSpec("gumbel");
  std::vector<int32_t> tokens;
  for (int i = 0; i < 40000; ++i) tokens.push_back((i * 7919) % 49152);
  int lanes[3] = {0, 0, 0};
  std::vector<int> positions(p.payload_digits, 0);
  for (size_t i = 4; i < tokens.size(); ++i) {
    const ContextInfo a = HashContext(1234, p, tokens, i);
    const ContextInfo b = HashContext(1234, p, tokens, i);
    ASSERT_EQ(a.hash, b.hash);
    ++lanes[static_cast<int>(a.lane)];
    if (a.lane == Lane::kPayload) ++positions[a.position];
  }
  const double n = static_cast<double>(tokens.size() - 4);
  EXPECT_NEAR(lanes[0] / n, 0.5, 0.02);
  EXPECT_NEAR(lanes[1] / n, 0.25, 0.02);
  EXPECT_NEAR(lanes[2] / n, 0.25, 0.02);
  for (int c : positions) EXPECT_NEAR(c / (lanes[1] / static_cast<double>(p.payload_digits)), 1.0, 0.1);
  // Only the last h tokens matter.
  std::vector<int32_t> a{1, 2, 3, 4, 5, 6}, b{9, 9, 3, 4, 5, 6};
  EXPECT_EQ(HashContext(7, p, a, 6).hash, HashContext(7, p, b, 6).hash);
  EXPECT_NE(HashContext(7, p, a, 6).hash, HashContext(8, p, a, 6).hash);
  EXPECT_NE(HashContext(7, p, a, 6).hash, HashContext(7, p, a, 5).hash);
}

}  // namespace
}  // namespace tracemark::watermark

namespace tracemark::watermark {
namespace {

TEST(Philox, BatchMatchesScalar) {
  for (size_t n : {0u, 1u, 15u, 16u, 17u, 100u}) {
    std::vector<uint32_t> a(n), b(n), c(n), d(n), o0(n), o1(n), o2(n), o3(n);
    for (size_t i = 0; i < n; ++i) {
      a[i] = static_cast<uint32_t>(i * 2654435761u);
      b[i] = static_cast<uint32_t>(i + 7);
      c[i] = static_cast<uint32_t>(~i);
      d[i] = static_cast<uint32_t>(i * i);
    }
    Philox4x32Batch(0x0123456789abcdefull, n, a.data(), b.data(), c.data(), d.data(), o0.data(),
                    o1.data(), o2.data(), o3.data());
    for (size_t i = 0; i < n; ++i) {
      const PhiloxBlock want = Philox4x32(0x0123456789abcdefull, {a[i], b[i], c[i], d[i]});
      EXPECT_EQ((PhiloxBlock{o0[i], o1[i], o2[i], o3[i]}), want) << n << " " << i;
    }
  }
}

}  // namespace
}  // namespace tracemark::watermark
