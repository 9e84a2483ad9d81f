// The shard protocol: which rank scans which records, and the names of its output files.
//
// With F input files (sorted, see inputs.h) and world size W:
//   F >= W: by file. File f belongs to rank f mod W; a rank opens only its own files.
//   F <  W: by record block. Record r of file f belongs to rank (f + r / kRecordsPerBlock) mod W;
//           every rank reads every file but parses and scores only its own records.
// An error belongs to the rank owning the record it occurred at (stream errors: the record the
// reader was at), so merged outputs count every error once. A plain value; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "tracemark/base/status.h"

namespace tracemark::scan {

inline constexpr uint64_t kRecordsPerBlock = 4096;
inline constexpr int kMaxWorldSize = 99999;

class ShardPlan {
 public:
  static Result<ShardPlan> Create(int rank, int world_size, size_t num_files);
  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  bool by_file() const { return by_file_; }
  bool ReadsFile(size_t file) const { return !by_file_ || Owner(file, 0) == rank_; }
  bool Owns(size_t file, uint64_t record) const { return Owner(file, record) == rank_; }
  int Owner(size_t file, uint64_t record) const {
    if (by_file_) return static_cast<int>(file % static_cast<size_t>(world_size_));
    return static_cast<int>((file + record / kRecordsPerBlock) % static_cast<uint64_t>(world_size_));
  }

 private:
  ShardPlan(int rank, int world_size, bool by_file)
      : rank_(rank), world_size_(world_size), by_file_(by_file) {}
  int rank_;
  int world_size_;
  bool by_file_;
};

// "00003-of-00008": the stem of rank 3's files in a world of 8.
std::string ShardName(int rank, int world_size);

}  // namespace tracemark::scan
