// Usage journal: group commit, flush into the store, replay after a crash (fork + _exit without
// any shutdown), torn tails ignored, no duplicates.
#include "tracemark/ledger/usage_journal.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>

namespace tracemark::ledger {
namespace {

std::string TempDir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("tm_journal_" + std::to_string(::getpid())) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

UsageRecord Rec(int i) {
  return UsageRecord{"req-" + std::to_string(i), "acct_1", "k1", "smollm2", "completions",
                     i, 2 * i, "gumbel", 1, 1000 + i, 2000 + i};
}

TEST(UsageJournal, EncodeDecodeRoundTrip) {
  const UsageRecord r = Rec(5);
  auto d = DecodeUsageRecord(EncodeUsageRecord(r));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->request_id, r.request_id);
  EXPECT_EQ(d->completion_tokens, 10);
  EXPECT_EQ(d->finished_at_ms, 2005);
  EXPECT_FALSE(DecodeUsageRecord("{").ok());
  EXPECT_FALSE(DecodeUsageRecord("{\"request_id\":1}").ok());
}

TEST(UsageJournal, CommitsThenStores) {
  const std::string dir = TempDir("commit");
  auto store = OpenLedgerStore("sqlite:" + dir + "/db.sqlite");
  ASSERT_TRUE(store.ok());
  auto journal = UsageJournal::Open(dir + "/journal", store->get());
  ASSERT_TRUE(journal.ok()) << journal.status().ToString();
  std::atomic<int> acked{0};
  constexpr int kN = 200;
  for (int i = 0; i < kN; ++i) {
    (*journal)->Append(Rec(i), [&](const Status& s) {
      EXPECT_TRUE(s.ok());
      acked.fetch_add(1);
    });
  }
  ASSERT_TRUE((*journal)->FlushToStore().ok());
  EXPECT_EQ(acked.load(), kN);
  // Group commit: far fewer fsyncs than records.
  EXPECT_LT((*journal)->fsyncs(), static_cast<uint64_t>(kN));
  EXPECT_EQ((*store)->ListUsage("")->size(), static_cast<size_t>(kN));
}

// kill -9 semantics for both durability modes: every acknowledged record is replayed exactly once.
void CrashAndReplay(const std::string& name, JournalSync sync) {
  const std::string dir = TempDir(name);
  const std::string db = "sqlite:" + dir + "/db.sqlite";
  constexpr int kN = 50;
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Child: acknowledge kN records, then die without any destructor or flush.
    auto store = OpenLedgerStore(db);
    if (!store.ok()) ::_exit(3);
    auto journal = UsageJournal::Open(dir + "/journal", store->get(), nullptr, sync);
    if (!journal.ok()) ::_exit(4);
    std::atomic<int> acked{0};
    for (int i = 0; i < kN; ++i) {
      (*journal)->Append(Rec(i), [&](const Status& s) {
        if (s.ok()) acked.fetch_add(1);
      });
    }
    while (acked.load() < kN) ::usleep(1000);
    ::_exit(0);
  }
  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus));
  ASSERT_EQ(WEXITSTATUS(wstatus), 0);
  // A torn frame at the end of a segment (crash mid-write of an unacknowledged record).
  for (const auto& e : std::filesystem::directory_iterator(dir + "/journal")) {
    std::ofstream(e.path(), std::ios::app | std::ios::binary) << std::string("\x40\x00\x00\x00garbage", 11);
  }
  auto store = OpenLedgerStore(db);
  ASSERT_TRUE(store.ok());
  uint64_t replayed = 0;
  {
    auto journal = UsageJournal::Open(dir + "/journal", store->get(), &replayed);
    ASSERT_TRUE(journal.ok()) << journal.status().ToString();
  }
  auto usage = (*store)->ListUsage("");
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->size(), static_cast<size_t>(kN));  // every acknowledged record, exactly once
  // A second open finds nothing left to replay.
  uint64_t again = 99;
  auto journal2 = UsageJournal::Open(dir + "/journal", store->get(), &again);
  ASSERT_TRUE(journal2.ok());
  EXPECT_EQ(again, 0u);
  EXPECT_EQ((*store)->ListUsage("")->size(), static_cast<size_t>(kN));
}

TEST(UsageJournal, ReplaysAfterCrashWithoutDuplicates) { CrashAndReplay("crash", JournalSync::kCommit); }

TEST(UsageJournal, IntervalSyncReplaysAfterCrashWithoutDuplicates) {
  CrashAndReplay("crash-interval", JournalSync::kInterval);
}

