// The parallel corpus scanner and the merge of shard outputs (docs/formats/scan.md).
//
// RunShard reads this rank's records in (file, record) order on the calling thread, hands
// batches to `threads` workers through a bounded queue (memory stays bounded), each worker with
// its own DocumentScorer, and writes under out_dir:
//   shards/<RRRRR-of-WWWWW>.results.jsonl   flagged documents, sorted by (file, record)
//   shards/<RRRRR-of-WWWWW>.tuples.bin      the shard's unique pool tuples, sorted (scorer.h)
//   shards/<RRRRR-of-WWWWW>.summary.json    counts, errors with locations, flagged per account
//   completions/<RRRRR-of-WWWWW>            the job description; written last
// every file through temp + fsync + rename. A rank whose completion marker holds the same job
// is skipped; one holding another job is an error. MergeShards checks that every rank of one
// world size is complete and writes results.jsonl and summary.json, which are byte-identical
// for any thread count and world size: the corpus-level test unions the shards' sorted tuple
// sets (each tuple once across the corpus) and sums scores in tuple order. Both functions may run concurrently only on different
// out_dir/rank pairs.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tracemark/base/status.h"
#include "tracemark/scan/record_reader.h"
#include "tracemark/scan/scorer.h"

namespace tracemark::scan {

inline constexpr int kMaxThreads = 256;
// Documents and text bytes per batch handed to a worker; batches in flight per worker.
inline constexpr size_t kBatchDocs = 64;
inline constexpr size_t kBatchBytes = 1u << 20;
inline constexpr size_t kQueueBatchesPerThread = 2;
// Largest shard results/summary file merge reads.
inline constexpr size_t kMaxShardFileBytes = size_t{16} << 30;
// Memory for pool tuples buffered by all workers of a shard; a full buffer is sorted,
// de-duplicated and spilled to a run file under the shard's folder (merged at the end).
inline constexpr size_t kDefaultPoolMemoryBytes = size_t{256} << 20;
inline constexpr size_t kMinPoolRunTuples = 256;
// Read buffer per sorted run or shard tuples file during a k-way merge.
inline constexpr size_t kPoolReadBufferTuples = size_t{1} << 14;
// Accounts tested by the corpus-level pool at merge (the most-flagged ones first).
inline constexpr size_t kMaxPooledAccounts = 4096;

struct ScanJob {
  std::vector<std::string> files;  // expanded and sorted (inputs.h)
  RecordOptions records;
  double threshold = 1e-6;  // flagged iff p_value < threshold
};

struct ShardOptions {
  int rank = 0;
  int world_size = 1;
  int threads = 1;
  std::string out_dir;
  bool progress = false;  // draw a progress bar on stderr (callers pass isatty(2))
  size_t pool_memory_bytes = kDefaultPoolMemoryBytes;
};

struct ScanCounts {
  uint64_t documents = 0;
  uint64_t bytes = 0;
  uint64_t tokens_scored = 0;
  uint64_t flagged = 0;
  uint64_t errors = 0;
  std::map<std::string, uint64_t> errors_by_kind;
  std::map<uint64_t, uint64_t> flagged_per_account;  // account id -> flagged documents
  uint64_t flagged_unattributed = 0;
  uint64_t pool_tuples = 0;  // unique pool tuples written by the shard (merge: the corpus's)
};

struct ShardReport {
  bool skipped = false;  // already complete
  ScanCounts counts;
};

// The canonical JSON text describing the job (files, reader options, threshold, scorer
// identity): compared with completion markers.
std::string JobDescription(const ScanJob& job, const ScorerFactory& scorers);

Result<ShardReport> RunShard(const ScanJob& job, const ShardOptions& options,
                             ScorerFactory& scorers);

struct MergeReport {
  int world_size = 0;
  ScanCounts counts;
};

// pools may be null: the summary then has no corpus-level p-values.
Result<MergeReport> MergeShards(const std::string& out_dir, PoolFactory* pools);

}  // namespace tracemark::scan
