// Tokenizer throughput: MB/s of Tokenizer::Encode on one thread, per model and input file.
//
// Usage: tokenizer_bench --model GGUF [--model GGUF...] [--min-seconds S] FILE...
// Each file is split into documents of kDocLines lines (like a corpus scanner's records) and
// encoded with add_special=true, parse_special=false. "cold" is the first pass over the file in a
// fresh thread (empty word cache); "warm" repeats passes until min-seconds have elapsed.
// tools/bench_tokenizers_ref.py runs HF tokenizers and tiktoken on the same files.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tracemark/base/file.h"
#include "tracemark/model/gguf.h"
#include "tracemark/text/tokenizer.h"

namespace {

constexpr size_t kDocLines = 50;
constexpr size_t kMaxInputBytes = 1u << 30;

std::vector<std::string> SplitDocs(const std::string& text) {
  std::vector<std::string> docs;
  size_t start = 0, lines = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' && ++lines == kDocLines) {
      docs.push_back(text.substr(start, i + 1 - start));
      start = i + 1;
      lines = 0;
    }
  }
  if (start < text.size()) docs.push_back(text.substr(start));
  return docs;
}

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> models, files;
  double min_seconds = 3.0;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--model") && i + 1 < argc) {
      models.push_back(argv[++i]);
    } else if (!std::strcmp(argv[i], "--min-seconds") && i + 1 < argc) {
      min_seconds = std::atof(argv[++i]);
    } else {
      files.push_back(argv[i]);
    }
  }
  if (models.empty() || files.empty()) {
    std::fprintf(stderr, "usage: tokenizer_bench --model GGUF [--model GGUF...] FILE...\n");
    return 2;
  }
  for (const std::string& model : models) {
    auto file = tracemark::gguf::GgufFile::Open(model);
    if (!file.ok()) {
      std::fprintf(stderr, "tokenizer_bench: %s\n", file.status().message().c_str());
      return 1;
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto tok = tracemark::text::Tokenizer::FromGguf(**file);
    if (!tok.ok()) {
      std::fprintf(stderr, "tokenizer_bench: %s\n", tok.status().message().c_str());
      return 1;
    }
    const double load_s = Seconds(t0, std::chrono::steady_clock::now());
    for (const std::string& path : files) {
      auto text = tracemark::ReadFile(path, kMaxInputBytes);
      if (!text.ok()) {
        std::fprintf(stderr, "tokenizer_bench: %s\n", text.status().message().c_str());
        return 1;
      }
      const std::vector<std::string> docs = SplitDocs(*text);
      const double mb = static_cast<double>(text->size()) / 1e6;
      double cold_s = 0, warm_s = 0;
      size_t tokens = 0, passes = 0;
      // A fresh thread has an empty word cache: the first pass is "cold".
      std::thread worker([&] {
        auto a = std::chrono::steady_clock::now();
        for (const auto& d : docs) tokens += (*tok)->Encode(d, true, false).size();
        auto b = std::chrono::steady_clock::now();
        cold_s = Seconds(a, b);
        a = b;
        do {
          for (const auto& d : docs) (*tok)->Encode(d, true, false);
          ++passes;
          b = std::chrono::steady_clock::now();
        } while (Seconds(a, b) < min_seconds);
        warm_s = Seconds(a, b) / static_cast<double>(passes);
      });
      worker.join();
      std::printf("%-45s %-28s %8.2f MB %9zu tok  cold %7.2f MB/s  warm %7.2f MB/s  (load %.2f s)\n",
                  model.substr(model.find_last_of('/') + 1).c_str(),
                  path.substr(path.find_last_of('/') + 1).c_str(), mb, tokens, mb / cold_s,
                  mb / warm_s, load_s);
    }
  }
  return 0;
}
