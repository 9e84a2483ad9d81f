// Corpus-scan throughput.
//   scan_bench [--mb N] [--scan-mb N] [--model GGUF] [--text-dir DIR] [--threads 1,2,...]
// 1. Reader: a JSONL.zst corpus of N MB (default 128) of English sentences (shuffled from the
//    license texts in /usr/share/common-licenses, or synthetic words when absent) read through
//    RecordReader: MB/s of decompressed JSONL and records/s, one thread.
// 2. Scan (when the model exists): tokenize + detect through RunShard on --scan-mb MB (default
//    8) of the same corpus with a fresh keyring, with each --threads count (default 1,2): MB/s
//    of document text and the speed-up over the first count. Sentences come from --text-dir
//    (default /usr/share/common-licenses). Machine: whatever runs it; note `nproc` alongside.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <zstd.h>

#include "tracemark/scan/record_reader.h"
#include "tracemark/scan/scanner.h"
#if TM_SCAN_BENCH_WITH_SCORER
#include "tracemark/scan/watermark_scorer.h"
#include "tracemark/watermark/keyring.h"
#include "tracemark/watermark/scheme.h"
#endif

namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> Sentences(const std::string& text_dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(text_dir, ec)) {
    std::ifstream f(e.path());
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    for (char& c : text) {
      if (c == '\n' || c == '\t') c = ' ';
    }
    size_t start = 0;
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '.' && i + 1 < text.size() && text[i + 1] == ' ') {
        std::string s = text.substr(start, i + 1 - start);
        start = i + 2;
        std::string clean;
        for (char c : s) {
          if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) continue;
          if (c == ' ' && !clean.empty() && clean.back() == ' ') continue;
          clean.push_back(c);
        }
        if (clean.size() > 20) out.push_back(clean);
      }
    }
  }
  if (out.empty()) {
    uint32_t seed = 7;
    for (int s = 0; s < 2000; ++s) {
      std::string sent;
      for (int w = 0; w < 15; ++w) {
        seed = seed * 1664525u + 1013904223u;
        const int len = 2 + (seed >> 28);
        for (int k = 0; k < len; ++k) {
          seed = seed * 1664525u + 1013904223u;
          sent.push_back(static_cast<char>('a' + (seed >> 24) % 26));
        }
        sent.push_back(' ');
      }
      sent.back() = '.';
      out.push_back(sent);
    }
  }
  return out;
}

// JSONL documents of about 2 KB, until `bytes`.
std::string MakeJsonl(const std::vector<std::string>& sentences, size_t bytes) {
  std::string out;
  uint64_t seed = 12345;
  int doc = 0;
  while (out.size() < bytes) {
    std::string text;
    while (text.size() < 2000) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      text += sentences[(seed >> 33) % sentences.size()];
      text += ' ';
    }
    out += "{\"id\":\"doc-" + std::to_string(doc++) + "\",\"text\":\"" + text + "\"}\n";
  }
  return out;
}

void WriteZstd(const std::string& path, const std::string& data) {
  std::string z(ZSTD_compressBound(data.size()), '\0');
  z.resize(ZSTD_compress(z.data(), z.size(), data.data(), data.size(), 3));
  std::ofstream(path, std::ios::binary).write(z.data(), static_cast<std::streamsize>(z.size()));
}

