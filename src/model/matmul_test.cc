#include "tracemark/model/matmul.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model/kernels_internal.h"
#include "tracemark/model/quant.h"

namespace tracemark {
namespace {

using kernels::Isa;

const GgmlType kAllTypes[] = {GgmlType::kF32,  GgmlType::kF16,  GgmlType::kBF16, GgmlType::kQ4_0,
                              GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kQ8_0,
                              GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K};

std::string Name(GgmlType t) { return std::string(TypeTraits(t)->name); }

// Restores automatic ISA selection when a test ends.
struct IsaGuard {
  ~IsaGuard() { kernels::ClearIsaOverride(); }
};

std::vector<Isa> AvailableIsas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (kernels::SetIsaOverride(isa)) out.push_back(isa);
  }
  kernels::ClearIsaOverride();
  return out;
}

// A weight matrix with random blocks: random code bytes and sane fp16 scales.
struct Weights {
  GgmlType type;
  int64_t k, m;
  std::vector<uint8_t> bytes;
  gguf::TensorInfo info;
};

uint16_t Half(float f) { return Fp32ToFp16(f); }

Weights MakeWeights(GgmlType type, int64_t k, int64_t m, uint32_t seed) {
  Weights w{type, k, m, {}, {}};
  const auto tr = *TypeTraits(type);
  const size_t row_bytes = static_cast<size_t>(k / tr.block_size * tr.type_size);
  w.bytes.resize(row_bytes * static_cast<size_t>(m));  // no slack: ASan catches overreads
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> scale(0.002f, 0.02f);
  for (auto& b : w.bytes) b = static_cast<uint8_t>(byte(rng));
  const int64_t n_blocks = static_cast<int64_t>(row_bytes / tr.type_size) * m;
  uint8_t* p = w.bytes.data();
  auto put16 = [](uint8_t* dst, uint16_t v) { std::memcpy(dst, &v, 2); };
  for (int64_t i = 0; i < n_blocks; ++i, p += tr.type_size) {
    switch (type) {
      case GgmlType::kF32: {
        const float v = normal(rng);
        std::memcpy(p, &v, 4);
        break;
      }
      case GgmlType::kF16: put16(p, Half(normal(rng))); break;
      case GgmlType::kBF16: put16(p, Fp32ToBf16(normal(rng))); break;
      case GgmlType::kQ4_0:
      case GgmlType::kQ5_0:
      case GgmlType::kQ8_0:
        put16(p, Half(scale(rng) * (byte(rng) & 1 ? 1.0f : -1.0f)));
        break;
      case GgmlType::kQ4_1:
      case GgmlType::kQ5_1:
        put16(p, Half(scale(rng)));
        put16(p + 2, Half(-8.0f * scale(rng)));
        break;
      case GgmlType::kQ4_K:
      case GgmlType::kQ5_K:
        put16(p, Half(scale(rng) * 0.1f));
        put16(p + 2, Half(scale(rng) * 0.1f));
        break;
      case GgmlType::kQ6_K: put16(p + 208, Half(scale(rng) * 0.05f)); break;
      default: break;
    }
  }
  w.info.name = "w";
  w.info.type = type;
  w.info.n_dims = 2;
  w.info.ne[0] = static_cast<uint64_t>(k);
  w.info.ne[1] = static_cast<uint64_t>(m);
  w.info.nbytes = row_bytes * static_cast<uint64_t>(m);
  w.info.data = w.bytes.data();
  return w;
}

std::vector<float> Dequantized(const Weights& w) {
  std::vector<float> out(static_cast<size_t>(w.k * w.m));
  for (int64_t r = 0; r < w.m; ++r) GetRow(w.info, r, out.data() + r * w.k);
  return out;
}

std::vector<float> RandomActs(int64_t n, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n * k));
  for (auto& v : x) v = normal(rng);
  // A few outliers, as real activations have.
  for (int64_t t = 0; t < n; ++t) x[static_cast<size_t>(t * k + (t * 37) % k)] = 12.0f;
  return x;
}

