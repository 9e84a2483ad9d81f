// Blocked attention of several query vectors that share one KV head over a range of cached
// positions (prefill tiles). Internal to the engine. The cache rows of the (sequence, kv head)
// are read through a KvView (fp16 or fp32, ring-indexed); scores are computed eight keys at a time
// against a transposed key block (no horizontal sums), values accumulated in registers.
// Pure function of its arguments plus caller scratch: thread-safe for disjoint outputs.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tracemark::attn {

// The cached rows of one (sequence, kv head): position lo_first + j lives in cell
// (first_cell + j) % cells. Exactly one of k16/k32 (and v16/v32) is set.
struct KvView {
  const uint16_t* k16 = nullptr;
  const uint16_t* v16 = nullptr;
  const float* k32 = nullptr;
  const float* v32 = nullptr;
  int32_t cells = 0;
  int32_t first_cell = 0;
  int32_t dk = 0;
  int32_t dv = 0;
};

inline constexpr int32_t kMaxBlockQueries = 64;

// Floats of scratch AttendBlock needs for nq queries over span keys.
size_t ScratchFloats(int32_t nq, int32_t span, int32_t dk, int32_t dv);

// For each query i < nq (nq <= kMaxBlockQueries): out[i] = softmax(scale * q[i].K[lo[i]..hi[i]]) V,
// with 0 <= lo[i] <= hi[i] < span. out[i] is overwritten (dv floats).
void AttendBlock(const KvView& kv, int32_t span, int32_t nq, const float* const* q, float* const* out,
                 const int32_t* lo, const int32_t* hi, float scale, float* scratch);

}  // namespace tracemark::attn
