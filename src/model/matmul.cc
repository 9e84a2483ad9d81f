// MatMul: activation quantization, ISA dispatch and the split of rows across the pool.
//
// Work split: rows are cut into chunks of about kTargetTaskBytes of weights (at least
// kTasksPerThread chunks per thread, so a slow or descheduled thread costs little at the end);
// each task runs all tokens over its chunk in tiles of TileTokens() (4 or 8), so a weight chunk
// is read from memory once and reused from cache by every tile. The mapping of (row, token) to
// instructions never depends on the thread count.
#include "tracemark/model/matmul.h"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <span>
#include <string>

#include "model/kernels_internal.h"
#include "tracemark/model/quant.h"

namespace tracemark {
namespace kernels {
namespace {

constexpr int kIsaNone = -1;
std::atomic<int> g_isa_override{kIsaNone};

bool CpuHas(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return true;
#if defined(__x86_64__)
    case Isa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("f16c");
    case Isa::kAvx512:
      return CpuHas(Isa::kAvx2) && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512dq");
#endif
    default: return false;
  }
}

}  // namespace

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "?";
}

Isa DetectIsa() {
  static const Isa detected = CpuHas(Isa::kAvx512) ? Isa::kAvx512
                              : CpuHas(Isa::kAvx2) ? Isa::kAvx2
                                                   : Isa::kScalar;
  return detected;
}

// The environment variable kIsaEnvVar (scalar|avx2|avx512) caps the ISA for a whole process:
// a field switch to rule the SIMD kernels in or out when chasing a numerical difference.
Isa DefaultIsa() {
  static const Isa isa = [] {
    const char* env = std::getenv(kIsaEnvVar);
    if (env == nullptr) return DetectIsa();
    const std::string v(env);
    for (Isa cand : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
      if (v == IsaName(cand) && CpuHas(cand)) return cand;
    }
    return DetectIsa();
  }();
  return isa;
}

Isa ActiveIsa() {
  const int o = g_isa_override.load(std::memory_order_relaxed);
  return o == kIsaNone ? DefaultIsa() : static_cast<Isa>(o);
}

bool SetIsaOverride(Isa isa) {
  if (!CpuHas(isa)) return false;
  g_isa_override.store(static_cast<int>(isa), std::memory_order_relaxed);
  return true;
}

void ClearIsaOverride() { g_isa_override.store(kIsaNone, std::memory_order_relaxed); }

ActFormat ActFormatFor(GgmlType type) {
  switch (type) {
    case GgmlType::kQ4_0:
    case GgmlType::kQ4_1:
    case GgmlType::kQ5_0:
    case GgmlType::kQ5_1:
    case GgmlType::kQ8_0: return ActFormat::kA32;
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K:
    case GgmlType::kQ6_K: return ActFormat::kAK;
    default: return ActFormat::kF32;
  }
}

int TileTokens(Isa isa, GgmlType type) {
  return isa == Isa::kAvx512 && (type == GgmlType::kQ4_1 || type == GgmlType::kQ8_0)
             ? kMaxWideTileTokens
             : kMaxTileTokens;
}

bool UsesInterleavedA32(Isa isa) { return isa == Isa::kAvx512; }

}  // namespace kernels

