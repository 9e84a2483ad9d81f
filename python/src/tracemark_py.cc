// The `tracemark._tracemark` extension: Keyring, Tokenizer, Detector and a Scanner with coarse
// calls (scan_batch, scan_shard, merge) that release the GIL and use threads of their own.
//
// Errors from the C++ core (Status values) become Python exceptions at this boundary:
// InvalidArgument -> ValueError, NotFound -> FileNotFoundError, others -> RuntimeError.
// Thread-safety: Keyring and Tokenizer objects are immutable and may be shared between Python
// threads; a Detector or Scanner serializes its own calls with a mutex (a Scanner's scan_batch
// is parallel inside, over its `threads` scorers).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tracemark/base/status.h"
#include "tracemark/model/gguf.h"
#include "tracemark/scan/inputs.h"
#include "tracemark/scan/scanner.h"
#include "tracemark/scan/watermark_scorer.h"
#include "tracemark/text/tokenizer.h"
#include "tracemark/watermark/detector.h"
#include "tracemark/watermark/keyring.h"
#include "tracemark/watermark/placeholders.h"

namespace py = pybind11;

namespace tracemark::python {
namespace {

// Most threads one Scanner runs (same bound as the CLI's --threads).
constexpr int kMaxScanThreads = scan::kMaxThreads;

[[noreturn]] void Raise(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
      throw py::value_error(s.ToString());
    case StatusCode::kNotFound: {
      PyErr_SetString(PyExc_FileNotFoundError, s.ToString().c_str());
      throw py::error_already_set();
    }
    default:
      throw std::runtime_error(s.ToString());
  }
}

template <typename T>
T Unwrap(Result<T> r) {
  if (!r.ok()) Raise(r.status());
  return std::move(r).value();
}

void Check(const Status& s) {
  if (!s.ok()) Raise(s);
}

struct PyKeyring {
  std::shared_ptr<const watermark::Keyring> ring;
  std::string path;
};

struct PyTokenizer {
  std::shared_ptr<gguf::GgufFile> file;
  std::shared_ptr<text::Tokenizer> tok;
  std::string path;
};

PyTokenizer LoadTokenizer(const std::string& model_path) {
  PyTokenizer t;
  t.path = model_path;
  {
    py::gil_scoped_release release;
    Result<std::unique_ptr<gguf::GgufFile>> f = gguf::GgufFile::Open(model_path);
    if (f.ok()) {
      t.file = std::move(*f);
      Result<std::unique_ptr<text::Tokenizer>> tok = text::Tokenizer::FromGguf(*t.file);
      if (!tok.ok()) {
        py::gil_scoped_acquire acquire;
        Raise(tok.status());
      }
      t.tok = std::move(*tok);
    } else {
      py::gil_scoped_acquire acquire;
      Raise(f.status());
    }
  }
  return t;
}

// The same object `tracemark detect --json` prints (src/cli/detect_cmd.cc), as a dict.
py::dict DetectionDict(const watermark::Detection& d, double threshold, size_t n_tokens,
                       const std::vector<size_t>& offsets, const std::vector<uint8_t>& mask) {
  py::dict j;
  j["p_value"] = d.p_value;
  j["log10_p_value"] = d.log10_p_value;
  j["watermarked"] = d.watermarked;
  j["threshold"] = threshold;
  j["tokens"] = n_tokens;
  j["tokens_scored"] = d.tokens_scored;
  j["tokens_masked"] = static_cast<int64_t>(std::count(mask.begin(), mask.end(), 1));
  j["scheme"] = d.scheme;
  j["key_version"] = d.key_version;
  j["account"] = d.account ? py::object(py::int_(*d.account)) : py::object(py::none());
  j["account_p_value"] = d.account_p_value;
  j["account_log10_p_value"] = d.account_log10_p_value;
  if (!d.account_note.empty()) j["account_note"] = d.account_note;
  if (d.suspects_tested > 0) {  // targeted detection (`detect --suspects`)
    j["suspects"] = d.suspects_tested;
    j["targeted_log10_p"] = d.targeted_log10_p;
    j["targeted_suspect"] =
        d.targeted_suspect ? py::object(py::int_(*d.targeted_suspect)) : py::object(py::none());
  }
  py::list spans;
  for (const watermark::MarkedSpan& s : d.spans) {
    py::dict sp;
    sp["begin_token"] = s.begin;
    sp["end_token"] = s.end;
    sp["begin_byte"] = offsets.empty() ? 0 : offsets[std::min(s.begin, n_tokens)];
    sp["end_byte"] = offsets.empty() ? 0 : offsets[std::min(s.end, n_tokens)];
    sp["log10_p_value"] = s.log10_p;
    spans.append(sp);
  }
  j["spans"] = spans;
  py::dict c;
  c["provider_log10_p"] = d.provider_log10_p;
  c["combined_log10_p"] = d.combined_log10_p;
  c["window_log10_p"] = d.window_log10_p;
  c["provider_tuples"] = d.provider_tuples;
  c["payload_tuples"] = d.payload_tuples;
  c["account_tuples"] = d.account_tuples;
  c["candidates_verified"] = d.candidates_verified;
  c["versions_tested"] = d.versions_tested;
  j["components"] = c;
  return j;
}

// Detector: text or token ids -> the `detect --json` dict. Text is tokenized with the model's
// tokenizer and PII placeholders are masked, exactly as the CLI does.
class PyDetector {
 public:
  PyDetector(const PyKeyring& keyring, const PyTokenizer& tokenizer, double threshold,
             const std::vector<uint64_t>& suspects)
      : ring_(keyring.ring),
        tok_(tokenizer),
        threshold_(threshold),
        suspects_(suspects),
        detector_(Unwrap(watermark::Detector::Create(*keyring.ring))) {
    if (!(threshold > 0 && threshold < 1)) throw py::value_error("threshold must be in (0, 1)");
    // Targeted detection (docs/watermark.md, "Suspects"): a bad list fails here, not per call.
    if (!suspects_.empty()) Check(detector_.PrepareSuspects(suspects_));
  }