// Activations as the kernels see them: dequantized from the activation format.
std::vector<float> ActsAsQuantized(GgmlType type, const std::vector<float>& x, int64_t n, int64_t k) {
  std::vector<float> out(x.size());
  std::vector<int8_t> q(static_cast<size_t>(k));
  std::vector<float> d(static_cast<size_t>(k / 32)), s(static_cast<size_t>(k / 32));
  std::vector<int16_t> bs(static_cast<size_t>(k / 16));
  const kernels::ActFormat f = kernels::ActFormatFor(type);
  for (int64_t t = 0; t < n; ++t) {
    const float* xt = x.data() + t * k;
    float* ot = out.data() + t * k;
    if (f == kernels::ActFormat::kF32) {
      std::memcpy(ot, xt, static_cast<size_t>(k) * 4);
    } else if (f == kernels::ActFormat::kA32) {
      kernels::QuantizeA32Scalar(xt, k, q.data(), d.data(), s.data());
      for (int64_t j = 0; j < k; ++j) ot[j] = d[static_cast<size_t>(j / 32)] * q[static_cast<size_t>(j)];
    } else {
      kernels::QuantizeAKScalar(xt, k, q.data(), d.data(), bs.data());
      for (int64_t j = 0; j < k; ++j) ot[j] = d[static_cast<size_t>(j / 256)] * q[static_cast<size_t>(j)];
    }
  }
  return out;
}

std::vector<double> Reference(const std::vector<float>& wf, const std::vector<float>& x, int64_t n,
                              int64_t k, int64_t m) {
  std::vector<double> y(static_cast<size_t>(n * m));
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t r = 0; r < m; ++r) {
      double acc = 0;
      for (int64_t j = 0; j < k; ++j) {
        acc += static_cast<double>(wf[static_cast<size_t>(r * k + j)]) * x[static_cast<size_t>(t * k + j)];
      }
      y[static_cast<size_t>(t * m + r)] = acc;
    }
  }
  return y;
}

