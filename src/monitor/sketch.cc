#include "tracemark/monitor/sketch.h"

namespace tracemark::monitor {

MinHasher::MinHasher() {
  // Fixed odd multipliers and offsets derived from a constant seed: signatures are comparable
  // across processes and runs.
  uint64_t s = 0x243f6a8885a308d3ULL;
  for (int i = 0; i < kMinHashSize; ++i) {
    s = Mix64(s + 0x9e3779b97f4a7c15ULL);
    mul_[i] = s | 1;
    s = Mix64(s + 0x9e3779b97f4a7c15ULL);
    add_[i] = s;
  }
  Reset();
}

double MinHashSimilarity(const MinHashSignature& a, const MinHashSignature& b) {
  if (a[0] == UINT32_MAX || b[0] == UINT32_MAX) return 0;
  int eq = 0;
  for (int i = 0; i < kMinHashSize; ++i) eq += a[i] == b[i];
  return static_cast<double>(eq) / kMinHashSize;
}

}  // namespace tracemark::monitor