  py::dict DetectText(const std::string& text) {
    std::vector<int32_t> ids;
    std::vector<size_t> offsets;
    std::vector<uint8_t> mask;
    Result<watermark::Detection> d = InvalidArgument("unset");
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mu_);
      ids = tok_.tok->Encode(text, /*add_special=*/false, /*parse_special=*/false);
      offsets.assign(ids.size() + 1, 0);
      for (size_t i = 0; i < ids.size(); ++i) {
        offsets[i + 1] = offsets[i] + tok_.tok->TokenBytes(ids[i]).size();
      }
      const size_t shift = offsets.back() > text.size() ? offsets.back() - text.size() : 0;
      for (size_t& o : offsets) o = o > shift ? o - shift : 0;
      mask = watermark::MaskTokens(offsets, watermark::FindPlaceholders(text));
      d = Run(ids, mask);
    }
    return DetectionDict(Unwrap(std::move(d)), threshold_, ids.size(), offsets, mask);
  }

  py::dict DetectIds(const std::vector<int32_t>& ids) {
    Result<watermark::Detection> d = InvalidArgument("unset");
    std::vector<size_t> offsets(ids.size() + 1, 0);
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < ids.size(); ++i) {
        const bool valid = ids[i] >= 0 && ids[i] < tok_.tok->vocab_size();
        offsets[i + 1] = offsets[i] + (valid ? tok_.tok->TokenBytes(ids[i]).size() : 0);
      }
      d = Run(ids, {});
    }
    return DetectionDict(Unwrap(std::move(d)), threshold_, ids.size(), offsets, {});
  }

 private:
  Result<watermark::Detection> Run(const std::vector<int32_t>& ids, const std::vector<uint8_t>& mask) {
    std::vector<int32_t> eos;
    for (int32_t id : ids) {
      if (id >= 0 && id < tok_.tok->vocab_size() && tok_.tok->IsEog(id)) eos.push_back(id);
    }
    watermark::DetectOptions opt;
    opt.threshold = threshold_;
    opt.account_threshold = threshold_;
    opt.skip_mask = mask;
    opt.eos_ids = eos;
    opt.suspects = suspects_;
    return detector_.Detect(ids, opt);
  }

  std::shared_ptr<const watermark::Keyring> ring_;
  PyTokenizer tok_;
  double threshold_;
  std::vector<uint64_t> suspects_;
  std::mutex mu_;
  watermark::Detector detector_;
};