namespace {

using kernels::ActFormat;
using kernels::ActRow;
using kernels::Isa;
using kernels::RowsKernel;

// About this many weight bytes per task: large enough that the per-task overhead (a CAS and an
// indirect call, ~100 ns) is < 1%, small enough for good balance at the end of a call.
constexpr int64_t kTargetTaskBytes = 128 << 10;
constexpr int64_t kTasksPerThread = 4;
// Token rows quantized per pool task when n > 1.
constexpr int64_t kQuantRowsPerTask = 8;
constexpr size_t kScratchAlign = 64;

size_t AlignUp(size_t v) { return (v + kScratchAlign - 1) & ~(kScratchAlign - 1); }

RowsKernel PickKernel(GgmlType type) {
  RowsKernel k = nullptr;
  switch (kernels::ActiveIsa()) {
    case Isa::kAvx512: k = kernels::Avx512Kernel(type); break;
    case Isa::kAvx2: k = kernels::Avx2Kernel(type); break;
    case Isa::kScalar: break;
  }
  return k != nullptr ? k : kernels::ScalarKernel(type);
}

// Bytes of the interleaved and quad copies of an A32 row (kernels_internal.h): whole groups of
// codes, one int32 sum per block, then whole quads.
size_t InterleavedBytes(int64_t k) {
  const size_t nb = static_cast<size_t>(k) / 32;
  const size_t groups = (nb + kernels::kInterleaveBlocks - 1) / kernels::kInterleaveBlocks;
  const size_t quads = (nb + kernels::kQuadBlocks - 1) / kernels::kQuadBlocks;
  return groups * kernels::kInterleaveGroupBytes + AlignUp(nb * sizeof(int32_t)) +
         quads * kernels::kQuadBytes;
}

// Bytes of scratch per token row for format f and row length k.
size_t ActBytesPerRow(ActFormat f, int64_t k) {
  const size_t uk = static_cast<size_t>(k);
  switch (f) {
    case ActFormat::kA32:
      return AlignUp(uk) + 2 * AlignUp(uk / 32 * sizeof(float)) +
             (kernels::UsesInterleavedA32(kernels::ActiveIsa()) ? InterleavedBytes(k) : 0);
    case ActFormat::kAK:
      return AlignUp(uk) + AlignUp(uk / kQK_K * sizeof(float)) + AlignUp(uk / 16 * sizeof(int16_t));
    case ActFormat::kF32: return 0;
  }
  return 0;
}

void QuantizeRow(ActFormat f, const float* x, int64_t k, uint8_t* base, ActRow* row) {
  const size_t uk = static_cast<size_t>(k);
  auto* q = reinterpret_cast<int8_t*>(base);
  const bool simd = kernels::ActiveIsa() != Isa::kScalar;
  row->x = x;
  row->q = q;
  if (f == ActFormat::kA32) {
    auto* d = reinterpret_cast<float*>(base + AlignUp(uk));
    auto* s = reinterpret_cast<float*>(base + AlignUp(uk) + AlignUp(uk / 32 * sizeof(float)));
    if (simd) {
      kernels::QuantizeA32Avx2(x, k, q, d, s);
    } else {
      kernels::QuantizeA32Scalar(x, k, q, d, s);
    }
    row->d = d;
    row->s = s;
    if (kernels::UsesInterleavedA32(kernels::ActiveIsa())) {
      uint8_t* ib = base + AlignUp(uk) + 2 * AlignUp(uk / 32 * sizeof(float));
      const size_t groups = (uk / 32 + kernels::kInterleaveBlocks - 1) / kernels::kInterleaveBlocks;
      auto* qi = reinterpret_cast<int8_t*>(ib);
      auto* qsum = reinterpret_cast<int32_t*>(ib + groups * kernels::kInterleaveGroupBytes);
      kernels::InterleaveA32(q, k, qi, qsum);
      uint8_t* quad = ib + groups * kernels::kInterleaveGroupBytes + AlignUp(uk / 32 * sizeof(int32_t));
      kernels::QuadA32(q, d, qsum, k, quad);
      row->qi = qi;
      row->qsum = qsum;
      row->quad = quad;
    }
  } else {
    auto* d = reinterpret_cast<float*>(base + AlignUp(uk));
    auto* bs = reinterpret_cast<int16_t*>(base + AlignUp(uk) + AlignUp(uk / kQK_K * sizeof(float)));
    if (simd) {
      kernels::QuantizeAKAvx2(x, k, q, d, bs);
    } else {
      kernels::QuantizeAKScalar(x, k, q, d, bs);
    }
    row->d = d;
    row->bsums = bs;
  }
}

uint64_t RowBytesOf(const gguf::TensorInfo& w) {
  const auto traits = TypeTraits(w.type);
  return w.ne[0] / traits->block_size * traits->type_size;
}

}  // namespace

