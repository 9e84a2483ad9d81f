// matmul_bench: weight bandwidth (GB/s) and GFLOP/s of MatMul at the shapes of the default
// models, decode-shaped (n = 1) and prefill-shaped (n = 64), on 1 and 2 threads.
//
// n = 8 is one step of 8 concurrent decode streams (continuous batching), weights cold.
//
// "cold" rotates through enough copies of the matrix (>= kColdBytes) that every call streams the
// weights from DRAM, as decode does when the whole model is read once per token; "hot" repeats one
// matrix (cache-resident for the small shapes). Weights are random blocks with sane fp16 scales:
// speed depends only on shape and type.
//
// --repeat N keeps the best of N measurements (the machine is shared; the best run is the one
// least disturbed by other processes).
//
//   matmul_bench [--threads 1,2] [--isa auto|scalar|avx2|avx512] [--filter SUBSTR] [--quick]
//                [--repeat N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "model/kernels_internal.h"
#include "tracemark/base/thread_pool.h"
#include "tracemark/model/matmul.h"
#include "tracemark/model/quant.h"

namespace tracemark {
namespace {

constexpr size_t kColdBytes = size_t{320} << 20;  // well above the 32 MiB L3
constexpr double kMinSeconds = 0.3;               // per measurement
constexpr double kMinSecondsQuick = 0.08;

struct Shape {
  const char* model;
  GgmlType type;
  int64_t k, m;
};

const Shape kShapes[] = {
    {"smollm2 q/o", GgmlType::kQ4_1, 576, 576},
    {"smollm2 gate/up", GgmlType::kQ4_1, 576, 1536},
    {"smollm2 down", GgmlType::kQ4_1, 1536, 576},
    {"smollm2 lm_head", GgmlType::kQ8_0, 576, 49152},
    {"gemma3 lm_head", GgmlType::kQ8_0, 640, 262144},
    {"gemma3 gate/up", GgmlType::kQ5_0, 640, 2048},
    {"gemma3 down", GgmlType::kQ4_K, 2048, 640},
    {"gemma3 down", GgmlType::kQ6_K, 2048, 640},
    {"gemma3 attn_v", GgmlType::kQ8_0, 640, 256},
    {"f16 576x1536", GgmlType::kF16, 576, 1536},
    {"q4_0 576x1536", GgmlType::kQ4_0, 576, 1536},
    {"q5_1 576x1536", GgmlType::kQ5_1, 576, 1536},
    {"q5_k 2048x640", GgmlType::kQ5_K, 2048, 640},
};

std::vector<uint8_t> RandomMatrix(GgmlType type, int64_t k, int64_t m, uint32_t seed) {
  const auto tr = *TypeTraits(type);
  const size_t row_bytes = static_cast<size_t>(k / tr.block_size * tr.type_size);
  std::vector<uint8_t> bytes(row_bytes * static_cast<size_t>(m));
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i + 8 <= bytes.size(); i += 8) {
    const uint64_t v = rng();
    std::memcpy(&bytes[i], &v, 8);
  }
  const uint16_t scale = Fp32ToFp16(0.01f);
  const uint16_t half_one = Fp32ToFp16(0.5f);
  const size_t n_blocks = bytes.size() / tr.type_size;
  for (size_t b = 0; b < n_blocks; ++b) {
    uint8_t* p = bytes.data() + b * tr.type_size;
    switch (type) {
      case GgmlType::kF16: std::memcpy(p, &half_one, 2); break;
      case GgmlType::kQ6_K: std::memcpy(p + 208, &scale, 2); break;
      case GgmlType::kQ4_1:
      case GgmlType::kQ5_1:
      case GgmlType::kQ4_K:
      case GgmlType::kQ5_K:
        std::memcpy(p, &scale, 2);
        std::memcpy(p + 2, &scale, 2);
        break;
      default: std::memcpy(p, &scale, 2); break;
    }
  }
  return bytes;
}

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Returns wall seconds per call; *cpu_per_call gets the calling thread's CPU seconds per call
// (on a loaded machine, the single-thread speed when this thread actually runs).
double TimeCalls(const std::vector<gguf::TensorInfo>& copies, const float* x, int64_t n, float* y,
                 ThreadPool& pool, MatMulScratch& scratch, double min_seconds, double* cpu_per_call) {
  // Warm-up: page in every copy and size the scratch.
  for (const auto& w : copies) MatMul(w, x, n, y, pool, scratch);
  const auto start = std::chrono::steady_clock::now();
  const double cpu_start = ThreadCpuSeconds();
  int64_t done = 0;
  double elapsed = 0;
  do {
    MatMul(copies[static_cast<size_t>(done) % copies.size()], x, n, y, pool, scratch);
    ++done;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } while (elapsed < min_seconds || done < static_cast<int64_t>(copies.size()));
  *cpu_per_call = (ThreadCpuSeconds() - cpu_start) / static_cast<double>(done);
  return elapsed / static_cast<double>(done);
}

int Main(int argc, char** argv) {
  std::vector<int> thread_counts = {1, 2};
  std::string filter;
  bool quick = false;
  int repeat = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) {
      thread_counts.clear();
      std::string s = argv[++i];
      size_t pos = 0;
      while (pos <= s.size()) {
        const size_t comma = s.find(',', pos);
        thread_counts.push_back(std::stoi(s.substr(pos, comma - pos)));
        if (comma == std::string::npos) break;
        pos = comma + 1;
      }
    } else if (a == "--isa" && i + 1 < argc) {
      const std::string v = argv[++i];
      const kernels::Isa isa = v == "scalar" ? kernels::Isa::kScalar
                               : v == "avx2" ? kernels::Isa::kAvx2
                                             : kernels::Isa::kAvx512;
      if (v != "auto" && !kernels::SetIsaOverride(isa)) {
        std::fprintf(stderr, "matmul_bench: this CPU does not support --isa %s\n", v.c_str());
        return 2;
      }
    } else if (a == "--filter" && i + 1 < argc) {
      filter = argv[++i];
    } else if (a == "--repeat" && i + 1 < argc) {
      repeat = std::max(1, std::stoi(argv[++i]));
    } else if (a == "--quick") {
      quick = true;
    } else {
      std::fprintf(stderr,
                   "usage: matmul_bench [--threads 1,2] [--isa auto|scalar|avx2|avx512] "
                   "[--filter SUBSTR] [--quick] [--repeat N]\n");
      return 2;
    }
  }
  const double min_seconds = quick ? kMinSecondsQuick : kMinSeconds;
  std::printf("isa: %s\n", kernels::IsaName(kernels::ActiveIsa()));
  for (int threads : thread_counts) {
    if (threads < 2) continue;
    // Dispatch cost: Run() of `threads` tasks of ~2 us of work each. On idle cores the ideal
    // is ~2 us; a serial run takes threads * 2 us.
    ThreadPool pool(threads);
    constexpr double kTaskMicros = 2.0;
    auto task = [&](int64_t, int) {
      const auto t0 = std::chrono::steady_clock::now();
      while (std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() <
             kTaskMicros) {
      }
    };
    constexpr int kDispatches = 20000;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < kDispatches; ++i) pool.Run(threads, std::ref(task));
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("pool: Run(%d tasks of %.0f us) on %d threads: %.2f us per Run (ideal %.0f, serial %.0f)\n",
                threads, kTaskMicros, threads, sec / kDispatches * 1e6, kTaskMicros,
                kTaskMicros * threads);
  }
  std::printf("wall = elapsed time; cpu = from the thread's CPU time (1 thread only: its speed\n"
              "while it actually runs, the useful figure on a machine shared with other jobs)\n");
  std::printf("%-16s %-5s %6s %7s %7s %3s | %-24s | %-24s | %-24s\n", "shape", "type", "k", "m",
              "MiB", "thr", "n=1 cold GB/s wall cpu", "n=1 hot GB/s wall cpu", "n=64 GFLOP/s wall cpu");
  std::printf("%59s | %-24s\n", "", "n=8 cold GFLOP/s wall cpu");
  for (const Shape& s : kShapes) {
    const std::string label = std::string(s.model) + " " + std::string(TypeTraits(s.type)->name);
    if (!filter.empty() && label.find(filter) == std::string::npos) continue;
    const auto tr = *TypeTraits(s.type);
    const size_t bytes = static_cast<size_t>(s.k / tr.block_size * tr.type_size * s.m);
    const size_t n_copies = std::max<size_t>(1, (kColdBytes + bytes - 1) / bytes);
    std::vector<std::vector<uint8_t>> storage;
    std::vector<gguf::TensorInfo> copies;
    for (size_t c = 0; c < n_copies; ++c) {
      storage.push_back(RandomMatrix(s.type, s.k, s.m, static_cast<uint32_t>(c + 1)));
    }
    for (auto& st : storage) {
      gguf::TensorInfo w;
      w.name = label;
      w.type = s.type;
      w.n_dims = 2;
      w.ne[0] = static_cast<uint64_t>(s.k);
      w.ne[1] = static_cast<uint64_t>(s.m);
      w.nbytes = st.size();
      w.data = st.data();
      copies.push_back(w);
    }
    constexpr int64_t kPrefill = 64;
    constexpr int64_t kDecodeBatch = 8;
    std::vector<float> x(static_cast<size_t>(kPrefill * s.k));
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (auto& v : x) v = normal(rng);
    std::vector<float> y(static_cast<size_t>(kPrefill * s.m));
    for (int threads : thread_counts) {
      ThreadPool pool(threads);
      MatMulScratch scratch;
      const std::vector<gguf::TensorInfo> one(copies.begin(), copies.begin() + 1);
      double t_cold = 1e30, t_hot = 1e30, t_pre = 1e30, c_cold = 1e30, c_hot = 1e30, c_pre = 1e30;
      double t_b8 = 1e30, c_b8 = 1e30;
      for (int rep = 0; rep < repeat; ++rep) {
        double c = 0;
        t_cold = std::min(t_cold, TimeCalls(copies, x.data(), 1, y.data(), pool, scratch, min_seconds, &c));
        c_cold = std::min(c_cold, c);
        t_hot = std::min(t_hot, TimeCalls(one, x.data(), 1, y.data(), pool, scratch, min_seconds, &c));
        c_hot = std::min(c_hot, c);
        t_pre = std::min(t_pre, TimeCalls(one, x.data(), kPrefill, y.data(), pool, scratch, min_seconds, &c));
        c_pre = std::min(c_pre, c);
        t_b8 = std::min(t_b8, TimeCalls(copies, x.data(), kDecodeBatch, y.data(), pool, scratch,
                                        min_seconds, &c));
        c_b8 = std::min(c_b8, c);
      }
      const double flops = 2.0 * static_cast<double>(s.k) * static_cast<double>(s.m);
      char cold[64], hot[64], pre[64], b8[64];
      const double gb = static_cast<double>(bytes) / 1e9;
      if (threads == 1) {
        std::snprintf(cold, sizeof(cold), "%5.1f %5.1f (%8.1f)", gb / t_cold, gb / c_cold, t_cold * 1e6);
        std::snprintf(hot, sizeof(hot), "%5.1f %5.1f (%8.1f)", gb / t_hot, gb / c_hot, t_hot * 1e6);
        std::snprintf(pre, sizeof(pre), "%6.1f %6.1f (%7.2f)", flops * kPrefill / t_pre / 1e9,
                      flops * kPrefill / c_pre / 1e9, t_pre * 1e3);
        std::snprintf(b8, sizeof(b8), "%6.1f %6.1f (%7.3f)", flops * kDecodeBatch / t_b8 / 1e9,
                      flops * kDecodeBatch / c_b8 / 1e9, t_b8 * 1e3);
      } else {
        // The caller's CPU time covers only its share of the work: no cpu column here.
        std::snprintf(cold, sizeof(cold), "%5.1f %5s (%8.1f)", gb / t_cold, "-", t_cold * 1e6);
        std::snprintf(hot, sizeof(hot), "%5.1f %5s (%8.1f)", gb / t_hot, "-", t_hot * 1e6);
        std::snprintf(pre, sizeof(pre), "%6.1f %6s (%7.2f)", flops * kPrefill / t_pre / 1e9, "-",
                      t_pre * 1e3);
        std::snprintf(b8, sizeof(b8), "%6.1f %6s (%7.3f)", flops * kDecodeBatch / t_b8 / 1e9, "-",
                      t_b8 * 1e3);
      }
      std::printf("%-16s %-5s %6lld %7lld %7.2f %3d | %-24s | %-24s | %-24s | %-24s\n", s.model,
                  std::string(tr.name).c_str(), static_cast<long long>(s.k),
                  static_cast<long long>(s.m), static_cast<double>(bytes) / (1 << 20), threads, cold,
                  hot, pre, b8);
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace tracemark

int main(int argc, char** argv) { return tracemark::Main(argc, argv); }
