// Forward parity of the engine against Hugging Face transformers (fp32) on tiny random llama,
// qwen2 and gemma3 models (tools/gen_forward_vectors.py writes tests/data/forward/), for one
// prefill, token-by-token decode through the KV cache, and several sequences batched together.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tracemark/base/file.h"
#include "tracemark/model/context.h"
#include "tracemark/model/model.h"

// Counts heap allocations of the whole test binary (Decode must not allocate per token).
static std::atomic<int64_t> g_allocations{0};
void* operator new(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
// The replaced operator new allocates with malloc, so free is the matching release.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace tracemark {
namespace {

constexpr double kMaxNmse = 1e-6;
constexpr double kMaxNmseF16Kv = 1e-4;

struct Vectors {
  std::vector<std::vector<int32_t>> seqs;
  std::vector<std::vector<float>> logits;  // per sequence, [len * vocab]
  int32_t vocab = 0;
};

std::string DataPath(const std::string& name) {
  return std::string(TM_SOURCE_DIR) + "/tests/data/forward/" + name;
}

Vectors LoadVectors(const std::string& arch) {
  Vectors v;
  std::ifstream js(DataPath(arch + ".json"));
  EXPECT_TRUE(js.good()) << arch;
  nlohmann::json j = nlohmann::json::parse(js);
  v.vocab = j["vocab"].get<int32_t>();
  std::ifstream lf(DataPath(arch + ".logits.f32"), std::ios::binary);
  for (const auto& s : j["sequences"]) {
    v.seqs.push_back(s.get<std::vector<int32_t>>());
    std::vector<float> l(v.seqs.back().size() * v.vocab);
    lf.read(reinterpret_cast<char*>(l.data()), static_cast<std::streamsize>(l.size() * sizeof(float)));
    EXPECT_TRUE(lf.good());
    v.logits.push_back(std::move(l));
  }
  return v;
}

struct Diff {
  double err = 0, ref = 0;
  int argmax_mismatch = 0;
  double Nmse() const { return err / ref; }
  void Add(const float* got, const float* want, int32_t n) {
    int32_t ag = 0, aw = 0;
    for (int32_t i = 0; i < n; ++i) {
      const double d = double{got[i]} - want[i];
      err += d * d;
      ref += double{want[i]} * want[i];
      if (got[i] > got[ag]) ag = i;
      if (want[i] > want[aw]) aw = i;
    }
    argmax_mismatch += ag != aw;
  }
};

std::unique_ptr<Model> LoadTiny(const std::string& arch) {
  auto m = Model::Load(DataPath(arch + ".tiny-gguf"));
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? std::move(m).value() : nullptr;
}

class Parity : public ::testing::TestWithParam<std::string> {};

void Prefill(const std::string& arch, KvType kv, double max_nmse) {
  auto model = LoadTiny(arch);
  ASSERT_NE(model, nullptr);
  Vectors v = LoadVectors(arch);
  ASSERT_EQ(model->config().n_vocab, v.vocab);
  ContextOptions opt;
  opt.n_ctx = 64;
  opt.max_batch = 64;
  opt.max_outputs = 64;
  opt.kv_type = kv;
  auto ctx = Context::Create(*model, opt);
  ASSERT_TRUE(ctx.ok()) << ctx.status().ToString();
  for (size_t s = 0; s < v.seqs.size(); ++s) {
    (*ctx)->ClearSeq(0);
    Batch b;
    for (size_t i = 0; i < v.seqs[s].size(); ++i) b.Add(v.seqs[s][i], static_cast<int32_t>(i), 0, true);
    ASSERT_TRUE((*ctx)->Decode(b).ok());
    ASSERT_EQ((*ctx)->n_outputs(), b.size());
    Diff d;
    for (int32_t i = 0; i < b.size(); ++i) {
      d.Add((*ctx)->Logits(i).data(), v.logits[s].data() + static_cast<size_t>(i) * v.vocab, v.vocab);
    }
    std::printf("[%s] prefill seq %zu (%s KV): NMSE %.3g\n", arch.c_str(), s, kv == KvType::kF16 ? "f16" : "f32",
                d.Nmse());
    EXPECT_LE(d.Nmse(), max_nmse) << arch << " seq " << s;
    if (kv == KvType::kF32) {
      EXPECT_EQ(d.argmax_mismatch, 0) << arch << " seq " << s;
    }
  }
}

TEST_P(Parity, PrefillAllLogitsF32Cache) { Prefill(GetParam(), KvType::kF32, kMaxNmse); }
TEST_P(Parity, PrefillAllLogitsF16Cache) { Prefill(GetParam(), KvType::kF16, kMaxNmseF16Kv); }

// One token per Decode through the cache. max_batch 4 makes Gemma's sliding-window ring
// (window + max_batch cells) wrap several times over 48 positions.
void TokenByToken(const std::string& arch, KvType kv, double max_nmse, bool check_argmax) {
  auto model = LoadTiny(arch);
  ASSERT_NE(model, nullptr);
  Vectors v = LoadVectors(arch);
  ContextOptions opt;
  opt.n_ctx = 64;
  opt.max_batch = 4;
  opt.kv_type = kv;
  auto ctx = Context::Create(*model, opt);
  ASSERT_TRUE(ctx.ok());
  Diff d;
  const auto& seq = v.seqs[0];
  Batch b;
  for (size_t i = 0; i < seq.size(); ++i) {
    b.Clear();
    b.Add(seq[i], static_cast<int32_t>(i), 0, true);
    ASSERT_TRUE((*ctx)->Decode(b).ok());
    d.Add((*ctx)->Logits(0).data(), v.logits[0].data() + i * v.vocab, v.vocab);
  }
  std::printf("[%s] token-by-token (%s KV): NMSE %.3g, argmax mismatches %d\n", arch.c_str(),
              kv == KvType::kF16 ? "f16" : "f32", d.Nmse(), d.argmax_mismatch);
  EXPECT_LE(d.Nmse(), max_nmse);
  if (check_argmax) {
    EXPECT_EQ(d.argmax_mismatch, 0);
  }
}

TEST_P(Parity, TokenByTokenF32Cache) { TokenByToken(GetParam(), KvType::kF32, kMaxNmse, true); }
TEST_P(Parity, TokenByTokenF16Cache) { TokenByToken(GetParam(), KvType::kF16, kMaxNmseF16Kv, false); }

// Three sequences in one context: first a mixed batch (prefill chunks of two sequences), then
// one token of every unfinished sequence per Decode. Every logit row must match the reference.
TEST_P(Parity, BatchedSequences) {
  const std::string arch = GetParam();
  auto model = LoadTiny(arch);
  ASSERT_NE(model, nullptr);
  Vectors v = LoadVectors(arch);
  ContextOptions opt;
  opt.n_ctx = 64;
  opt.n_seq = 3;
  opt.max_batch = 48;
  opt.max_outputs = 16;
  opt.kv_type = KvType::kF32;
  auto ctx_r = Context::Create(*model, opt);
  ASSERT_TRUE(ctx_r.ok());
  Context& ctx = **ctx_r;
  Diff d;
  Batch b;
  // Prefill 5 tokens of seq 0 and 7 of seq 1 together, all rows with logits.
  const int32_t pre[3] = {5, 7, 0};
  for (int32_t s = 0; s < 2; ++s) {
    for (int32_t i = 0; i < pre[s]; ++i) b.Add(v.seqs[s][i], i, s, true);
  }
  ASSERT_TRUE(ctx.Decode(b).ok());
  for (int32_t o = 0; o < ctx.n_outputs(); ++o) {
    const int32_t row = ctx.output_row(o);
    d.Add(ctx.Logits(o).data(), v.logits[b.seq[row]].data() + static_cast<size_t>(b.pos[row]) * v.vocab,
          v.vocab);
  }
  int32_t next[3] = {pre[0], pre[1], pre[2]};
  while (true) {
    b.Clear();
    for (int32_t s = 0; s < 3; ++s) {
      if (next[s] < static_cast<int32_t>(v.seqs[s].size())) b.Add(v.seqs[s][next[s]], next[s], s, true);
    }
    if (b.size() == 0) break;
    ASSERT_TRUE(ctx.Decode(b).ok());
    ASSERT_EQ(ctx.n_outputs(), b.size());
    for (int32_t r = 0; r < b.size(); ++r) {
      d.Add(ctx.Logits(r).data(), v.logits[b.seq[r]].data() + static_cast<size_t>(b.pos[r]) * v.vocab,
            v.vocab);
      ++next[b.seq[r]];
    }
  }
  std::printf("[%s] batched 3 sequences: NMSE %.3g\n", arch.c_str(), d.Nmse());
  EXPECT_LE(d.Nmse(), kMaxNmse);
  EXPECT_EQ(d.argmax_mismatch, 0);

  // Slot reuse: clear sequence 1 and run it again as one prefill; last logits must match.
  ctx.ClearSeq(1);
  b.Clear();
  for (size_t i = 0; i < v.seqs[1].size(); ++i) b.Add(v.seqs[1][i], static_cast<int32_t>(i), 1, false);
  b.want_logits.clear();  // default: the last row of each sequence
  ASSERT_TRUE(ctx.Decode(b).ok());
  ASSERT_EQ(ctx.n_outputs(), 1);  // default: last row of the sequence
  Diff last;
  last.Add(ctx.Logits(0).data(), v.logits[1].data() + (v.seqs[1].size() - 1) * v.vocab, v.vocab);
  EXPECT_LE(last.Nmse(), kMaxNmse);
}

// Truncating a sequence and decoding its tail again gives the reference logits; a sliding-window
// ring refuses truncation further back than it still holds.
TEST_P(Parity, TruncateAndRedecode) {
  const std::string arch = GetParam();
  auto model = LoadTiny(arch);
  ASSERT_NE(model, nullptr);
  Vectors v = LoadVectors(arch);
  ContextOptions opt;
  opt.n_ctx = 64;
  opt.max_batch = 4;
  opt.kv_type = KvType::kF32;
  auto ctx = Context::Create(*model, opt);
  ASSERT_TRUE(ctx.ok());
  const auto& seq = v.seqs[0];
  const int32_t len = static_cast<int32_t>(seq.size());
  Batch b;
  auto run = [&](int32_t from) {
    Diff d;
    for (int32_t i = from; i < len; ++i) {
      b.Clear();
      b.Add(seq[i], i, 0, true);
      EXPECT_TRUE((*ctx)->Decode(b).ok());
      d.Add((*ctx)->Logits(0).data(), v.logits[0].data() + static_cast<size_t>(i) * v.vocab, v.vocab);
    }
    return d;
  };
  run(0);
  const bool ring = model->config().sliding_window > 0;  // gemma3: 8 + 4 cells per sliding layer
  if (ring) {
    EXPECT_EQ((*ctx)->TruncateSeq(0, 20).code(), StatusCode::kUnimplemented);
  }
  const int32_t keep = ring ? len - 3 : 20;
  ASSERT_TRUE((*ctx)->TruncateSeq(0, keep).ok());
  EXPECT_EQ((*ctx)->seq_length(0), keep);
  Diff d = run(keep);
  EXPECT_LE(d.Nmse(), kMaxNmse) << arch;
  EXPECT_EQ(d.argmax_mismatch, 0) << arch;
}

INSTANTIATE_TEST_SUITE_P(Archs, Parity, ::testing::Values("llama", "qwen2", "gemma3"));

TEST(EngineConfig, ReadsArchitectureConventions) {
  auto g = LoadTiny("gemma3");
  ASSERT_NE(g, nullptr);
  const ModelConfig& c = g->config();
  EXPECT_EQ(c.arch, Arch::kGemma3);
  EXPECT_EQ(c.rope_style, RopeStyle::kNeox);
  EXPECT_EQ(c.head_dim_k, 32);
  EXPECT_EQ(c.sliding_window, 8);
  EXPECT_EQ(c.layer_is_swa, (std::vector<uint8_t>{1, 1, 0, 1}));
  EXPECT_FLOAT_EQ(c.rope_base_swa, 10000.0f);
  EXPECT_FLOAT_EQ(c.rope_base, 1000000.0f);
  EXPECT_FLOAT_EQ(c.embed_scale, 8.0f);
  EXPECT_EQ(g->weights().output, g->weights().token_embd);  // tied
  auto l = LoadTiny("llama");
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->config().rope_style, RopeStyle::kNorm);
  EXPECT_NE(l->weights().rope_freqs, nullptr);
  EXPECT_NE(l->weights().output, l->weights().token_embd);  // untied
  auto q = LoadTiny("qwen2");
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(q->config().has_qkv_bias);
  EXPECT_NE(q->weights().layers[0].bq, nullptr);
}

// Writes a copy of the llama model with one byte string replaced (same length).
std::string PatchedCopy(const std::string& from, const std::string& to, const std::string& out_name) {
  auto bytes = ReadFile(DataPath("llama.tiny-gguf"), 16 << 20);
  EXPECT_TRUE(bytes.ok());
  std::string s = *bytes;
  const size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos);
  s.replace(at, from.size(), to);
  const std::string path = std::string(TM_BINARY_DIR) + "/" + out_name;
  EXPECT_TRUE(WriteFileAtomic(path, s).ok());
  return path;
}

