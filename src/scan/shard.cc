// Shard plan (see shard.h).
#include "tracemark/scan/shard.h"

#include "fmt/format.h"

namespace tracemark::scan {

Result<ShardPlan> ShardPlan::Create(int rank, int world_size, size_t num_files) {
  if (world_size < 1 || world_size > kMaxWorldSize) {
    return InvalidArgument(fmt::format("--world-size must be in [1, {}], got {}", kMaxWorldSize,
                                       world_size));
  }
  if (rank < 0 || rank >= world_size) {
    return InvalidArgument(
        fmt::format("--rank must be in [0, {}) for world size {}, got {}", world_size, world_size, rank));
  }
  return ShardPlan(rank, world_size, num_files >= static_cast<size_t>(world_size));
}

std::string ShardName(int rank, int world_size) {
  return fmt::format("{:05d}-of-{:05d}", rank, world_size);
}

}  // namespace tracemark::scan
