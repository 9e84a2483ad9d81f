// Targeted detection against named suspects (DetectOptions::suspects; docs/watermark.md,
// "Suspects (targeted detection)"), compared in the same run with untargeted detection.
//
//   suspects_bench speed
//     Detect() cost per 400-token watermarked synthetic document (thread CPU time) with 0, 1, 16,
//     256 and 4,096 suspects, and the one-time key derivations.
//   suspects_bench cache FILE
//     Real-model answers from watermark_power_bench's --cache FILE (TSV: scheme spec, T, prompt,
//     length, secret fill, account, token ids, ...): for each (scheme, T) cell and prefix length,
//     detection at 1e-6 and attribution (correct / wrong) without suspects, with the writer among
//     16 suspects, and with 16 suspects that exclude the writer.
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tracemark/model/sampler.h"
#include "tracemark/watermark/detector.h"
#include "tracemark/watermark/hook.h"
#include "watermark/synthetic.h"

namespace wm = tracemark::watermark;

namespace {

constexpr int kSuspects = 16;
constexpr int kLengths[] = {100, 200, 400};
constexpr double kThreshold = 1e-6;

double ThreadCpu() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

template <typename T>
T OrDie(tracemark::Result<T> r) {
  if (!r.ok()) {
    std::fprintf(stderr, "suspects_bench: %s\n", r.status().message().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}

std::vector<uint64_t> RandomIds(tracemark::Rng& rng, size_t n, uint64_t space, uint64_t exclude) {
  std::vector<uint64_t> out;
  while (out.size() < n) {
    const uint64_t id = rng.Next() % space;
    if (id != exclude && std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
  }
  return out;
}

int Speed() {
  std::vector<uint8_t> secret(32, 0x11);
  const wm::Keyring ring = OrDie(wm::Keyring::FromSecret(secret, "gumbel"));
  wm::sim::SyntheticLmOptions o;
  o.vocab_size = 8192;
  o.support = 256;
  std::vector<std::vector<int32_t>> docs;
  for (int i = 0; i < 50; ++i) {
    wm::sim::SyntheticLm lm(o, static_cast<uint64_t>(i));
    std::vector<int32_t> t{1, 2, 3, 4};
    auto hook = OrDie(wm::MakeWatermarkHook(ring, 1000 + static_cast<uint64_t>(i)));
    lm.Generate(t, 400, hook.get(), static_cast<uint64_t>(i));
    docs.emplace_back(t.begin() + 4, t.end());
  }
  tracemark::Rng rng(1);
  std::printf(
      "| suspects | key derivations (once) | Detect per 400-token document |\n|---|---|---|\n");
  for (size_t n : {size_t{0}, size_t{1}, size_t{16}, size_t{256}, size_t{4096}}) {
    const std::vector<uint64_t> s = RandomIds(rng, n, uint64_t{1} << 20, ~uint64_t{0});
    wm::Detector det = OrDie(wm::Detector::Create(ring));
    wm::DetectOptions opt;
    opt.suspects = s;
    double t0 = ThreadCpu();
    if (n > 0 && !det.PrepareSuspects(s).ok()) return 1;
    const double prepare = ThreadCpu() - t0;
    const int reps = n >= 4096 ? 2 : 20;
    t0 = ThreadCpu();
    for (int r = 0; r < reps; ++r) {
      for (const auto& d : docs) OrDie(det.Detect(d, opt));
    }
    const double per = (ThreadCpu() - t0) / (reps * static_cast<double>(docs.size()));
    std::printf("| %zu | %.2f ms | %.1f us |\n", n, prepare * 1e3, per * 1e6);
  }
  return 0;
}

struct Cached {
  std::string spec;
  std::string temperature;
  int fill = 0;
  uint64_t account = 0;
  std::vector<int32_t> tokens;
};

struct Cell {
  int n = 0, det_plain = 0, det_in = 0, det_out = 0;
  int attr_plain = 0, attr_in = 0, wrong_plain = 0, wrong_in = 0, wrong_out = 0, best_is_writer = 0;
  std::vector<double> lp_plain, lp_in, acc_plain, acc_in;
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int Cache(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "suspects_bench: cannot read %s\n", path.c_str());
    return 2;
  }
  std::vector<Cached> seqs;
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string item; std::getline(ss, item, '\t');) f.push_back(item);
    if (f.size() != 9 || f[0] == "none") continue;  // "none": unwatermarked answers, no key
    Cached c;
    c.spec = f[0];
    c.temperature = f[1];
    c.fill = std::atoi(f[4].c_str());
    c.account = std::stoull(f[5]);
    std::stringstream ts(f[6]);
    for (std::string t; std::getline(ts, t, ',');) c.tokens.push_back(std::stoi(t));
    seqs.push_back(std::move(c));
  }
  std::map<std::pair<std::string, std::string>, std::map<int, Cell>> cells;
  std::map<std::pair<std::string, int>, wm::Detector> detectors;
  for (const Cached& c : seqs) {
    auto key = std::make_pair(c.spec, c.fill);
    if (detectors.count(key) == 0) {
      std::vector<uint8_t> secret(32, static_cast<uint8_t>(c.fill));
      const wm::Keyring ring = OrDie(wm::Keyring::FromSecret(secret, c.spec));
      detectors.emplace(key, OrDie(wm::Detector::Create(ring)));
    }
    wm::Detector& det = detectors.at(key);
    const wm::SchemeParams params = OrDie(wm::ParseSchemeSpec(c.spec));
    tracemark::Rng rng(c.account * 7919 + 17);
    std::vector<uint64_t> with = RandomIds(rng, kSuspects - 1, params.AccountSpace(), c.account);
    with.insert(with.begin() + static_cast<long>(rng.Next() % kSuspects), c.account);
    const std::vector<uint64_t> without =
        RandomIds(rng, kSuspects, params.AccountSpace(), c.account);
    for (int len : kLengths) {
      if (static_cast<int>(c.tokens.size()) < len) continue;
      const std::span<const int32_t> t =
          std::span<const int32_t>(c.tokens).first(static_cast<size_t>(len));
      Cell& cell = cells[{c.spec, c.temperature}][len];
      wm::DetectOptions o;
      const wm::Detection plain = OrDie(det.Detect(t, o));
      o.suspects = with;
      const wm::Detection in_list = OrDie(det.Detect(t, o));
      o.suspects = without;
      const wm::Detection out_list = OrDie(det.Detect(t, o));
      ++cell.n;
      cell.det_plain += plain.watermarked;
      cell.det_in += in_list.watermarked;
      cell.det_out += out_list.watermarked;
      cell.attr_plain += plain.account == c.account;
      cell.attr_in += in_list.account == c.account;
      cell.wrong_plain += plain.account.has_value() && *plain.account != c.account;
      cell.wrong_in += in_list.account.has_value() && *in_list.account != c.account;
      cell.wrong_out += out_list.account.has_value();
      cell.best_is_writer += in_list.targeted_suspect == c.account;
      cell.lp_plain.push_back(plain.log10_p_value);
      cell.lp_in.push_back(in_list.log10_p_value);
      cell.acc_plain.push_back(plain.account_log10_p_value);
      cell.acc_in.push_back(in_list.account_log10_p_value);
    }
  }
  std::printf(
      "Threshold %.0e on p_value and account_p_value; %d suspects. \"in\": the writer is one of "
      "them; \"out\": none is the writer.\n\n",
      kThreshold, kSuspects);
  std::printf(
      "| scheme | T | tokens | n | detected: none / in / out | attributed: none / in | wrong: none "
      "/ in / out "
      "| best suspect = writer | median log10 p: none / in | median log10 account p: none / in |\n"
      "|---|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& [k, by_len] : cells) {
    for (const auto& [len, c] : by_len) {
      std::printf(
          "| %s | %s | %d | %d | %d / %d / %d | %d / %d | %d / %d / %d | %d | %.1f / %.1f | %.1f / "
          "%.1f |\n",
          k.first.c_str(), k.second.c_str(), len, c.n, c.det_plain, c.det_in, c.det_out,
          c.attr_plain, c.attr_in, c.wrong_plain, c.wrong_in, c.wrong_out, c.best_is_writer,
          Median(c.lp_plain), Median(c.lp_in), Median(c.acc_plain), Median(c.acc_in));
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "speed" && argc == 2) return Speed();
  if (mode == "cache" && argc == 3) return Cache(argv[2]);
  std::fprintf(
      stderr,
      "usage: suspects_bench speed | suspects_bench cache FILE (watermark_power_bench --cache)\n");
  return 2;
}
