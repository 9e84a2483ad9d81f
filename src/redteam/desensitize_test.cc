#include "tracemark/redteam/desensitize.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "tracemark/watermark/placeholders.h"

namespace tracemark::redteam {
namespace {

TEST(MaskPii, ReplacesEachKindWithPlaceholdersTheDetectorSkips) {
  PiiCounts c;
  const std::string in =
      "Contact John at john.doe@example.com or +1 (555) 123-4567. Order AB12345 costs 42 dollars, ref 9876543.";
  const std::string out = MaskPii(in, {}, &c);
  EXPECT_EQ(out, "Contact <NAME> at [EMAIL] or [PHONE]. Order [ID] costs [NUMBER] dollars, ref [ID].") << out;
  EXPECT_EQ(c.emails, 1);
  EXPECT_EQ(c.phones, 1);
  EXPECT_EQ(c.names, 1);
  EXPECT_EQ(c.ids, 2);
  EXPECT_EQ(c.numbers, 1);
  // Every placeholder is one the watermark detector recognizes and masks.
  EXPECT_EQ(watermark::FindPlaceholders(out).size(), 6u);
}

TEST(MaskPii, LeavesOrdinaryTextAndShortCodesAlone) {
  PiiCounts c;
  EXPECT_EQ(MaskPii("The H2O molecule and 3D printing, said Mark.", {}, &c),
            "The H2O molecule and 3D printing, said <NAME>.");
  EXPECT_EQ(MaskPii("Zorblax met Quentin.", {"Zorblax"}, &c), "<NAME> met Quentin.");
  EXPECT_EQ(MaskPii("email me @ home", {}, &c), "email me @ home");
}

TEST(NormalizeText, StripsMarkdownAndTypography) {
  EXPECT_EQ(NormalizeText("## Title\n\n- **bold** item\u2019s   text\n* `code` \u2014 done"),
            "Title bold item's text code - done");
}

std::string LongText() {
  std::string s;
  for (int i = 0; i < 200; ++i) {
    s += "It is important to use a simple method because many students often need a clear example of the process. ";
  }
  return s;
}

TEST(SubstituteSynonyms, HitsTheRequestedShareOfWordsDeterministically) {
  const std::string text = LongText();
  Rng a(7), b(7), c(8);
  int64_t words = 0, replaced = 0, w2 = 0, r2 = 0, w3 = 0, r3 = 0;
  const std::string x = SubstituteSynonyms(text, 0.2, a, &words, &replaced);
  const std::string y = SubstituteSynonyms(text, 0.2, b, &w2, &r2);
  const std::string z = SubstituteSynonyms(text, 0.2, c, &w3, &r3);
  EXPECT_EQ(x, y);
  EXPECT_NE(x, z);
  const double share = static_cast<double>(replaced) / static_cast<double>(words);
  EXPECT_GT(share, 0.17);
  EXPECT_LT(share, 0.23);
  EXPECT_GT(SynonymTableSize(), 200u);
}

TEST(DeleteWords, DeletesAboutTheRate) {
  Rng rng(3);
  int64_t deleted = 0;
  const std::string out = DeleteWords(LongText(), 0.1, rng, &deleted);
  EXPECT_GT(deleted, 3600 * 0.07);
  EXPECT_LT(deleted, 3600 * 0.13);
  EXPECT_LT(out.size(), LongText().size());
}

TEST(TruncateWords, KeepsAContiguousFragment) {
  Rng rng(5);
  const std::string out = TruncateWords("a b c d e f g h i j", 0.5, rng);
  EXPECT_EQ(std::count(out.begin(), out.end(), ' '), 4);
  EXPECT_NE(std::string("a b c d e f g h i j").find(out), std::string::npos);
}

TEST(DesensitizeFile, MixesCleanTextAtTheFractionAndKeepsFields) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("tm_desens_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream in(dir / "in.jsonl");
    for (int i = 0; i < 10; ++i) {
      in << nlohmann::json({{"id", "h" + std::to_string(i)}, {"account", "7"},
                            {"text", "Mail bob@example.org about item " + std::to_string(1000 + i) + " today."}})
                .dump()
         << "\n";
    }
    std::ofstream clean(dir / "clean.txt");
    for (int i = 0; i < 200; ++i) clean << "And the earth was without form, verse " << i << ".\n";
  }
  DesensitizeOptions o;
  o.mask_pii = true;
  o.mix_path = (dir / "clean.txt").string();
  o.fraction = 0.1;
  o.shuffle = true;
  o.seed = 11;
  Result<DesensitizeStats> st = DesensitizeFile((dir / "in.jsonl").string(), (dir / "out.jsonl").string(), o);
  ASSERT_TRUE(st.ok()) << st.status().message();
  EXPECT_EQ(st->records_in, 10);
  EXPECT_EQ(st->clean_added, 90);
  EXPECT_EQ(st->records_out, 100);
  EXPECT_EQ(st->pii.emails, 10);
  std::ifstream out(dir / "out.jsonl");
  int harvest = 0, clean = 0;
  std::set<std::string> ids;
  for (std::string line; std::getline(out, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    ids.insert(j["id"].get<std::string>());
    if (j["source"] == "harvest") {
      ++harvest;
      EXPECT_EQ(j["account"], "7");
      EXPECT_EQ(j["text"].get<std::string>().find('@'), std::string::npos);
    } else {
      ++clean;
    }
  }
  EXPECT_EQ(harvest, 10);
  EXPECT_EQ(clean, 90);
  EXPECT_EQ(ids.size(), 100u);
  // Same seed, same bytes.
  std::ifstream a(dir / "out.jsonl");
  std::stringstream first;
  first << a.rdbuf();
  ASSERT_TRUE(DesensitizeFile((dir / "in.jsonl").string(), (dir / "out2.jsonl").string(), o).ok());
  std::ifstream b(dir / "out2.jsonl");
  std::stringstream second;
  second << b.rdbuf();
  EXPECT_EQ(first.str(), second.str());
  std::filesystem::remove_all(dir);
}

TEST(DesensitizeFile, RejectsBadInputWithAUsageError) {
  DesensitizeOptions o;
  o.fraction = 0.5;  // without --mix
  Result<DesensitizeStats> st = DesensitizeFile("/nonexistent.jsonl", "/tmp/x.jsonl", o);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tracemark::redteam