bool MatMulSupports(GgmlType type) { return kernels::ScalarKernel(type) != nullptr; }

Status CheckMatMulWeight(const gguf::TensorInfo& w) {
  const auto traits = TypeTraits(w.type);
  if (!traits || !MatMulSupports(w.type)) {
    return Unimplemented("matmul: tensor '" + w.name + "' has type " +
                         (traits ? std::string(traits->name) : std::to_string(static_cast<uint32_t>(w.type))) +
                         ", which the kernels do not support (supported: F32, F16, BF16, Q4_0, "
                         "Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)");
  }
  if (w.ne[0] == 0 || w.ne[0] % traits->block_size != 0) {
    return InvalidArgument("matmul: tensor '" + w.name + "' row length " + std::to_string(w.ne[0]) +
                           " is not a positive multiple of the " + std::string(traits->name) +
                           " block size " + std::to_string(traits->block_size));
  }
  if (w.data == nullptr && w.NumElements() != 0) {
    return InvalidArgument("matmul: tensor '" + w.name + "' has no data");
  }
  return Status::Ok();
}

void MatMulShared(std::span<const MatMulOutput> outs, const float* x, int64_t n, ThreadPool& pool,
                  MatMulScratch& scratch) {
  assert(outs.size() <= kMaxSharedOutputs);
  if (n <= 0 || outs.empty()) return;
  const int64_t k = static_cast<int64_t>(outs[0].w->ne[0]);
  const size_t n_out = std::min(outs.size(), kMaxSharedOutputs);

  // One set of token descriptors per activation format; quantized storage only for the formats
  // some output needs.
  constexpr int kFormats = 3;  // ActFormat values
  bool need[kFormats] = {false, false, false};
  for (size_t i = 0; i < n_out; ++i) {
    assert(CheckMatMulWeight(*outs[i].w).ok());
    assert(static_cast<int64_t>(outs[i].w->ne[0]) == k);
    need[static_cast<int>(kernels::ActFormatFor(outs[i].w->type))] = true;
  }
  const size_t desc_bytes = AlignUp(static_cast<size_t>(n) * sizeof(ActRow));
  size_t per_row[kFormats], offset[kFormats], total = 0;
  for (int f = 0; f < kFormats; ++f) {
    per_row[f] = need[f] ? ActBytesPerRow(static_cast<ActFormat>(f), k) : 0;
    offset[f] = total;
    total += need[f] ? desc_bytes + static_cast<size_t>(n) * per_row[f] : 0;
  }
  if (scratch.buf.size() < total + kScratchAlign) scratch.buf.resize(total + kScratchAlign);
  const auto addr = reinterpret_cast<uintptr_t>(scratch.buf.data());
  uint8_t* base = scratch.buf.data() + (AlignUp(addr) - addr);
  ActRow* acts[kFormats] = {nullptr, nullptr, nullptr};
  for (int f = 0; f < kFormats; ++f) {
    if (need[f]) acts[f] = reinterpret_cast<ActRow*>(base + offset[f]);
  }
  auto prepare = [&](int f, int64_t t) {
    ActRow& row = acts[f][t];
    row = ActRow{};
    if (static_cast<ActFormat>(f) == ActFormat::kF32) {
      row.x = x + t * k;
    } else {
      QuantizeRow(static_cast<ActFormat>(f), x + t * k, k,
                  base + offset[f] + desc_bytes + static_cast<size_t>(t) * per_row[f], &row);
    }
  };
  const int threads = pool.size();
  if (n == 1 || threads == 1) {
    for (int f = 0; f < kFormats; ++f) {
      if (!need[f]) continue;
      for (int64_t t = 0; t < n; ++t) prepare(f, t);
    }
  } else {
    const int64_t chunks = (n + kQuantRowsPerTask - 1) / kQuantRowsPerTask;
    auto quantize_task = [&](int64_t task, int) {
      const int f = static_cast<int>(task / chunks);
      if (!need[f]) return;
      const int64_t t0 = (task % chunks) * kQuantRowsPerTask;
      const int64_t t1 = std::min(n, t0 + kQuantRowsPerTask);
      for (int64_t t = t0; t < t1; ++t) prepare(f, t);
    };
    // std::ref keeps the std::function in its small buffer: no allocation per call.
    pool.Run(chunks * kFormats, std::ref(quantize_task));
  }

  // Row chunks of every output, numbered consecutively.
  struct Plan {
    const uint8_t* data;
    size_t row_bytes;
    int64_t m;
    int64_t rows_per_task;
    int64_t first_task;
    int tile;
    RowsKernel kernel;
    const ActRow* acts;
    float* y;
  };
  Plan plans[kMaxSharedOutputs];
  int64_t n_tasks = 0;
  for (size_t i = 0; i < n_out; ++i) {
    const gguf::TensorInfo& w = *outs[i].w;
    Plan& p = plans[i];
    p.data = w.data;
    p.row_bytes = static_cast<size_t>(RowBytesOf(w));
    p.m = static_cast<int64_t>(w.ne[1] * w.ne[2] * w.ne[3]);
    p.kernel = PickKernel(w.type);
    p.tile = kernels::TileTokens(kernels::ActiveIsa(), w.type);
    p.acts = acts[static_cast<int>(kernels::ActFormatFor(w.type))];
    p.y = outs[i].y;
    if (threads == 1) {
      p.rows_per_task = std::max<int64_t>(1, p.m);
    } else {
      // Rows per task from the byte target, capped so every thread gets several tasks.
      const int64_t by_bytes =
          std::max<int64_t>(1, kTargetTaskBytes / static_cast<int64_t>(p.row_bytes));
      const int64_t balance_cap =
          (p.m + threads * kTasksPerThread - 1) / (threads * kTasksPerThread);
      p.rows_per_task = std::max<int64_t>(1, std::min(by_bytes, balance_cap));
    }
    p.first_task = n_tasks;
    n_tasks += (p.m + p.rows_per_task - 1) / p.rows_per_task;
  }

  auto run_task = [&](int64_t task, int) {
    size_t i = 0;
    while (i + 1 < n_out && task >= plans[i + 1].first_task) ++i;
    const Plan& p = plans[i];
    const int64_t r0 = (task - p.first_task) * p.rows_per_task;
    const int64_t r1 = std::min(p.m, r0 + p.rows_per_task);
    const uint8_t* wr = p.data + static_cast<size_t>(r0) * p.row_bytes;
    for (int64_t t = 0; t < n; t += p.tile) {
      const int nt = static_cast<int>(std::min<int64_t>(p.tile, n - t));
      p.kernel(wr, p.row_bytes, r1 - r0, k, p.acts + t, nt, p.y + t * p.m + r0, p.m);
    }
  };
  if (threads == 1) {
    for (int64_t task = 0; task < n_tasks; ++task) run_task(task, 0);
  } else {
    pool.Run(n_tasks, std::ref(run_task));
  }
}

void MatMul(const gguf::TensorInfo& w, const float* x, int64_t n, float* y, ThreadPool& pool,
            MatMulScratch& scratch) {
  const MatMulOutput out{&w, y};
  MatMulShared(std::span<const MatMulOutput>(&out, 1), x, n, pool, scratch);
}

void GetRow(const gguf::TensorInfo& w, int64_t row, float* dst) {
  assert(CheckMatMulWeight(w).ok());
  assert(row >= 0 && static_cast<uint64_t>(row) < w.ne[1] * w.ne[2] * w.ne[3]);
  const uint64_t row_bytes = RowBytesOf(w);
  DequantizeRow(w.type, w.data + static_cast<size_t>(row) * row_bytes, dst,
                static_cast<int64_t>(w.ne[0]));
}

}  // namespace tracemark
