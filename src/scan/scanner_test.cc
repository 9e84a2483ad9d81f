// Scanner and shard protocol: outputs, error reports, reruns, merge, and byte-identical merged
// results for every thread count and world size.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <sstream>

#include "fmt/format.h"

#include "scan/scan_test_util.h"
#include "tracemark/scan/scanner.h"
#include "tracemark/scan/shard.h"

namespace tracemark::scan {
namespace {

using testing::FakePoolFactory;
using testing::FakeScorerFactory;
using testing::GzipCompress;
using testing::ReadBytes;
using testing::TempDir;
using testing::WriteBytes;
using testing::ZstdCompress;

// A corpus with watermarked documents for three accounts, clean text and broken input.
class ScanCorpus {
 public:
  ScanCorpus() {
    std::string a;
    for (int i = 0; i < 9000; ++i) {
      std::string text = "clean document number " + std::to_string(i);
      if (i % 100 == 7) text = "planted WATERMARK:" + std::to_string(7 + i % 3) + " doc " + std::to_string(i);
      if (i == 4242) text = "planted WATERMARK:? unattributed";
      if (i == 5000) text = "SCOREFAIL";
      if (i == 123 || i == 8000) {
        a += "{\"text\": broken\n";
        continue;
      }
      if (i % 2 == 0) {
        a += "{\"id\":\"a-" + std::to_string(i) + "\",\"text\":\"" + text + "\"}\n";
      } else {
        a += "{\"text\":\"" + text + "\"}\n";
      }
    }
    WriteBytes(dir_.Join("a.jsonl.zst"), ZstdCompress(a));
    std::string b;
    for (int i = 0; i < 5000; ++i) {
      if (i == 17) {
        b += "bad \xFF utf8\n";
      } else if (i % 250 == 3) {
        b += "text WATERMARK:8 line " + std::to_string(i) + "\n";
      } else {
        b += "plain line " + std::to_string(i) + "\n";
      }
    }
    WriteBytes(dir_.Join("b.txt.gz"), GzipCompress(b));
    std::string c;
    for (int i = 0; i < 100; ++i) {
      c += "{\"id\":" + std::to_string(1000 + i) +
           ",\"messages\":[{\"role\":\"user\",\"content\":\"hi WATERMARK:1\"},"
           "{\"role\":\"assistant\",\"content\":\"" +
           (i % 10 == 0 ? "answer WATERMARK:9" : "answer " + std::to_string(i)) + "\"}]}\n";
    }
    WriteBytes(dir_.Join("c.jsonl"), c);
    std::string d;
    uint32_t seed = 1;
    for (int i = 0; i < 3000; ++i) {
      std::string noise(120, 'a');
      for (char& ch : noise) {
        seed = seed * 1664525u + 1013904223u;
        ch = static_cast<char>('a' + (seed >> 24) % 26);
      }
      d += "{\"text\":\"d WATERMARK:7 " + noise + "\"}\n";
    }
    const std::string dz = ZstdCompress(d);
    WriteBytes(dir_.Join("d.jsonl.zst"), dz.substr(0, dz.size() / 2));
    WriteBytes(dir_.Join("e.txt"), "");
    for (const char* f : {"a.jsonl.zst", "b.txt.gz", "c.jsonl", "d.jsonl.zst", "e.txt"}) {
      job_.files.push_back(dir_.Join(f));
    }
  }
  ScanJob job(const std::string& field = "text") const {
    ScanJob j = job_;
    j.records.field = field;
    return j;
  }
  const TempDir& dir() const { return dir_; }