// One document's scan row: the fields of a `tracemark scan` results.jsonl row that do not
// depend on where the document came from, plus `flagged`.
py::dict RowDict(const scan::DocScore& s, double threshold) {
  py::dict j;
  j["tokens_scored"] = s.tokens_scored;
  j["p_value"] = s.p_value;
  j["log10_p_value"] = s.log10_p_value;
  j["account"] = s.account ? py::object(py::int_(*s.account)) : py::object(py::none());
  j["account_p_value"] = s.account_p_value;
  j["key_version"] = s.key_version;
  j["scheme"] = s.scheme;
  py::list spans;
  for (const scan::ScoredSpan& sp : s.spans) {
    py::dict d;
    d["token_begin"] = sp.token_begin;
    d["token_end"] = sp.token_end;
    d["byte_begin"] = sp.byte_begin;
    d["byte_end"] = sp.byte_end;
    d["log10_p"] = sp.log10_p;
    spans.append(d);
  }
  j["spans"] = spans;
  if (s.suspects_tested > 0) {  // targeted detection, as in scan's results.jsonl
    j["targeted_log10_p"] = s.targeted_log10_p;
    j["targeted_suspect"] =
        s.targeted_suspect ? py::object(py::int_(*s.targeted_suspect)) : py::object(py::none());
  }
  j["flagged"] = s.p_value < threshold;
  return j;
}

// The scanner: the tokenizer + detector of `tracemark scan`, built once, with `threads` scorers.
class PyScanner {
 public:
  PyScanner(const std::string& keyring_path, const std::string& model_path, double threshold,
            bool mask_placeholders, int threads, const std::vector<uint64_t>& suspects,
            double max_token_prob)
      : threshold_(threshold), threads_(threads) {
    if (threads < 1 || threads > kMaxScanThreads) {
      throw py::value_error("threads must be in [1, " + std::to_string(kMaxScanThreads) + "]");
    }
    if (!(threshold > 0 && threshold < 1)) throw py::value_error("threshold must be in (0, 1)");
    options_.keyring_path = keyring_path;
    options_.model_path = model_path;
    options_.threshold = threshold;
    options_.mask_placeholders = mask_placeholders;
    options_.suspects = suspects;              // `scan --suspects`
    options_.max_token_prob = max_token_prob;  // `scan --max-token-prob` (0 = off)
    {
      py::gil_scoped_release release;
      Result<std::unique_ptr<scan::WatermarkScoring>> s = scan::WatermarkScoring::Create(options_);
      if (s.ok()) {
        scoring_ = std::move(*s);
        for (int t = 0; t < threads && status_.ok(); ++t) {
          Result<std::unique_ptr<scan::DocumentScorer>> sc = scoring_->NewScorer();
          if (sc.ok()) {
            scorers_.push_back(std::move(*sc));
          } else {
            status_ = sc.status();
          }
        }
      } else {
        status_ = s.status();
      }
    }
    Check(status_);
  }

