// RFC 6962 tree hashes and proofs against vectors computed independently in Python
// (tools/gen_merkle_vectors.py -> tests/data/ledger/merkle_vectors.json).
#include "tracemark/ledger/merkle.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tracemark/base/file.h"

namespace tracemark::ledger {
namespace {

Hash FromHex(const std::string& hex) {
  Hash h{};
  EXPECT_TRUE(HexDecode(hex, h)) << hex;
  return h;
}

std::string FromHexBytes(const std::string& hex) {
  std::string out(hex.size() / 2, '\0');
  EXPECT_TRUE(HexDecode(hex, std::span<uint8_t>(reinterpret_cast<uint8_t*>(out.data()), out.size())));
  return out;
}

class MerkleVectors : public ::testing::Test {
 protected:
  void SetUp() override {
    auto text = ReadFile(std::string(TM_SOURCE_DIR) + "/tests/data/ledger/merkle_vectors.json", 1 << 20);
    ASSERT_TRUE(text.ok()) << text.status().ToString();
    vec_ = nlohmann::json::parse(*text);
    for (const auto& l : vec_["leaves"]) leaves_.push_back(LeafHash(FromHexBytes(l.get<std::string>())));
  }
  nlohmann::json vec_;
  std::vector<Hash> leaves_;
};

TEST_F(MerkleVectors, KnownRootsFromCertificateTransparency) {
  // Published roots of the CT reference data (size 0, 1 and 8).
  EXPECT_EQ(HexEncode(TreeHash({})), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(HexEncode(TreeHash(std::span(leaves_.data(), 1))),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
  EXPECT_EQ(HexEncode(TreeHash(std::span(leaves_.data(), 8))),
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328");
}

TEST_F(MerkleVectors, RootsMatchEverySize) {
  const auto& roots = vec_["roots"];
  ASSERT_EQ(roots.size(), leaves_.size() + 1);
  for (size_t n = 0; n <= leaves_.size(); ++n) {
    EXPECT_EQ(HexEncode(TreeHash(std::span(leaves_.data(), n))), roots[n].get<std::string>()) << n;
  }
}

TEST_F(MerkleVectors, InclusionProofsMatchAndVerify) {
  for (const auto& c : vec_["inclusion"]) {
    const uint64_t n = c["size"], m = c["index"];
    const std::span<const Hash> tree(leaves_.data(), n);
    auto proof = InclusionProof(tree, m);
    ASSERT_TRUE(proof.ok());
    ASSERT_EQ(proof->size(), c["path"].size());
    for (size_t i = 0; i < proof->size(); ++i) {
      EXPECT_EQ(HexEncode((*proof)[i]), c["path"][i].get<std::string>());
    }
    const Hash root = FromHex(vec_["roots"][n]);
    EXPECT_TRUE(VerifyInclusion(m, n, leaves_[m], *proof, root)) << m << "/" << n;
    // Wrong leaf, wrong index, wrong root, truncated proof all fail.
    EXPECT_FALSE(VerifyInclusion(m, n, leaves_[(m + 1) % leaves_.size()], *proof, root));
    if (n > 1) {
      EXPECT_FALSE(VerifyInclusion((m + 1) % n, n, leaves_[m], *proof, root));
    }
    EXPECT_FALSE(VerifyInclusion(m, n, leaves_[m], *proof, FromHex(vec_["roots"][n - 1])));
    if (!proof->empty()) {
      EXPECT_FALSE(VerifyInclusion(m, n, leaves_[m], std::span(proof->data(), proof->size() - 1), root));
    }
  }
}

TEST_F(MerkleVectors, ConsistencyProofsMatchAndVerify) {
  for (const auto& c : vec_["consistency"]) {
    const uint64_t m = c["old"], n = c["new"];
    auto proof = ConsistencyProof(std::span<const Hash>(leaves_.data(), n), m);
    ASSERT_TRUE(proof.ok());
    ASSERT_EQ(proof->size(), c["proof"].size()) << m << "->" << n;
    for (size_t i = 0; i < proof->size(); ++i) {
      EXPECT_EQ(HexEncode((*proof)[i]), c["proof"][i].get<std::string>());
    }
    const Hash old_root = FromHex(vec_["roots"][m]);
    const Hash new_root = FromHex(vec_["roots"][n]);
    EXPECT_TRUE(VerifyConsistency(m, n, old_root, new_root, *proof)) << m << "->" << n;
    EXPECT_FALSE(VerifyConsistency(m, n, new_root, old_root, *proof));
    Hash bad = old_root;
    bad[0] ^= 1;
    EXPECT_FALSE(VerifyConsistency(m, n, bad, new_root, *proof));
  }
}

TEST(Merkle, LeafAndNodeAreDomainSeparated) {
  const Hash a = LeafHash("x"), b = LeafHash("y");
  std::string concat(reinterpret_cast<const char*>(a.data()), 32);
  concat.append(reinterpret_cast<const char*>(b.data()), 32);
  EXPECT_NE(LeafHash(concat), NodeHash(a, b));
}

TEST(Merkle, ProofArgumentsOutOfRangeAreErrors) {
  std::vector<Hash> leaves = {LeafHash("a"), LeafHash("b")};
  EXPECT_FALSE(InclusionProof(leaves, 2).ok());
  EXPECT_FALSE(ConsistencyProof(leaves, 3).ok());
  EXPECT_FALSE(VerifyInclusion(2, 2, leaves[0], {}, TreeHash(leaves)));
}

TEST_F(MerkleVectors, FrontierRootEqualsTreeHashAtEverySize) {
  MerkleFrontier f;
  EXPECT_EQ(f.Root(), TreeHash({}));
  for (size_t n = 1; n <= leaves_.size(); ++n) {
    f.Append(leaves_[n - 1]);
    EXPECT_EQ(f.size(), n);
    EXPECT_EQ(f.nodes().size(), static_cast<size_t>(__builtin_popcountll(n)));
    EXPECT_EQ(f.Root(), TreeHash(std::span<const Hash>(leaves_.data(), n))) << "size " << n;
  }
}

TEST(Merkle, FrontierMatchesTreeHashUpTo300Leaves) {
  std::vector<Hash> leaves;
  MerkleFrontier f;
  for (int i = 0; i < 300; ++i) {
    leaves.push_back(LeafHash("entry " + std::to_string(i)));
    f.Append(leaves.back());
    ASSERT_EQ(f.Root(), TreeHash(leaves)) << "size " << leaves.size();
  }
}

TEST(Merkle, FrontierSerializesAndRejectsBadLengths) {
  MerkleFrontier f;
  for (int i = 0; i < 13; ++i) f.Append(LeafHash(std::to_string(i)));
  const std::string bytes = f.Serialize();
  EXPECT_EQ(bytes.size(), 8u + 32u * 3u);  // 13 = 8 + 4 + 1
  auto back = MerkleFrontier::Parse(bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->size(), 13u);
  EXPECT_EQ(back->Root(), f.Root());
  back->Append(LeafHash("13"));
  f.Append(LeafHash("13"));
  EXPECT_EQ(back->Root(), f.Root());
  EXPECT_FALSE(MerkleFrontier::Parse(bytes.substr(0, bytes.size() - 1)).ok());
  EXPECT_FALSE(MerkleFrontier::Parse(bytes + std::string(32, 'x')).ok());
  EXPECT_FALSE(MerkleFrontier::Parse("short").ok());
}

}  // namespace
}  // namespace tracemark::ledger