double Nmse(const std::vector<float>& y, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    num += (y[i] - ref[i]) * (y[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return num / den;
}

std::vector<float> RunMatMul(const Weights& w, const std::vector<float>& x, int64_t n, int threads) {
  ThreadPool pool(threads);
  MatMulScratch scratch;
  std::vector<float> y(static_cast<size_t>(n * w.m), -1.0f);
  MatMul(w.info, x.data(), n, y.data(), pool, scratch);
  return y;
}

int64_t RowLength(GgmlType t) {
  switch (kernels::ActFormatFor(t)) {
    case kernels::ActFormat::kF32: return 579;   // not a multiple of the vector width
    case kernels::ActFormat::kA32: return 608;   // 19 blocks: odd, exercises the 1-block tail
    case kernels::ActFormat::kAK: return 768;    // 3 super-blocks
  }
  return 0;
}

class MatMulTypeTest : public ::testing::TestWithParam<GgmlType> {};

// Every type on every ISA this CPU has: against a double reference with the exact activations
// (error of 8-bit activation quantization) and with the kernel's own quantized activations
// (must agree to float rounding: this pins the integer math and every scale).
TEST_P(MatMulTypeTest, MatchesDoubleReferenceOnEveryIsa) {
  const GgmlType type = GetParam();
  IsaGuard guard;
  const int64_t k = RowLength(type), m = 67, n = 6;
  const Weights w = MakeWeights(type, k, m, 1234u + static_cast<uint32_t>(type));
  const std::vector<float> wf = Dequantized(w);
  const std::vector<float> x = RandomActs(n, k, 99);
  const std::vector<double> ref = Reference(wf, x, n, k, m);
  const std::vector<double> ref_q = Reference(wf, ActsAsQuantized(type, x, n, k), n, k, m);
  // 8-bit activations: error variance per element ~ (amax / 127)^2 / 12 of its block. With
  // N(0,1) values and one outlier of 12 per row, that is ~1e-4 for blocks of 32 and up to ~7e-4
  // for the 256-blocks of K-quants (the outlier sets the step of its whole super-block).
  const kernels::ActFormat fmt = kernels::ActFormatFor(type);
  const bool quantized = fmt != kernels::ActFormat::kF32;
  const double tol = fmt == kernels::ActFormat::kF32 ? 1e-10 : fmt == kernels::ActFormat::kA32 ? 2e-4 : 1e-3;
  const double tol_q = quantized ? 1e-9 : 1e-10;
  for (Isa isa : AvailableIsas()) {
    ASSERT_TRUE(kernels::SetIsaOverride(isa));
    SCOPED_TRACE(std::string(kernels::IsaName(isa)) + " " + Name(type));
    const std::vector<float> y = RunMatMul(w, x, n, 1);
    EXPECT_LT(Nmse(y, ref), tol);
    EXPECT_LT(Nmse(y, ref_q), tol_q);
  }
}

// Bitwise: 1 vs 2 vs 3 threads, and a batched row equals the same token run alone.
TEST_P(MatMulTypeTest, IdenticalAcrossThreadsAndBatches) {
  const GgmlType type = GetParam();
  IsaGuard guard;
  const int64_t k = RowLength(type), m = 301, n = 7;
  const Weights w = MakeWeights(type, k, m, 77u + static_cast<uint32_t>(type));
  const std::vector<float> x = RandomActs(n, k, 5);
  for (Isa isa : AvailableIsas()) {
    ASSERT_TRUE(kernels::SetIsaOverride(isa));
    SCOPED_TRACE(std::string(kernels::IsaName(isa)) + " " + Name(type));
    const std::vector<float> y1 = RunMatMul(w, x, n, 1);
    EXPECT_EQ(y1, RunMatMul(w, x, n, 2));
    EXPECT_EQ(y1, RunMatMul(w, x, n, 3));
    for (int64_t t = 0; t < n; ++t) {
      const std::vector<float> xt(x.begin() + t * k, x.begin() + (t + 1) * k);
      const std::vector<float> yt = RunMatMul(w, xt, 1, 2);
      for (int64_t r = 0; r < m; ++r) {
        ASSERT_EQ(yt[static_cast<size_t>(r)], y1[static_cast<size_t>(t * m + r)]) << "t " << t << " r " << r;
      }
    }
  }
}

TEST_P(MatMulTypeTest, ZeroActivationsGiveZero) {
  const GgmlType type = GetParam();
  IsaGuard guard;
  const int64_t k = RowLength(type), m = 9;
  const Weights w = MakeWeights(type, k, m, 3);
  const std::vector<float> x(static_cast<size_t>(2 * k), 0.0f);
  for (Isa isa : AvailableIsas()) {
    ASSERT_TRUE(kernels::SetIsaOverride(isa));
    for (float v : RunMatMul(w, x, 2, 2)) EXPECT_EQ(v, 0.0f) << kernels::IsaName(isa) << " " << Name(type);
  }
}

TEST_P(MatMulTypeTest, GetRowMatchesDequantizeRow) {
  const GgmlType type = GetParam();
  const int64_t k = RowLength(type), m = 5;
  const Weights w = MakeWeights(type, k, m, 11);
  const auto tr = *TypeTraits(type);
  const size_t row_bytes = static_cast<size_t>(k / tr.block_size * tr.type_size);
  std::vector<float> a(static_cast<size_t>(k)), b(static_cast<size_t>(k));
  for (int64_t r = 0; r < m; ++r) {
    GetRow(w.info, r, a.data());
    DequantizeRow(type, w.bytes.data() + static_cast<size_t>(r) * row_bytes, b.data(), k);
    EXPECT_EQ(a, b);
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, MatMulTypeTest, ::testing::ValuesIn(kAllTypes),
                         [](const ::testing::TestParamInfo<GgmlType>& info) { return Name(info.param); });

TEST(MatMulTest, SimdQuantizersMatchScalarBitForBit) {
  const int64_t k = 1024;
  std::vector<float> x = RandomActs(1, k, 42);
  x[3] = 0.0f;
  x[100] = -12.5f;
  std::vector<int8_t> q1(k), q2(k);
  std::vector<float> d1(k / 32), d2(k / 32), s1(k / 32), s2(k / 32);
  kernels::QuantizeA32Scalar(x.data(), k, q1.data(), d1.data(), s1.data());
  kernels::QuantizeA32Avx2(x.data(), k, q2.data(), d2.data(), s2.data());
  EXPECT_EQ(q1, q2);
  EXPECT_EQ(d1, d2);
  EXPECT_EQ(s1, s2);
  std::vector<int16_t> b1(k / 16), b2(k / 16);
  kernels::QuantizeAKScalar(x.data(), k, q1.data(), d1.data(), b1.data());
  kernels::QuantizeAKAvx2(x.data(), k, q2.data(), d2.data(), b2.data());
  EXPECT_EQ(q1, q2);
  EXPECT_EQ(b1, b2);
  for (int i = 0; i < k / 256; ++i) EXPECT_EQ(d1[static_cast<size_t>(i)], d2[static_cast<size_t>(i)]);
  // Every group sum equals the sum of its codes.
  for (int g = 0; g < k / 16; ++g) {
    int sum = 0;
    for (int j = 0; j < 16; ++j) sum += q1[static_cast<size_t>(16 * g + j)];
    EXPECT_EQ(sum, b1[static_cast<size_t>(g)]);
  }
}

TEST(MatMulTest, ExtremeWeightCodesDoNotSaturate) {
  // Q8_0 with every weight -128 and activations at +-127 is the largest pair sum maddubs sees.
  IsaGuard guard;
  const int64_t k = 64, m = 2;
  Weights w = MakeWeights(GgmlType::kQ8_0, k, m, 1);
  for (int64_t b = 0; b < 4; ++b) {
    uint8_t* blk = w.bytes.data() + 34 * b;
    const uint16_t one = Half(1.0f);
    std::memcpy(blk, &one, 2);
    std::memset(blk + 2, 0x80, 32);
  }
  std::vector<float> x(static_cast<size_t>(k));
  for (int64_t j = 0; j < k; ++j) x[static_cast<size_t>(j)] = (j % 3 == 0) ? -1.0f : 1.0f;
  double expect = 0;
  for (int64_t j = 0; j < k; ++j) expect += -128.0 * x[static_cast<size_t>(j)];
  for (Isa isa : AvailableIsas()) {
    ASSERT_TRUE(kernels::SetIsaOverride(isa));
    const std::vector<float> y = RunMatMul(w, x, 1, 1);
    EXPECT_NEAR(y[0], expect, 1e-3) << kernels::IsaName(isa);
    EXPECT_NEAR(y[1], expect, 1e-3) << kernels::IsaName(isa);
  }
}

TEST(MatMulTest, ModelShapesLargeMatrix) {
  // The SmolLM2 lm_head shape class (Q8_0, 576 columns), many rows: exercises task splitting.
  IsaGuard guard;
  const int64_t k = 576, m = 4099;
  const Weights w = MakeWeights(GgmlType::kQ8_0, k, m, 8);
  const std::vector<float> x = RandomActs(1, k, 8);
  const std::vector<double> ref_q =
      Reference(Dequantized(w), ActsAsQuantized(GgmlType::kQ8_0, x, 1, k), 1, k, m);
  const std::vector<float> y2 = RunMatMul(w, x, 1, 2);
  EXPECT_LT(Nmse(y2, ref_q), 1e-9);
  EXPECT_EQ(y2, RunMatMul(w, x, 1, 1));
}

TEST(MatMulTest, SharedInputMatchesSeparateCalls) {
  // Mixed activation formats (A32, AK, F32) with one shared input, as q/k/v in Gemma files.
  IsaGuard guard;
  const int64_t k = 768;
  const Weights a = MakeWeights(GgmlType::kQ5_0, k, 97, 1);
  const Weights b = MakeWeights(GgmlType::kQ8_0, k, 33, 2);
  const Weights c = MakeWeights(GgmlType::kQ4_K, k, 50, 3);
  const Weights d = MakeWeights(GgmlType::kF16, k, 7, 4);
  const Weights* ws[] = {&a, &b, &c, &d};
  for (Isa isa : AvailableIsas()) {
    ASSERT_TRUE(kernels::SetIsaOverride(isa));
    for (int64_t n : {1, 5}) {
      const std::vector<float> x = RandomActs(n, k, 21);
      for (int threads : {1, 2}) {
        ThreadPool pool(threads);
        MatMulScratch scratch;
        std::vector<std::vector<float>> ys;
        std::vector<MatMulOutput> outs;
        for (const Weights* w : ws) ys.emplace_back(static_cast<size_t>(n * w->m), -1.0f);
        for (size_t i = 0; i < 4; ++i) outs.push_back({&ws[i]->info, ys[i].data()});
        MatMulShared(outs, x.data(), n, pool, scratch);
        for (size_t i = 0; i < 4; ++i) {
          EXPECT_EQ(ys[i], RunMatMul(*ws[i], x, n, 1))
              << kernels::IsaName(isa) << " n " << n << " threads " << threads << " output " << i;
        }
      }
    }
  }
}

// Real tensors of the default models (skipped when the files are absent): every distinct type
// in the file, first rows, all ISAs, against the double reference on the kernel's activations.
void CheckRealModel(const std::string& path) {
  auto file = gguf::GgufFile::Open(path);
  if (!file.ok()) GTEST_SKIP() << "model not available: " << path;
  IsaGuard guard;
  std::vector<GgmlType> seen;
  for (const gguf::TensorInfo& t : (*file)->tensors()) {
    if (t.n_dims != 2 || !MatMulSupports(t.type)) continue;
    if (std::find(seen.begin(), seen.end(), t.type) != seen.end()) continue;
    seen.push_back(t.type);
    ASSERT_TRUE(CheckMatMulWeight(t).ok()) << t.name;
    gguf::TensorInfo sub = t;
    sub.ne[1] = std::min<uint64_t>(t.ne[1], 64);
    const int64_t k = static_cast<int64_t>(t.ne[0]), m = static_cast<int64_t>(sub.ne[1]), n = 3;
    Weights view{t.type, k, m, {}, sub};
    const std::vector<float> wf = Dequantized(view);
    const std::vector<float> x = RandomActs(n, k, 3);
    const std::vector<double> ref_q = Reference(wf, ActsAsQuantized(t.type, x, n, k), n, k, m);
    for (Isa isa : AvailableIsas()) {
      ASSERT_TRUE(kernels::SetIsaOverride(isa));
      EXPECT_LT(Nmse(RunMatMul(view, x, n, 2), ref_q), 1e-9)
          << path << " " << t.name << " " << Name(t.type) << " " << kernels::IsaName(isa);
    }
  }
  EXPECT_FALSE(seen.empty());
}

TEST(MatMulRealModelTest, SmolLM2) {
  CheckRealModel(std::string(TM_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf");
}

TEST(MatMulRealModelTest, Gemma3) {
  CheckRealModel(std::string(TM_SOURCE_DIR) + "/models/gemma-3-270m-q4_k_m.gguf");
}

// The AVX-512 Q4_1 (16-block interleaved groups plus a pairwise tail) and Q8_0 (4-block quads)
// kernels take 8 tokens per tile: every row length class (tail of 0..15 blocks, rows shorter than
// one group, SmolLM2's 576 and 1536) with 9 tokens (a full tile and a single token), against the
// double reference of the quantized activations and bitwise against each token run alone.
TEST(MatMulTest, WideTileKernelsEveryRowLength) {
  IsaGuard guard;
  const int64_t m = 37, n = 9;
  for (GgmlType type : {GgmlType::kQ4_1, GgmlType::kQ8_0}) {
    for (int64_t k : {32, 64, 96, 160, 480, 512, 544, 576, 1024, 1056, 1536}) {
      const Weights w = MakeWeights(type, k, m, 500u + static_cast<uint32_t>(k));
      const std::vector<float> x = RandomActs(n, k, 600u + static_cast<uint32_t>(k));
      const std::vector<double> ref_q = Reference(Dequantized(w), ActsAsQuantized(type, x, n, k), n, k, m);
      for (Isa isa : AvailableIsas()) {
        ASSERT_TRUE(kernels::SetIsaOverride(isa));
        SCOPED_TRACE(std::string(kernels::IsaName(isa)) + " " + Name(type) + " k " + std::to_string(k));
        const std::vector<float> y = RunMatMul(w, x, n, 2);
        EXPECT_LT(Nmse(y, ref_q), 1e-9);
        for (int64_t t = 0; t < n; t += 4) {
          const std::vector<float> xt(x.begin() + t * k, x.begin() + (t + 1) * k);
          const std::vector<float> yt = RunMatMul(w, xt, 1, 1);
          for (int64_t r = 0; r < m; ++r) {
            ASSERT_EQ(yt[static_cast<size_t>(r)], y[static_cast<size_t>(t * m + r)]) << "t " << t << " r " << r;
          }
        }
      }
    }
  }
}

TEST(MatMulTest, CheckMatMulWeightRejectsBadTensors) {
  Weights w = MakeWeights(GgmlType::kQ4_0, 64, 2, 1);
  EXPECT_TRUE(CheckMatMulWeight(w.info).ok());
  gguf::TensorInfo bad = w.info;
  bad.ne[0] = 48;
  EXPECT_EQ(CheckMatMulWeight(bad).code(), StatusCode::kInvalidArgument);
  bad = w.info;
  bad.type = GgmlType::kQ2_K;
  EXPECT_EQ(CheckMatMulWeight(bad).code(), StatusCode::kUnimplemented);
  bad = w.info;
  bad.data = nullptr;
  EXPECT_EQ(CheckMatMulWeight(bad).code(), StatusCode::kInvalidArgument);
  for (GgmlType t : kAllTypes) EXPECT_TRUE(MatMulSupports(t)) << Name(t);
  EXPECT_FALSE(MatMulSupports(GgmlType::kQ3_K));
}

TEST(MatMulTest, IsaOverrideReportsUnsupported) {
  IsaGuard guard;
  // The build baseline is x86-64-v3, so scalar and AVX2 are always testable; AVX-512 where the
  // CPU has it (the project machines do).
  const std::vector<Isa> isas = AvailableIsas();
  ASSERT_GE(isas.size(), 2u);
  EXPECT_EQ(isas[0], Isa::kScalar);
  EXPECT_EQ(isas[1], Isa::kAvx2);
  std::string names;
  for (Isa isa : isas) names += std::string(kernels::IsaName(isa)) + " ";
  RecordProperty("isas", names);
  EXPECT_EQ(kernels::DetectIsa(), isas.back());
  if (std::getenv(kernels::kIsaEnvVar) != nullptr) {
    GTEST_SKIP() << kernels::kIsaEnvVar << " is set; ActiveIsa() follows it";
  }
  EXPECT_TRUE(kernels::SetIsaOverride(Isa::kScalar));
  EXPECT_EQ(kernels::ActiveIsa(), Isa::kScalar);
  kernels::ClearIsaOverride();
  EXPECT_EQ(kernels::ActiveIsa(), kernels::DetectIsa());
}

}  // namespace
}  // namespace tracemark