  // Scores every text (documents are independent); one dict per text, in order.
  py::list ScanBatch(const std::vector<std::string>& texts) {
    std::vector<Result<scan::DocScore>> out(texts.size(), InvalidArgument("unset"));
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mu_);
      std::atomic<size_t> next{0};
      auto work = [&](scan::DocumentScorer* scorer) {
        for (size_t i; (i = next.fetch_add(1)) < texts.size();) {
          out[i] = scorer->Score(texts[i]);
          if (out[i].ok()) {
            out[i]->pool_tuples = {};  // the pooled test is the shard protocol's business
          }
        }
      };
      const size_t n = std::min<size_t>(scorers_.size(), std::max<size_t>(texts.size(), 1));
      std::vector<std::thread> pool;
      for (size_t t = 1; t < n; ++t) pool.emplace_back(work, scorers_[t].get());
      work(scorers_[0].get());
      for (std::thread& th : pool) th.join();
    }
    py::list rows;
    for (Result<scan::DocScore>& r : out) {
      if (!r.ok()) {
        py::dict e;
        e["error"] = r.status().ToString();
        e["flagged"] = false;
        rows.append(e);
        continue;
      }
      rows.append(RowDict(*r, threshold_));
    }
    return rows;
  }

  // One shard of `tracemark scan` (same files, same bytes); world_size 1 merges at the end.
  py::dict ScanShard(const std::vector<std::string>& paths, const std::string& out_dir, int rank,
                     int world_size, const std::string& field, const std::string& format,
                     bool whole_file, bool all_roles) {
    scan::ScanJob job;
    scan::ShardOptions o;
    Result<scan::ShardReport> r = InvalidArgument("unset");
    Result<scan::MergeReport> m = InvalidArgument("unset");
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mu_);
      Result<std::vector<std::string>> files = scan::ExpandInputs(paths, {});
      if (!files.ok()) {
        r = files.status();
      } else if (format != "auto" && format != "text" && format != "jsonl") {
        r = InvalidArgument("format must be auto, text or jsonl");
      } else {
        job.files = std::move(*files);
        if (format == "text") job.records.format = scan::InputFormat::kText;
        if (format == "jsonl") job.records.format = scan::InputFormat::kJsonl;
        job.records.field = field;
        job.records.whole_file = whole_file;
        job.records.all_roles = all_roles;
        job.threshold = threshold_;
        o.rank = rank;
        o.world_size = world_size;
        o.threads = threads_;
        o.out_dir = out_dir;
        r = scan::RunShard(job, o, *scoring_);
        if (r.ok() && world_size == 1) m = scan::MergeShards(out_dir, scoring_.get());
      }
    }
    const scan::ShardReport rep = Unwrap(std::move(r));
    py::dict j = CountsDict(rep.counts);
    j["rank"] = rank;
    j["world_size"] = world_size;
    j["skipped"] = rep.skipped;
    j["out"] = out_dir;
    if (world_size == 1) {
      Unwrap(std::move(m));
      j["results"] = out_dir + "/results.jsonl";
      j["summary"] = out_dir + "/summary.json";
    }
    return j;
  }

  py::dict Merge(const std::string& out_dir) {
    Result<scan::MergeReport> m = InvalidArgument("unset");
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mu_);
      m = scan::MergeShards(out_dir, scoring_.get());
    }
    const scan::MergeReport rep = Unwrap(std::move(m));
    py::dict j = CountsDict(rep.counts);
    j["world_size"] = rep.world_size;
    j["results"] = out_dir + "/results.jsonl";
    j["summary"] = out_dir + "/summary.json";
    return j;
  }

  int threads() const { return threads_; }
  double threshold() const { return threshold_; }

 private:
  static py::dict CountsDict(const scan::ScanCounts& c) {
    py::dict j;
    j["documents"] = c.documents;
    j["tokens_scored"] = c.tokens_scored;
    j["flagged"] = c.flagged;
    j["errors"] = c.errors;
    return j;
  }

  scan::WatermarkScoringOptions options_;
  double threshold_;
  int threads_;
  Status status_;
  std::mutex mu_;
  std::unique_ptr<scan::WatermarkScoring> scoring_;
  std::vector<std::unique_ptr<scan::DocumentScorer>> scorers_;
};

}  // namespace
}  // namespace tracemark::python

