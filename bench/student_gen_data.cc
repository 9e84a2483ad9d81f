// Training text for the student radioactivity experiment (bench/student_radioactivity.sh):
// chat completions of the default model for a list of prompts, generated in batched decode
// (several sequences per forward pass, far faster than one `tracemark generate` per prompt on a
// CPU), watermarked for one account of a keyring, or plain with --account -1.
//
// Usage: student_gen_data MODEL KEYRING ACCOUNT OUT.jsonl N_DOCS MAX_TOKENS [SEED] [N_SEQ] [THREADS]
// Writes one JSON object per line: {"text": ..., "account": ACCOUNT, "tokens": n}.
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tracemark/model/context.h"
#include "tracemark/model/sampler.h"
#include "tracemark/text/chat_template.h"
#include "tracemark/text/tokenizer.h"
#include "tracemark/watermark/hook.h"
#include "tracemark/watermark/keyring.h"

namespace {

using namespace tracemark;  // NOLINT: a bench's main

const char* const kTopics[] = {
    "lighthouses", "bread baking", "volcanoes", "the printing press", "honey bees", "railways",
    "glaciers", "chess openings", "coral reefs", "medieval castles", "bicycles", "tea",
    "the moon landing", "rivers of Europe", "paper money", "owls", "solar panels", "jazz",
    "ancient Rome", "submarines", "the immune system", "maps", "wind turbines", "coffee",
    "the Silk Road", "penguins", "clocks", "deserts", "vaccines", "the violin", "bridges", "salt"};
const char* const kForms[] = {
    "Write a long essay about %s, with many details.",
    "Explain step by step how %s work or came to be.",
    "Tell a story for children about %s.",
    "Write a detailed encyclopedia article about %s.",
    "Describe the history of %s in several paragraphs.",
    "What should a beginner know about %s? Answer at length."};

int Fail(const std::string& msg) {
  std::fprintf(stderr, "student_gen_data: %s\n", msg.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr, "usage: %s MODEL KEYRING ACCOUNT(-1: none) OUT.jsonl N_DOCS MAX_TOKENS [SEED] [N_SEQ] [THREADS]\n",
                 argv[0]);
    return 2;
  }
  const std::string model_path = argv[1], keyring_path = argv[2], out_path = argv[4];
  const long long account = std::stoll(argv[3]);
  const int n_docs = std::stoi(argv[5]), max_tokens = std::stoi(argv[6]);
  const uint64_t seed = argc > 7 ? std::stoull(argv[7]) : 1;
  const int n_seq = argc > 8 ? std::stoi(argv[8]) : 16;
  const int threads = argc > 9 ? std::stoi(argv[9]) : 2;

  auto model = Model::Load(model_path);
  if (!model.ok()) return Fail(model.status().message());
  auto tok = text::Tokenizer::FromGguf((*model)->file());
  if (!tok.ok()) return Fail(tok.status().message());
  auto tmpl = ChatTemplate::FromGguf((*model)->file());
  if (!tmpl.ok()) return Fail(tmpl.status().message());
  std::unique_ptr<watermark::Keyring> keyring;
  if (account >= 0) {
    auto k = watermark::Keyring::Load(keyring_path);
    if (!k.ok()) return Fail(k.status().message());
    keyring = std::make_unique<watermark::Keyring>(std::move(*k));
  }
  ContextOptions co;
  co.n_seq = n_seq;
  co.n_ctx = 1024;
  co.max_batch = 512;
  co.n_threads = threads;
  auto ctx = Context::Create(**model, co);
  if (!ctx.ok()) return Fail(ctx.status().message());
  const int32_t V = (*model)->config().n_vocab;

  struct Slot {
    int doc = -1;
    std::vector<int32_t> context;  // prompt + generated
    std::vector<int32_t> generated;
    std::unique_ptr<SamplerHook> hook;
    std::unique_ptr<Sampler> sampler;
  };
  std::vector<Slot> slots(n_seq);
  int next_doc = 0, done = 0;
  long long total_tokens = 0;
  FILE* out = std::fopen(out_path.c_str(), "w");
  if (out == nullptr) return Fail("cannot write " + out_path);
  const auto t0 = std::chrono::steady_clock::now();

