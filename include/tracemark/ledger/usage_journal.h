// UsageJournal: the durable, low-latency path for usage records. A request's record is appended
// to a local write-ahead file; a writer thread batches everything pending into one write (plus
// one fdatasync with JournalSync::kCommit: group commit) and then runs each record's callback, so
// the server sends the final response bytes only after the record is written (durability below). A flusher thread copies committed
// records into the LedgerStore (one transaction per batch; duplicates by request_id are
// ignored) and deletes journal segments whose records all reached the store. Open() first
// replays every segment left by a previous run (crash, kill -9), so an acknowledged request's
// record is never lost and never counted twice. Frame format: docs/formats/ledger.md.
//
// Latency: the commit path is one write (and with kCommit one fdatasync) per batch and nothing else. Segments
// rotate only when full, and the next segment is created (directory entry synced) ahead of need
// by the flusher thread, so rotation is a descriptor swap: no file creation or directory fsync
// on the commit path, and never while holding the mutex that Append() takes.
//
// Durability (JournalSync): kCommit acknowledges a record after its batch's fdatasync, so it
// survives an OS crash or power loss. kInterval acknowledges it after the write() into the page
// cache, which survives kill -9 of the server (the requirement: the kernel still writes
// it out), and the flusher thread fdatasyncs the segment every kJournalFlushInterval, so a power
// loss or kernel crash can lose at most that window of acknowledged records (Redis' `appendfsync
// everysec` trade). fdatasync on this disk takes 0.1-2 ms and is the gateway's whole p99 tail
// with kCommit (bench/gateway/README.md).
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

// Segment size: the writer continues in the next segment when a batch would not fit.
inline constexpr uint64_t kJournalSegmentBytes = 4 << 20;
// A frame larger than this is treated as corruption on replay.
inline constexpr uint32_t kJournalMaxRecordBytes = 64 << 10;
// How often the flusher copies committed records into the store.
inline constexpr std::chrono::milliseconds kJournalFlushInterval{200};

enum class JournalSync {
  kCommit,    // fdatasync before each batch's callbacks (power-loss safe)
  kInterval,  // write() before callbacks, fdatasync every kJournalFlushInterval (kill -9 safe)
};

class UsageJournal {
 public:
  using Callback = std::function<void(const Status&)>;

  // dir: a directory for segments (created if missing), e.g. "<db>.usage-journal".
  // Replays leftover segments into `store` (not owned; must outlive the journal) before
  // returning; `replayed` (optional) receives how many records were found.
  static Result<std::unique_ptr<UsageJournal>> Open(const std::string& dir, LedgerStore* store,
                                                    uint64_t* replayed = nullptr,
                                                    JournalSync sync = JournalSync::kCommit);
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
  UsageJournal(std::string dir, LedgerStore* store, JournalSync sync)
      : dir_(std::move(dir)), store_(store), sync_(sync) {}
  Status OpenSegment(uint64_t number);
  // Writer thread: closes the current segment and continues in the next one (the spare if ready).
  Status Rotate();
  // Flusher thread: creates the next segment ahead of need.
  void PrepareSpare();
  void WriterLoop();
  void FlusherLoop();
  Status FlushOnce();
  // Flusher thread, kInterval: fdatasync of the current segment (through a dup of its descriptor,
  // taken under mu_, so a concurrent rotation cannot close it underneath).
  void SyncCurrentSegment();

  std::string dir_;
  LedgerStore* store_;
  JournalSync sync_;

  std::mutex flush_mu_;  // one FlushOnce at a time (segment deletion relies on it)
  mutable std::mutex mu_;
  std::condition_variable writer_cv_;
  std::condition_variable flusher_cv_;
  std::condition_variable flushed_cv_;
  std::condition_variable spare_cv_;
  bool stop_ = false;
  std::vector<std::pair<UsageRecord, Callback>> pending_;
  std::vector<UsageRecord> to_store_;
  std::vector<uint64_t> closed_segments_;
  uint64_t segment_ = 0;
  int fd_ = -1;
  uint64_t segment_bytes_ = 0;  // bytes of frames in the current segment: the next write offset
  int spare_fd_ = -1;           // segment_ + 1, created and its directory entry synced, or -1
  uint64_t spare_segment_ = 0;
  bool spare_busy_ = false;     // the flusher is creating the spare
  uint64_t appended_ = 0;  // records ever passed to Append (FlushToStore waits for all of them)
  uint64_t committed_ = 0;
  uint64_t failed_ = 0;  // records whose commit failed (their callbacks got the error)
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