 private:
  TempDir dir_;
  ScanJob job_;
};

struct Merged {
  std::string results, summary;
};

Merged RunAll(const ScanJob& job, const std::string& out, int world, int threads) {
  FakeScorerFactory scorers;
  FakePoolFactory pools;
  for (int r = 0; r < world; ++r) {
    ShardOptions o;
    o.rank = r;
    o.world_size = world;
    o.threads = threads;
    o.out_dir = out;
    auto rep = RunShard(job, o, scorers);
    EXPECT_TRUE(rep.ok()) << rep.status().ToString();
  }
  auto m = MergeShards(out, &pools);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return Merged{ReadBytes(out + "/results.jsonl"), ReadBytes(out + "/summary.json")};
}

TEST(ShardPlanTest, ByFileOrByRecordBlock) {
  auto p = ShardPlan::Create(1, 3, 10);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->by_file());
  EXPECT_TRUE(p->ReadsFile(4));
  EXPECT_FALSE(p->ReadsFile(5));
  auto q = ShardPlan::Create(1, 4, 2);
  ASSERT_TRUE(q.ok());
  EXPECT_FALSE(q->by_file());
  EXPECT_TRUE(q->ReadsFile(0));
  EXPECT_TRUE(q->Owns(0, kRecordsPerBlock));
  EXPECT_FALSE(q->Owns(0, 0));
  EXPECT_TRUE(q->Owns(1, 0));
  // Every record has exactly one owner.
  for (uint64_t rec = 0; rec < 5 * kRecordsPerBlock; rec += 997) {
    int owners = 0;
    for (int r = 0; r < 4; ++r) owners += ShardPlan::Create(r, 4, 2)->Owns(1, rec) ? 1 : 0;
    EXPECT_EQ(owners, 1);
  }
  EXPECT_FALSE(ShardPlan::Create(3, 3, 1).ok());
  EXPECT_FALSE(ShardPlan::Create(0, 0, 1).ok());
  EXPECT_EQ(ShardName(3, 12), "00003-of-00012");
}

TEST(ScannerTest, FlagsPlantedDocumentsAndReportsErrors) {
  ScanCorpus corpus;
  TempDir out;
  const Merged m = RunAll(corpus.job(), out.path(), 1, 2);
  const auto summary = nlohmann::json::parse(m.summary);
  // a: 9000 lines - 2 broken - 1 score error; b: 5000 - 1 invalid UTF-8; c: JSONL "text" field
  // missing in all 100; d: records before the truncation point.
  EXPECT_EQ(summary["errors"]["by_kind"]["invalid_json"], 2);
  EXPECT_EQ(summary["errors"]["by_kind"]["invalid_utf8"], 1);
  EXPECT_EQ(summary["errors"]["by_kind"]["missing_field"], 100);
  EXPECT_EQ(summary["errors"]["by_kind"]["corrupt_stream"], 1);
  EXPECT_EQ(summary["errors"]["by_kind"]["score_error"], 1);
  const uint64_t d_docs = summary["documents_scanned"].get<uint64_t>() - (9000 - 3) - (5000 - 1);
  EXPECT_GT(d_docs, 100u);
  EXPECT_LT(d_docs, 3000u);
  // Every error has a file and a location.
  for (const auto& e : summary["errors"]["recorded"]) {
    EXPECT_TRUE(e.contains("file"));
    EXPECT_TRUE(e.contains("line"));
    EXPECT_TRUE(e.contains("offset") || e.contains("compressed_offset"));
  }
  const auto& bad = summary["errors"]["recorded"][0];
  EXPECT_EQ(bad["file"], corpus.dir().Join("a.jsonl.zst"));
  EXPECT_EQ(bad["line"], 124);
  EXPECT_EQ(bad["kind"], "invalid_json");
  // Flagged: 90 in a (one is the unattributed 4242? no: 4242 % 100 != 7), 20 in b, all of d read.
  EXPECT_EQ(summary["flagged_per_account"]["8"], 30 + 20);
  EXPECT_EQ(summary["flagged_unattributed"], 1);
  EXPECT_EQ(summary["flagged_per_account"]["9"], 30);
  EXPECT_EQ(summary["flagged_per_account"]["7"].get<uint64_t>(), 30 + d_docs);
  EXPECT_EQ(summary["documents_flagged"].get<uint64_t>(), 30 + 50 + 30 + d_docs + 1);
  EXPECT_TRUE(summary["corpus"]["pooled"].get<bool>());
  EXPECT_EQ(summary["corpus"]["accounts"].size(), 3u);
  EXPECT_FALSE(summary.contains("rank"));
  // Rows: sorted, with the contract's fields.
  std::istringstream rows(m.results);
  std::string line;
  std::pair<uint64_t, uint64_t> prev{0, 0};
  size_t n = 0;
  while (std::getline(rows, line)) {
    const auto row = nlohmann::json::parse(line);
    for (const char* k : {"doc_id", "file", "line", "offset", "tokens_scored", "p_value", "spans",
                          "account", "account_p_value", "key_version"}) {
      EXPECT_TRUE(row.contains(k)) << k;
    }
    const std::pair<uint64_t, uint64_t> key{row["file_index"], row["record"]};
    if (n > 0) {
      EXPECT_LT(prev, key);
    }
    prev = key;
    if (n == 0) {
      EXPECT_EQ(row["doc_id"], corpus.dir().Join("a.jsonl.zst") + ":8");
    }
    ++n;
  }
  EXPECT_EQ(n, summary["documents_flagged"].get<size_t>());
}

TEST(ScannerTest, ChatField) {
  ScanCorpus corpus;
  TempDir out;
  const Merged m = RunAll(corpus.job("messages"), out.path(), 1, 1);
  const auto summary = nlohmann::json::parse(m.summary);
  // Only the assistant turns count: 10 of the 100 chats mention account 9.
  EXPECT_EQ(summary["flagged_per_account"]["9"], 10);
  EXPECT_NE(m.results.find("\"doc_id\":\"1000\""), std::string::npos);
}

TEST(ScannerTest, ByteIdenticalForAnyThreadCountAndWorldSize) {
  ScanCorpus corpus;
  TempDir out;
  const Merged base = RunAll(corpus.job(), out.Join("w1t1"), 1, 1);
  ASSERT_FALSE(base.results.empty());
  const std::pair<int, int> configs[] = {{1, 2}, {1, 4}, {2, 1}, {3, 2}, {5, 3}, {7, 2}, {13, 1}};
  for (const auto& [world, threads] : configs) {
    const Merged m = RunAll(corpus.job(), out.Join(fmt::format("w{}t{}", world, threads)), world, threads);
    EXPECT_EQ(m.results, base.results) << "world " << world << " threads " << threads;
    EXPECT_EQ(m.summary, base.summary) << "world " << world << " threads " << threads;
  }
}

TEST(ScannerTest, RerunSkipsCompletedShardsAndRefusesAnotherJob) {
  ScanCorpus corpus;
  TempDir out;
  FakeScorerFactory scorers;
  ShardOptions o;
  o.world_size = 2;
  o.out_dir = out.path();
  auto first = RunShard(corpus.job(), o, scorers);
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->skipped);
  const std::string results = ReadBytes(out.Join("shards/00000-of-00002.results.jsonl"));
  auto again = RunShard(corpus.job(), o, scorers);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->skipped);
  EXPECT_EQ(again->counts.documents, first->counts.documents);
  EXPECT_EQ(again->counts.flagged, first->counts.flagged);
  EXPECT_EQ(ReadBytes(out.Join("shards/00000-of-00002.results.jsonl")), results);
  // Merge refuses while rank 1 is missing.
  auto merged = MergeShards(out.path(), nullptr);
  ASSERT_FALSE(merged.ok());
  EXPECT_NE(merged.status().message().find("ranks 1 "), std::string::npos) << merged.status().message();
  // Another job in the same folder is refused.
  ScanJob other = corpus.job();
  other.threshold = 1e-3;
  auto clash = RunShard(other, o, scorers);
  EXPECT_EQ(clash.status().code(), StatusCode::kInvalidArgument);
  // No temporary files are left behind.
  for (const auto& e : std::filesystem::recursive_directory_iterator(out.path())) {
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
  }
}