double Seconds(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  size_t mb = 128, scan_mb = 8;
  std::string model = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  std::string text_dir = "/usr/share/common-licenses";
  std::vector<int> thread_counts = {1, 2};
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--mb") == 0) mb = std::stoul(argv[i + 1]);
    if (std::strcmp(argv[i], "--scan-mb") == 0) scan_mb = std::stoul(argv[i + 1]);
    if (std::strcmp(argv[i], "--model") == 0) model = argv[i + 1];
    if (std::strcmp(argv[i], "--text-dir") == 0) text_dir = argv[i + 1];
    if (std::strcmp(argv[i], "--threads") == 0) {
      thread_counts.clear();
      for (const char* p = argv[i + 1]; *p != '\0';) {
        char* end = nullptr;
        thread_counts.push_back(static_cast<int>(std::strtol(p, &end, 10)));
        p = *end == ',' ? end + 1 : end;
      }
    }
  }
  const std::string dir = std::filesystem::temp_directory_path() / "tm_scan_bench";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const auto sentences = Sentences(text_dir);
  const std::string jsonl = MakeJsonl(sentences, mb << 20);
  const std::string path = dir + "/corpus.jsonl.zst";
  WriteZstd(path, jsonl);
  const auto zsize = std::filesystem::file_size(path);

  // 1. Reader throughput (best of 3).
  double best = 1e30;
  uint64_t records = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = Clock::now();
    auto reader = tracemark::scan::RecordReader::OpenFile(path, {});
    if (!reader.ok()) {
      std::fprintf(stderr, "%s\n", reader.status().ToString().c_str());
      return 1;
    }
    tracemark::scan::Record rec;
    tracemark::scan::ReadError err;
    records = 0;
    for (;;) {
      auto o = (*reader)->Next(nullptr, &rec, &err);
      if (o == tracemark::scan::RecordReader::Outcome::kEnd) break;
      if (o == tracemark::scan::RecordReader::Outcome::kRecord) ++records;
    }
    best = std::min(best, Seconds(t0));
  }
  std::printf("reader  jsonl.zst  %.1f MB decompressed (%.1f MB compressed, %zu sentences)  "
              "%.0f MB/s  %.0f records/s  (1 thread, best of 3)\n",
              jsonl.size() / 1e6, zsize / 1e6, sentences.size(), jsonl.size() / 1e6 / best,
              records / best);

#if TM_SCAN_BENCH_WITH_SCORER
  if (!std::filesystem::exists(model)) {
    std::printf("scan    skipped: %s not found\n", model.c_str());
    return 0;
  }
  auto ring = tracemark::watermark::Keyring::Create(dir + "/keyring",
                                                    tracemark::watermark::kDefaultSchemeSpec);
  if (!ring.ok()) {
    std::fprintf(stderr, "%s\n", ring.status().ToString().c_str());
    return 1;
  }
  tracemark::scan::WatermarkScoringOptions wo;
  wo.keyring_path = dir + "/keyring";
  wo.model_path = model;
  auto scoring = tracemark::scan::WatermarkScoring::Create(wo);
  if (!scoring.ok()) {
    std::fprintf(stderr, "%s\n", scoring.status().ToString().c_str());
    return 1;
  }
  const std::string small_path = dir + "/small.jsonl.zst";
  WriteZstd(small_path, MakeJsonl(sentences, scan_mb << 20));
  double one = 0;
  for (int threads : thread_counts) {
    tracemark::scan::ScanJob job;
    job.files = {small_path};
    tracemark::scan::ShardOptions so;
    so.threads = threads;
    so.out_dir = dir + "/out" + std::to_string(threads);
    const auto t0 = Clock::now();
    auto r = tracemark::scan::RunShard(job, so, **scoring);
    const double s = Seconds(t0);
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
      return 1;
    }
    const double mbs = r->counts.bytes / 1e6 / s;
    if (one == 0) one = mbs;
    std::printf("scan    tokenize+detect  %d thread(s)  %.1f MB text  %llu docs  %llu tokens  "
                "%.2f MB/s  %.0f tokens/s%s\n",
                threads, r->counts.bytes / 1e6, static_cast<unsigned long long>(r->counts.documents),
                static_cast<unsigned long long>(r->counts.tokens_scored), mbs,
                r->counts.tokens_scored / s,
                ("  speed-up " + std::to_string(mbs / one)).c_str());
  }
#else
  (void)model;
  (void)scan_mb;
  std::printf("scan    skipped: built without tm_text/tm_watermark\n");
#endif
  std::filesystem::remove_all(dir);
  return 0;
}
