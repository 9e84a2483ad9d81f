// `scan --suspects` end to end on the real scorer: the suspect list is part of the scorer
// identity (so shards of different lists never merge), a bad list fails before any document, and
// rows carry the targeted test and name only suspects. Uses the committed planted documents
// (tests/data/redteam/planted_wm.jsonl, accounts 101..505 under tests/data/cli/test.keyring);
// skips when the default model is absent.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tracemark/scan/watermark_scorer.h"

namespace tracemark::scan {
namespace {

constexpr const char* kModel = TM_SOURCE_DIR "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
constexpr const char* kKeyring = TM_SOURCE_DIR "/tests/data/cli/test.keyring";
constexpr const char* kPlanted = TM_SOURCE_DIR "/tests/data/redteam/planted_wm.jsonl";

class SuspectsScanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kModel)) GTEST_SKIP() << "model missing: " << kModel;
    keyring_ = std::string(TM_BINARY_DIR) + "/suspects_scan_keyring_" + std::to_string(::getpid());
    std::filesystem::copy_file(kKeyring, keyring_,
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::permissions(
        keyring_, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
        std::filesystem::perm_options::replace);
  }
  void TearDown() override {
    if (!keyring_.empty()) std::filesystem::remove(keyring_);
  }
  Result<std::unique_ptr<WatermarkScoring>> Scoring(std::vector<uint64_t> suspects) {
    WatermarkScoringOptions o;
    o.keyring_path = keyring_;
    o.model_path = kModel;
    o.suspects = std::move(suspects);
    return WatermarkScoring::Create(o);
  }
  std::string keyring_;
};

TEST_F(SuspectsScanTest, IdentityRecordsTheListAndBadListsFailEarly) {
  auto none = Scoring({});
  auto a = Scoring({101, 202});
  auto a_reordered = Scoring({202, 101});
  auto b = Scoring({101, 303});
  ASSERT_TRUE(none.ok() && a.ok() && a_reordered.ok() && b.ok()) << a.status().ToString();
  EXPECT_EQ((*a)->Identity(), (*a_reordered)->Identity());  // a set: order does not matter
  EXPECT_NE((*a)->Identity(), (*b)->Identity());
  EXPECT_NE((*a)->Identity(), (*none)->Identity());
  const nlohmann::json id = nlohmann::json::parse((*a)->Identity());
  EXPECT_EQ(id["suspects"]["count"].get<int>(), 2);
  EXPECT_EQ(id["suspects"]["sha256"].get<std::string>().size(), 64u);
  EXPECT_FALSE(nlohmann::json::parse((*none)->Identity()).contains("suspects"));

  auto outside = Scoring({101, uint64_t{1} << 20});
  ASSERT_FALSE(outside.ok());
  EXPECT_NE(outside.status().message().find("outside the payload space"), std::string::npos)
      << outside.status().ToString();
  auto dup = Scoring({101, 101});
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.status().message().find("listed twice"), std::string::npos);
}

TEST_F(SuspectsScanTest, RowsCarryTheTargetedTestAndNameOnlySuspects) {
  auto scoring = Scoring({101, 202});
  ASSERT_TRUE(scoring.ok()) << scoring.status().ToString();
  auto scorer = (*scoring)->NewScorer();
  ASSERT_TRUE(scorer.ok());
  auto untargeted = Scoring({});
  ASSERT_TRUE(untargeted.ok());
  auto plain = (*untargeted)->NewScorer();
  ASSERT_TRUE(plain.ok());
  std::ifstream in(kPlanted);
  std::string line;
  int docs = 0, suspects_named = 0;
  while (std::getline(in, line)) {
    const nlohmann::json doc = nlohmann::json::parse(line);
    const uint64_t writer = std::stoull(doc["account"].get<std::string>());
    auto s = (*scorer)->Score(doc["text"].get<std::string>());
    auto u = (*plain)->Score(doc["text"].get<std::string>());
    ASSERT_TRUE(s.ok() && u.ok()) << s.status().ToString();
    EXPECT_EQ(s->suspects_tested, 2);
    EXPECT_EQ(u->suspects_tested, 0);
    EXPECT_LT(s->targeted_log10_p, -6.0) << doc["id"];  // our text: present for any suspect
    ASSERT_TRUE(s->targeted_suspect.has_value());
    if (writer == 101 || writer == 202) {
      ASSERT_TRUE(s->account.has_value()) << doc["id"];
      EXPECT_EQ(*s->account, writer);
      EXPECT_EQ(*s->targeted_suspect, writer);
      ++suspects_named;
    } else {
      EXPECT_FALSE(s->account.has_value()) << doc["id"] << " names " << *s->account;
    }
    ++docs;
  }
  EXPECT_GE(docs, 5);
  EXPECT_GE(suspects_named, 2);
}

}  // namespace
}  // namespace tracemark::scan