TEST(ScannerTest, MergeRefusesOtherKeysAndEmptyFolders) {
  ScanCorpus corpus;
  TempDir out;
  FakeScorerFactory scorers;
  ShardOptions o;
  o.out_dir = out.path();
  ASSERT_TRUE(RunShard(corpus.job(), o, scorers).ok());
  class OtherKeys : public FakePoolFactory {
   public:
    std::string Identity() const override { return "other-keys"; }
  } other;
  EXPECT_EQ(MergeShards(out.path(), &other).status().code(), StatusCode::kInvalidArgument);
  FakePoolFactory same;
  EXPECT_TRUE(MergeShards(out.path(), &same).ok());
  TempDir empty;
  EXPECT_EQ(MergeShards(empty.path(), nullptr).status().code(), StatusCode::kNotFound);
}

TEST(ScannerTest, MissingInputFileIsAnErrorNotAnAbort) {
  TempDir dir;
  WriteBytes(dir.Join("ok.txt"), "WATERMARK:3 one\nclean\n");
  ScanJob job;
  job.files = {dir.Join("gone.txt"), dir.Join("ok.txt")};
  FakeScorerFactory scorers;
  ShardOptions o;
  o.out_dir = dir.Join("out");
  auto rep = RunShard(job, o, scorers);
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  EXPECT_EQ(rep->counts.errors_by_kind["open_failed"], 1u);
  EXPECT_EQ(rep->counts.documents, 2u);
  EXPECT_EQ(rep->counts.flagged_per_account["3"], 1u);
}

TEST(ScannerTest, ScorerConstructionFailureFailsTheShard) {
  class Broken : public ScorerFactory {
   public:
    Result<std::unique_ptr<DocumentScorer>> NewScorer() override { return IoError("no model"); }
    std::string Identity() const override { return "broken"; }
  } broken;
  TempDir dir;
  std::string many;
  for (int i = 0; i < 10000; ++i) many += "line\n";
  WriteBytes(dir.Join("x.txt"), many);
  ScanJob job;
  job.files = {dir.Join("x.txt")};
  ShardOptions o;
  o.threads = 2;
  o.out_dir = dir.Join("out");
  auto rep = RunShard(job, o, broken);
  EXPECT_FALSE(rep.ok());
  EXPECT_FALSE(std::filesystem::exists(dir.Join("out/completions/00000-of-00001")));
}

TEST(ScannerTest, BadThreadCount) {
  ScanJob job;
  job.files = {"x"};
  FakeScorerFactory scorers;
  ShardOptions o;
  o.threads = 0;
  o.out_dir = "/tmp/unused";
  EXPECT_EQ(RunShard(job, o, scorers).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tracemark::scan