TEST(UsageJournal, IntervalSyncAcknowledgesBeforeSyncAndSyncsOnTheFlusher) {
  const std::string dir = TempDir("interval");
  auto store = OpenLedgerStore("sqlite:" + dir + "/db.sqlite");
  ASSERT_TRUE(store.ok());
  auto journal = UsageJournal::Open(dir + "/journal", store->get(), nullptr, JournalSync::kInterval);
  ASSERT_TRUE(journal.ok());
  std::atomic<int> acked{0};
  for (int i = 0; i < 20; ++i) {
    (*journal)->Append(Rec(i), [&](const Status& s) {
      if (s.ok()) acked.fetch_add(1);
    });
  }
  while (acked.load() < 20) ::usleep(1000);
  EXPECT_EQ((*journal)->fsyncs(), 0u);  // acknowledged without any fdatasync on the commit path
  ASSERT_TRUE((*journal)->FlushToStore().ok());
  // The flusher syncs the segment within one interval.
  for (int i = 0; i < 100 && (*journal)->fsyncs() == 0; ++i) ::usleep(20000);
  EXPECT_GE((*journal)->fsyncs(), 1u);
  EXPECT_EQ((*store)->ListUsage("")->size(), 20u);
}

// Segment files in dir: number -> size.
std::map<uint64_t, uintmax_t> Segments(const std::string& dir) {
  std::map<uint64_t, uintmax_t> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("usage-", 0) != 0) continue;
    out[std::stoull(name.substr(6, 12))] = e.file_size();
  }
  return out;
}

// Bytes of the frames of records [from, to).
uintmax_t FrameBytes(int from, int to) {
  uintmax_t n = 0;
  for (int i = from; i < to; ++i) n += EncodeUsageRecord(Rec(i)).size() + 8;
  return n;
}

// Appends records [from, to) and waits until all are acknowledged.
void AppendAndWait(UsageJournal& journal, int from, int to) {
  std::atomic<int> acked{0};
  for (int i = from; i < to; ++i) {
    journal.Append(Rec(i), [&](const Status& s) {
      if (s.ok()) acked.fetch_add(1);
    });
  }
  while (acked.load() < to - from) ::usleep(500);
}

// A flush into the store does not rotate the segment: the old journal rotated after every flush
// (five times a second), creating a file and fsyncing the directory while holding the mutex
// that Append() takes on the event loop. Regression guard for that tail-latency stall.
TEST(UsageJournal, FlushDoesNotRotate) {
  const std::string dir = TempDir("norotate");
  auto store = OpenLedgerStore("sqlite:" + dir + "/db.sqlite");
  ASSERT_TRUE(store.ok());
  auto journal = UsageJournal::Open(dir + "/journal", store->get());
  ASSERT_TRUE(journal.ok()) << journal.status().ToString();
  for (int round = 0; round < 3; ++round) {
    AppendAndWait(**journal, 100 * round, 100 * (round + 1));
    ASSERT_TRUE((*journal)->FlushToStore().ok());
  }
  EXPECT_EQ((*store)->ListUsage("")->size(), 300u);
  // Segment 0 holds all 300 frames; at most the spare (1, empty) exists besides it.
  const auto segments = Segments(dir + "/journal");
  ASSERT_TRUE(segments.count(0));
  EXPECT_EQ(segments.at(0), FrameBytes(0, 300));
  for (const auto& [n, size] : segments) {
    if (n != 0) {
      EXPECT_EQ(size, 0u) << "segment " << n;
    }
  }
  journal->reset();  // stores everything, removes the open segment and the spare
  EXPECT_TRUE(Segments(dir + "/journal").empty());
}

// More records than one segment holds: the writer moves on to the next segment (the spare the
// flusher made), a crash leaves several segments, and replay finds every record exactly once.
TEST(UsageJournal, RotatesAndReplaysAcrossSegments) {
  const std::string dir = TempDir("rotate");
  const std::string db = "sqlite:" + dir + "/db.sqlite";
  const int record_bytes = static_cast<int>(EncodeUsageRecord(Rec(99999)).size()) + 8;
  const int n = static_cast<int>(kJournalSegmentBytes / static_cast<uint64_t>(record_bytes)) * 3 / 2;
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto store = OpenLedgerStore(db);
    if (!store.ok()) ::_exit(3);
    auto journal = UsageJournal::Open(dir + "/journal", store->get());
    if (!journal.ok()) ::_exit(4);
    constexpr int kChunk = 1000;  // several batches, so that one of them crosses a segment end
    for (int i = 0; i < n; i += kChunk) AppendAndWait(**journal, i, std::min(n, i + kChunk));
    ::_exit(0);
  }
  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus));
  ASSERT_EQ(WEXITSTATUS(wstatus), 0);
  const auto left = Segments(dir + "/journal");
  ASSERT_FALSE(left.empty());
  // The writer moved on: segment 1 holds frames (a spare that was never used is empty), and no
  // segment grew past the segment size.
  ASSERT_TRUE(left.count(1));
  EXPECT_GT(left.at(1), 0u);
  for (const auto& [seg, size] : left) EXPECT_LE(size, kJournalSegmentBytes) << "segment " << seg;
  auto store = OpenLedgerStore(db);
  ASSERT_TRUE(store.ok());
  {
    auto journal = UsageJournal::Open(dir + "/journal", store->get());
    ASSERT_TRUE(journal.ok()) << journal.status().ToString();
  }
  auto usage = (*store)->ListUsage("");
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->size(), static_cast<size_t>(n));
}

}  // namespace
}  // namespace tracemark::ledger