PYBIND11_MODULE(_tracemark, m) {
  using namespace tracemark::python;  // NOLINT: module definition only
  namespace wm = tracemark::watermark;
  m.doc() = "tracemark: per-account LLM output watermarks (C++ core binding)";

  py::class_<PyKeyring>(m, "Keyring")
      .def_static(
          "load",
          [](const std::string& path) {
            PyKeyring k;
            k.path = path;
            k.ring = std::make_shared<const wm::Keyring>(Unwrap(wm::Keyring::Load(path)));
            return k;
          },
          py::arg("path"), "Loads a keyring file (tracemark keyring init).")
      .def_property_readonly("path", [](const PyKeyring& k) { return k.path; })
      .def_property_readonly("active_version", [](const PyKeyring& k) { return k.ring->active_version(); })
      .def(
          "versions",
          [](const PyKeyring& k) {
            py::list out;
            for (const wm::KeyVersion& v : k.ring->versions()) {
              py::dict d;
              d["version"] = v.version;
              d["scheme"] = v.scheme;
              d["fingerprint"] = Unwrap(k.ring->Fingerprint(v.version));
              out.append(d);
            }
            return out;
          },
          "Key versions with scheme and public fingerprint (never secrets).");

  py::class_<PyTokenizer>(m, "Tokenizer")
      .def_static("from_gguf", &LoadTokenizer, py::arg("model_path"),
                  "The tokenizer stored in a GGUF model file.")
      .def(
          "encode",
          [](const PyTokenizer& t, const std::string& text, bool add_special, bool parse_special) {
            py::gil_scoped_release release;
            return t.tok->Encode(text, add_special, parse_special);
          },
          py::arg("text"), py::arg("add_special") = false, py::arg("parse_special") = false)
      .def(
          "decode",
          [](const PyTokenizer& t, const std::vector<int32_t>& ids, bool skip_special) {
            for (int32_t id : ids) {
              if (id < 0 || id >= t.tok->vocab_size()) throw py::value_error("token id out of range");
            }
            return py::bytes(t.tok->Decode(ids, skip_special)).attr("decode")("utf-8", "replace");
          },
          py::arg("ids"), py::arg("skip_special") = false)
      .def_property_readonly("vocab_size", [](const PyTokenizer& t) { return t.tok->vocab_size(); });

  py::class_<PyDetector>(m, "Detector")
      .def(py::init<const PyKeyring&, const PyTokenizer&, double, const std::vector<uint64_t>&>(),
           py::arg("keyring"), py::arg("tokenizer"), py::arg("threshold") = wm::kDefaultThreshold,
           py::arg("suspects") = std::vector<uint64_t>{})
      .def("detect", &PyDetector::DetectText, py::arg("text"),
           "Detects the watermark in a text; the dict of `tracemark detect --json`.")
      .def("detect", &PyDetector::DetectIds, py::arg("ids"),
           "Detects the watermark in token ids (no placeholder mask).");

  py::class_<PyScanner>(m, "Scanner")
      .def(py::init<const std::string&, const std::string&, double, bool, int, const std::vector<uint64_t>&,
                    double>(),
           py::arg("keyring"), py::arg("model"), py::arg("threshold") = 1e-6,
           py::arg("mask_placeholders") = true, py::arg("threads") = 1,
           py::arg("suspects") = std::vector<uint64_t>{}, py::arg("max_token_prob") = 0.0)
      .def("scan_batch", &PyScanner::ScanBatch, py::arg("texts"),
           "Scores texts on the scanner's threads (GIL released); one dict per text.")
      .def("scan_shard", &PyScanner::ScanShard, py::arg("paths"), py::arg("out"),
           py::arg("rank") = 0, py::arg("world_size") = 1, py::arg("field") = "text",
           py::arg("format") = "auto", py::arg("whole_file") = false, py::arg("all_roles") = false,
           "Runs one shard of `tracemark scan` (GIL released).")
      .def("merge", &PyScanner::Merge, py::arg("out"), "`tracemark scan merge` (GIL released).")
      .def_property_readonly("threads", &PyScanner::threads)
      .def_property_readonly("threshold", &PyScanner::threshold);
}