TEST(EngineLoad, UnsupportedArchitectureIsReported) {
  const std::string p = PatchedCopy("llama.block_count", "llamx.block_count", "engine_arch.gguf");
  // general.architecture is still llama, so the block_count key is now missing.
  auto m = Model::Load(p);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("llama.block_count"), std::string::npos) << m.status().message();
  const std::string p2 = PatchedCopy(std::string("\x05\x00\x00\x00\x00\x00\x00\x00llama", 13),
                                     std::string("\x05\x00\x00\x00\x00\x00\x00\x00mamba", 13), "engine_arch2.gguf");
  auto m2 = Model::Load(p2);
  ASSERT_FALSE(m2.ok());
  EXPECT_EQ(m2.status().code(), StatusCode::kUnimplemented) << m2.status().message();
  EXPECT_NE(m2.status().message().find("mamba"), std::string::npos) << m2.status().message();
}

TEST(EngineLoad, MissingTensorIsNamed) {
  const std::string p = PatchedCopy("blk.1.ffn_up.weight", "blk.1.ffn_uq.weight", "engine_missing.gguf");
  auto m = Model::Load(p);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("blk.1.ffn_up.weight"), std::string::npos) << m.status().message();
}

TEST(EngineDecode, RejectsBadBatchesWithoutSideEffects) {
  auto model = LoadTiny("llama");
  ASSERT_NE(model, nullptr);
  ContextOptions opt;
  opt.n_ctx = 16;
  opt.max_batch = 4;
  auto ctx = Context::Create(*model, opt);
  ASSERT_TRUE(ctx.ok());
  Batch b;
  b.Add(1, 1, 0, true);  // position must start at 0
  EXPECT_FALSE((*ctx)->Decode(b).ok());
  b.Clear();
  b.Add(100000, 0, 0, true);  // token out of range
  EXPECT_FALSE((*ctx)->Decode(b).ok());
  b.Clear();
  for (int i = 0; i < 5; ++i) b.Add(1, i, 0, false);  // over max_batch
  EXPECT_FALSE((*ctx)->Decode(b).ok());
  EXPECT_EQ((*ctx)->seq_length(0), 0);
  b.Clear();
  b.Add(1, 0, 0, true);
  EXPECT_TRUE((*ctx)->Decode(b).ok());
  EXPECT_EQ((*ctx)->seq_length(0), 1);
  // Context full.
  for (int i = 1; i < 16; ++i) {
    b.Clear();
    b.Add(1, i, 0, true);
    ASSERT_TRUE((*ctx)->Decode(b).ok());
  }
  b.Clear();
  b.Add(1, 16, 0, true);
  EXPECT_EQ((*ctx)->Decode(b).code(), StatusCode::kResourceExhausted);
}