  auto start = [&](int s) -> bool {
    Slot& sl = slots[s];
    sl.doc = -1;
    if (next_doc >= n_docs) return false;
    const int d = next_doc++;
    constexpr int kTopics_n = sizeof(kTopics) / sizeof(kTopics[0]);
    constexpr int kForms_n = sizeof(kForms) / sizeof(kForms[0]);
    char prompt[256];
    std::snprintf(prompt, sizeof(prompt), kForms[(d / kTopics_n) % kForms_n], kTopics[d % kTopics_n]);
    const ChatMessage m{"user", prompt};
    auto rendered = tmpl->Render(std::span<const ChatMessage>(&m, 1), true);
    if (!rendered.ok()) return false;
    sl.context = (*tok)->Encode(*rendered, true, true);
    if (sl.context.size() >= 2 && sl.context[0] == (*tok)->bos_id() && sl.context[1] == (*tok)->bos_id()) {
      sl.context.erase(sl.context.begin());
    }
    sl.generated.clear();
    sl.hook.reset();
    if (keyring) {
      auto h = watermark::MakeWatermarkHook(*keyring, static_cast<uint64_t>(account));
      if (!h.ok()) return false;
      sl.hook = std::move(*h);
    }
    SamplingParams sp;
    sp.temperature = 1.0f;
    sp.seed = seed * 1000003ull + static_cast<uint64_t>(d);
    sl.sampler = std::make_unique<Sampler>(sp, V, sl.hook.get());
    (*ctx)->ClearSeq(s);
    Batch b;
    for (size_t i = 0; i < sl.context.size(); ++i) {
      b.Add(sl.context[i], static_cast<int32_t>(i), s, i + 1 == sl.context.size());
    }
    if (!(*ctx)->Decode(b).ok()) return false;
    std::vector<float> logits((*ctx)->Logits(0).begin(), (*ctx)->Logits(0).end());
    const int32_t t = sl.sampler->Sample(logits, sl.context);
    sl.context.push_back(t);
    sl.generated.push_back(t);
    sl.doc = d;
    return true;
  };
  auto finish = [&](int s) {
    Slot& sl = slots[s];
    std::vector<int32_t> ids = sl.generated;
    if (!ids.empty() && (*tok)->IsEog(ids.back())) ids.pop_back();
    nlohmann::json j;
    j["text"] = (*tok)->Decode(ids, true);
    j["account"] = account;
    j["tokens"] = ids.size();
    std::fprintf(out, "%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    total_tokens += static_cast<long long>(ids.size());
    ++done;
  };
  for (int s = 0; s < n_seq; ++s) start(s);
  std::vector<float> logits(V);
  while (true) {
    Batch b;
    std::vector<int> rows;
    for (int s = 0; s < n_seq; ++s) {
      Slot& sl = slots[s];
      if (sl.doc < 0) continue;
      b.Add(sl.context.back(), static_cast<int32_t>(sl.context.size() - 1), s, true);
      rows.push_back(s);
    }
    if (rows.empty()) break;
    if (!(*ctx)->Decode(b).ok()) return Fail("decode failed");
    for (size_t r = 0; r < rows.size(); ++r) {
      const int s = rows[r];
      Slot& sl = slots[s];
      std::span<float> l = (*ctx)->Logits((*ctx)->OutputOf(static_cast<int32_t>(r)));
      std::copy(l.begin(), l.end(), logits.begin());
      const int32_t t = sl.sampler->Sample(logits, sl.context);
      sl.context.push_back(t);
      sl.generated.push_back(t);
      if ((*tok)->IsEog(t) || static_cast<int>(sl.generated.size()) >= max_tokens ||
          static_cast<int>(sl.context.size()) + 1 >= (*ctx)->n_ctx()) {
        finish(s);
        start(s);
      }
    }
  }
  std::fclose(out);
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "student_gen_data: %d docs, %lld tokens in %.1f s (%.1f tokens/s)\n", done, total_tokens, sec,
               total_tokens / sec);
  return 0;
}
