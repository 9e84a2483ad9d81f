#include "tracemark/monitor/sketch.h"

#include <gtest/gtest.h>

namespace tracemark::monitor {
namespace {

TEST(HyperLogLogTest, EstimatesWithinTenPercent) {
  for (int n : {10, 100, 1000, 20000}) {
    HyperLogLog<7> hll;
    for (int i = 0; i < n; ++i) {
      hll.Add(Mix64(static_cast<uint64_t>(i) + 1));
      hll.Add(Mix64(static_cast<uint64_t>(i) + 1));  // duplicates do not count
    }
    EXPECT_NEAR(hll.Estimate(), n, 0.12 * n + 1) << n;
  }
}

TEST(HyperLogLogTest, MergeIsUnion) {
  HyperLogLog<7> a, b;
  for (int i = 0; i < 500; ++i) a.Add(Mix64(static_cast<uint64_t>(i)));
  for (int i = 250; i < 750; ++i) b.Add(Mix64(static_cast<uint64_t>(i)));
  a.Merge(b);
  EXPECT_NEAR(a.Estimate(), 750, 90);
}

TEST(MinHashTest, SimilarityTracksJaccard) {
  MinHasher h;
  for (int i = 0; i < 100; ++i) h.Add(Mix64(static_cast<uint64_t>(i)));
  const MinHashSignature a = h.signature();
  h.Reset();
  for (int i = 0; i < 100; ++i) h.Add(Mix64(static_cast<uint64_t>(i)));
  EXPECT_EQ(MinHashSimilarity(a, h.signature()), 1.0);
  h.Reset();
  for (int i = 1000; i < 1100; ++i) h.Add(Mix64(static_cast<uint64_t>(i)));
  EXPECT_LT(MinHashSimilarity(a, h.signature()), 0.2);
  // Average over many disjoint halves: Jaccard 1/3 for sets sharing 50 of 100.
  double sum = 0;
  for (int rep = 0; rep < 50; ++rep) {
    MinHasher x, y;
    for (int i = 0; i < 100; ++i) x.Add(Mix64(static_cast<uint64_t>(rep * 1000 + i)));
    for (int i = 50; i < 150; ++i) y.Add(Mix64(static_cast<uint64_t>(rep * 1000 + i)));
    sum += MinHashSimilarity(x.signature(), y.signature());
  }
  EXPECT_NEAR(sum / 50, 1.0 / 3, 0.07);
}

TEST(MinHashTest, EmptySignatureComparesAsZero) {
  MinHasher h;
  EXPECT_EQ(MinHashSimilarity(h.signature(), h.signature()), 0.0);
}

TEST(DecayedCountersTest, HalvesAfterOneHalfLife) {
  DecayedCounters<2> c;
  c.Advance(1000, 500);
  c.v[0] = 8;
  c.v[1] = 2;
  c.Advance(1500, 500);
  EXPECT_FLOAT_EQ(c.v[0], 4);
  EXPECT_FLOAT_EQ(c.v[1], 1);
  c.Advance(1400, 500);  // time going backwards does not grow counters
  EXPECT_FLOAT_EQ(c.v[0], 4);
}

}  // namespace
}  // namespace tracemark::monitor
