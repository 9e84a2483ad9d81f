// UsageJournal: the durable, low-latency path for usage records. A request's record is appended
// to a local write-ahead file; a writer thread batches everything pending into one write and
// one fdatasync (group commit) and then runs each record's callback, so the server sends the
// final response bytes only after the record is on disk. A flusher thread copies committed
// records into the LedgerStore (one transaction per batch; duplicates by request_id are
// ignored) and deletes journal segments whose records all reached the store. Open() first
// replays every segment left by a previous run (crash, kill -9), so an acknowledged request's
// record is never lost and never counted twice. Frame format: docs/formats/ledger.md.
//
// Thread-safety: Append() may be called from any thread; callbacks run on the writer thread and
// must not block.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tracemark/base/status.h"
#include "tracemark/ledger/store.h"

namespace tracemark::ledger {

// Rotate to a new segment once the current one holds this many bytes.
inline constexpr uint64_t kJournalSegmentBytes = 4 << 20;
// A frame larger than this is treated as corruption on replay.
inline constexpr uint32_t kJournalMaxRecordBytes = 64 << 10;
// How often the flusher copies committed records into the store.
inline constexpr std::chrono::milliseconds kJournalFlushInterval{200};

class UsageJournal {
 public:
  using Callback = std::function<void(const Status&)>;

  // dir: a directory for segments (created if missing), e.g. "<db>.usage-journal".
  // Replays leftover segments into `store` (not owned; must outlive the journal) before
  // returning; `replayed` (optional) receives how many records were found.
  static Result<std::unique_ptr<UsageJournal>> Open(const std::string& dir, LedgerStore* store,
                                                    uint64_t* replayed = nullptr);
  ~UsageJournal();  // commits and flushes everything pending, then stops the threads
  UsageJournal(const UsageJournal&) = delete;
  UsageJournal& operator=(const UsageJournal&) = delete;

  // Queues the record; `done` runs once it is durable on disk (OK) or could not be (error).
  void Append(UsageRecord record, Callback done);
  // Blocks until everything appended so far is in the store (tests, shutdown).
  Status FlushToStore();

  uint64_t committed_records() const;
  uint64_t fsyncs() const;

 private:
  UsageJournal(std::string dir, LedgerStore* store) : dir_(std::move(dir)), store_(store) {}
  Status OpenSegment(uint64_t number);
  void WriterLoop();
  void FlusherLoop();
  Status FlushOnce();

  std::string dir_;
  LedgerStore* store_;

  std::mutex flush_mu_;  // one FlushOnce at a time (segment deletion relies on it)
  mutable std::mutex mu_;
  std::condition_variable writer_cv_;
  std::condition_variable flusher_cv_;
  std::condition_variable flushed_cv_;
  bool stop_ = false;
  bool rotate_requested_ = false;
  std::vector<std::pair<UsageRecord, Callback>> pending_;
  std::vector<UsageRecord> to_store_;
  std::vector<uint64_t> closed_segments_;
  uint64_t segment_ = 0;
  int fd_ = -1;
  uint64_t segment_bytes_ = 0;
  uint64_t committed_ = 0;
  uint64_t stored_ = 0;
  uint64_t fsyncs_ = 0;
  Status flush_error_;

  std::thread writer_;
  std::thread flusher_;
};

// Serializes / parses one record (the frame payload).
std::string EncodeUsageRecord(const UsageRecord& r);
Result<UsageRecord> DecodeUsageRecord(std::string_view payload);

}  // namespace tracemark::ledger