TEST(EngineDecode, NoAllocationPerToken) {
  for (const char* arch : {"llama", "gemma3"}) {
    auto model = LoadTiny(arch);
    ASSERT_NE(model, nullptr);
    ContextOptions opt;
    opt.n_ctx = 64;
    opt.max_batch = 16;
    opt.n_seq = 2;
    auto ctx = Context::Create(*model, opt);
    ASSERT_TRUE(ctx.ok());
    Batch b;
    b.token.reserve(16);
    b.pos.reserve(16);
    b.seq.reserve(16);
    b.want_logits.reserve(16);
    for (int i = 0; i < 16; ++i) b.Add(i + 1, i, 0, false);  // warm-up prefill (sizes scratch)
    ASSERT_TRUE((*ctx)->Decode(b).ok());
    const int64_t before = g_allocations.load();
    for (int step = 0; step < 8; ++step) {
      b.Clear();
      b.Add(step + 3, 16 + step, 0, true);
      b.Add(step + 5, step, 1, true);
      ASSERT_TRUE((*ctx)->Decode(b).ok());
    }
    b.Clear();
    for (int i = 0; i < 12; ++i) b.Add(7, 8 + i, 1, i == 11);  // a prefill chunk
    ASSERT_TRUE((*ctx)->Decode(b).ok());
    EXPECT_EQ(g_allocations.load() - before, 0) << arch;
  }
}

}  // namespace
}  // namespace tracemark
