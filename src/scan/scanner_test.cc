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

// summary.flagged_per_account is an array of {"account": id, "documents": n}.
uint64_t FlaggedFor(const nlohmann::json& summary, uint64_t account) {
  for (const auto& e : summary["flagged_per_account"]) {
    if (e["account"].get<uint64_t>() == account) return e["documents"].get<uint64_t>();
  }
  return 0;
}

Merged RunAll(const ScanJob& job, const std::string& out, int world, int threads,
              size_t pool_memory_bytes = kDefaultPoolMemoryBytes) {
  FakeScorerFactory scorers;
  FakePoolFactory pools;
  for (int r = 0; r < world; ++r) {
    ShardOptions o;
    o.rank = r;
    o.world_size = world;
    o.threads = threads;
    o.out_dir = out;
    o.pool_memory_bytes = pool_memory_bytes;
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
  EXPECT_EQ(FlaggedFor(summary, 8), 30u + 20u);
  EXPECT_EQ(summary["flagged_unattributed"], 1);
  EXPECT_EQ(FlaggedFor(summary, 9), 30u);
  EXPECT_EQ(FlaggedFor(summary, 7), 30 + d_docs);
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

// Regression (issue 5): `account` was a decimal string in rows and summaries while `tracemark
// detect` prints an integer; it is an integer (or null) everywhere now.
TEST(ScannerTest, AccountIsAnIntegerOrNull) {
  ScanCorpus corpus;
  TempDir out;
  const Merged m = RunAll(corpus.job(), out.path(), 2, 2);
  std::istringstream rows(m.results);
  std::string line;
  size_t attributed = 0, unattributed = 0;
  while (std::getline(rows, line)) {
    const auto row = nlohmann::json::parse(line);
    if (row["account"].is_null()) {
      ++unattributed;
    } else {
      ASSERT_TRUE(row["account"].is_number_unsigned()) << line;
      ++attributed;
    }
  }
  EXPECT_GT(attributed, 100u);
  EXPECT_EQ(unattributed, 1u);
  const auto summary = nlohmann::json::parse(m.summary);
  ASSERT_EQ(summary["flagged_per_account"].size(), 3u);
  for (const auto& e : summary["flagged_per_account"]) EXPECT_TRUE(e["account"].is_number_unsigned());
  for (const auto& e : summary["corpus"]["accounts"]) EXPECT_TRUE(e["account"].is_number_unsigned());
  EXPECT_EQ(summary["corpus"]["accounts"][0]["account"].get<uint64_t>(), 7u);
}

// The corpus-level pool covers every scanned document (not only the flagged ones), counts every
// tuple once across the whole corpus however often its text repeats, and merges the shards'
// tuple sets exactly: the summary equals a direct computation over all documents, for any
// world size, thread count and spill size.
TEST(ScannerTest, PooledTestCoversAllDocumentsOnceAndMergesExactly) {
  TempDir dir;
  std::vector<std::string> lines;
  for (int i = 0; i < 9000; ++i) {
    std::string text = "human text, line " + std::to_string(i % 1500) + " of " + std::to_string(i);
    if (i % 3 == 0) text = "the same repeated sentence";  // repeats must count once
    if (i % 700 == 5) text = "planted WATERMARK:" + std::to_string(7 + (i / 700) % 2) + " doc " + std::to_string(i);
    lines.push_back(text);
  }
  std::string a, b;
  for (size_t i = 0; i < lines.size(); ++i) (i < 8200 ? a : b) += lines[i] + "\n";
  WriteBytes(dir.Join("a.txt"), a);
  WriteBytes(dir.Join("b.txt.zst"), ZstdCompress(b));
  ScanJob job;
  job.files = {dir.Join("a.txt"), dir.Join("b.txt.zst")};

  // Direct computation: the set of all documents' tuples, scored in PoolTupleLess order.
  FakeScorerFactory scorers;
  auto scorer = scorers.NewScorer();
  ASSERT_TRUE(scorer.ok());
  std::vector<PoolTuple> all;
  size_t total_tuples = 0;
  for (const std::string& text : lines) {
    auto s = (*scorer)->Score(text);
    ASSERT_TRUE(s.ok());
    total_tuples += s->pool_tuples.size();
    all.insert(all.end(), s->pool_tuples.begin(), s->pool_tuples.end());
  }
  std::sort(all.begin(), all.end(), PoolTupleLess);
  all.erase(std::unique(all.begin(), all.end()), all.end());
  ASSERT_LT(all.size() * 4, total_tuples);  // the corpus repeats a lot
  FakePoolFactory pools;
  auto expect = [&](std::optional<uint64_t> account) {
    auto lane = pools.NewLaneScorer(1, account);
    double sum = 0;
    int64_t count = 0;
    for (const PoolTuple& t : all) {
      if (t.lane != (account ? kPoolAccountLane : kPoolProviderLane)) continue;
      sum += (*lane)->Score(t.context_hash, t.token);
      ++count;
    }
    return std::make_pair(count, (*lane)->Log10Tail(sum, count));
  };

  const Merged base = RunAll(job, dir.Join("w1"), 1, 1);
  const auto summary = nlohmann::json::parse(base.summary);
  EXPECT_EQ(summary["pool_tuples"].get<size_t>(), all.size());
  const auto& corpus = summary["corpus"];
  ASSERT_EQ(corpus["provider"].size(), 1u);
  const auto provider = expect(std::nullopt);
  EXPECT_EQ(corpus["provider"][0]["tuples"].get<int64_t>(), provider.first);
  EXPECT_EQ(corpus["provider"][0]["log10_p_value"].get<double>(), provider.second);
  ASSERT_EQ(corpus["accounts"].size(), 2u);
  for (int k = 0; k < 2; ++k) {
    const auto& acc = corpus["accounts"][k];
    EXPECT_EQ(acc["account"].get<uint64_t>(), 7u + k);
    const auto want = expect(7u + k);
    EXPECT_EQ(acc["tuples"].get<int64_t>(), want.first);
    EXPECT_EQ(acc["log10_p_value"].get<double>(), want.second);
    EXPECT_GT(acc["flagged_documents"].get<uint64_t>(), 5u);
  }
  // Same bytes with shards by record block (world 3 and 5 > 2 files), by file (world 2),
  // several threads and a pool memory so small that every worker spills sorted runs.
  const std::vector<std::tuple<int, int, size_t>> configs = {
      {2, 2, kDefaultPoolMemoryBytes}, {3, 3, 4096 * sizeof(PoolTuple)}, {5, 2, 1}, {1, 4, 1}};
  for (const auto& [world, threads, memory] : configs) {
    const Merged m = RunAll(job, dir.Join(fmt::format("w{}t{}m{}", world, threads, memory)),
                            world, threads, memory);
    EXPECT_EQ(m.summary, base.summary) << world << " " << threads << " " << memory;
    EXPECT_EQ(m.results, base.results);
  }
  // No spilled runs or temp files are left behind.
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir.path())) {
    const std::string name = e.path().filename().string();
    EXPECT_EQ(name.find("spill"), std::string::npos) << e.path();
    EXPECT_EQ(name.find(".tmp"), std::string::npos) << e.path();
  }
}

TEST(ScannerTest, ChatField) {
  ScanCorpus corpus;
  TempDir out;
  const Merged m = RunAll(corpus.job("messages"), out.path(), 1, 1);
  const auto summary = nlohmann::json::parse(m.summary);
  // Only the assistant turns count: 10 of the 100 chats mention account 9.
  EXPECT_EQ(FlaggedFor(summary, 9), 10u);
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
  EXPECT_EQ(rep->counts.flagged_per_account[3], 1u);
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
