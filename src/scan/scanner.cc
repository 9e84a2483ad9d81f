// The parallel scanner and the shard merge (see scanner.h, docs/formats/scan.md).
#include "tracemark/scan/scanner.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>
#include <tuple>

#include <nlohmann/json.hpp>

#include "fmt/format.h"
#include "tracemark/base/file.h"
#include "tracemark/scan/shard.h"

namespace tracemark::scan {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

constexpr char kTokensMagic[8] = {'T', 'M', 'S', 'C', 'A', 'N', 'T', '1'};
constexpr const char* kSummaryFormat = "tracemark-scan-summary/1";
constexpr const char* kErrScore = "score_error";
constexpr auto kProgressInterval = std::chrono::milliseconds(250);

const char* FormatName(InputFormat f) {
  switch (f) {
    case InputFormat::kText: return "text";
    case InputFormat::kJsonl: return "jsonl";
    case InputFormat::kAuto: break;
  }
  return "auto";
}

// An error with the index of its file, ordered by location.
struct ErrorEntry {
  uint32_t file = 0;
  ReadError error;
};

bool ErrorLess(const ErrorEntry& a, const ErrorEntry& b) {
  return std::tie(a.file, a.error.index, a.error.line, a.error.kind, a.error.message) <
         std::tie(b.file, b.error.index, b.error.line, b.error.kind, b.error.message);
}

Json ErrorJson(const std::vector<std::string>& files, const ErrorEntry& e) {
  Json j;
  j["file"] = files[e.file];
  j["file_index"] = e.file;
  j["record"] = e.error.index;
  j["line"] = e.error.line;
  j[e.error.offset_is_compressed ? "compressed_offset" : "offset"] = e.error.offset;
  j["kind"] = e.error.kind;
  j["message"] = e.error.message;
  return j;
}

struct Flagged {
  uint32_t file = 0;
  uint64_t record = 0;
  std::string row;  // one JSONL line, without '\n'
  std::optional<uint64_t> account;
  int key_version = 0;
  std::vector<int32_t> tokens;
  std::vector<uint8_t> skip_mask;  // empty or one byte per token
};

void AddCounts(const ScanCounts& from, ScanCounts* to) {
  to->documents += from.documents;
  to->bytes += from.bytes;
  to->tokens_scored += from.tokens_scored;
  to->flagged += from.flagged;
  to->errors += from.errors;
  for (const auto& [k, v] : from.errors_by_kind) to->errors_by_kind[k] += v;
  for (const auto& [k, v] : from.flagged_per_account) to->flagged_per_account[k] += v;
}

std::string AccountKey(const std::optional<uint64_t>& account) {
  return account ? std::to_string(*account) : std::string();
}

std::string RowJson(const std::vector<std::string>& files, uint32_t file, const Record& rec,
                    const DocScore& s) {
  Json j;
  j["doc_id"] = rec.doc_id;
  j["file"] = files[file];
  j["file_index"] = file;
  j["record"] = rec.index;
  j["line"] = rec.line;
  j["offset"] = rec.offset;
  j["tokens_scored"] = s.tokens_scored;
  j["p_value"] = s.p_value;
  j["log10_p_value"] = s.log10_p_value;
  j["account"] = s.account ? Json(std::to_string(*s.account)) : Json(nullptr);
  j["account_p_value"] = s.account_p_value;
  j["key_version"] = s.key_version;
  j["scheme"] = s.scheme;
  Json spans = Json::array();
  for (const ScoredSpan& sp : s.spans) {
    spans.push_back(Json{{"token_begin", sp.token_begin}, {"token_end", sp.token_end},
                         {"byte_begin", sp.byte_begin}, {"byte_end", sp.byte_end},
                         {"log10_p", sp.log10_p}});
  }
  j["spans"] = std::move(spans);
  return j.dump();
}

// Serializes counts and errors; rank/world only for shard summaries.
Json SummaryJson(const std::string& job_text, const std::vector<std::string>& files,
                 const ScanCounts& c, std::vector<ErrorEntry> errors, int rank, int world_size) {
  Json j;
  j["format"] = kSummaryFormat;
  if (world_size > 0) {
    j["rank"] = rank;
    j["world_size"] = world_size;
  }
  j["job"] = Json::parse(job_text);
  j["documents_scanned"] = c.documents;
  j["bytes_scanned"] = c.bytes;
  j["tokens_scored"] = c.tokens_scored;
  j["documents_flagged"] = c.flagged;
  Json per_account = Json::object();
  uint64_t unattributed = 0;
  for (const auto& [k, v] : c.flagged_per_account) {
    if (k.empty()) {
      unattributed = v;
    } else {
      per_account[k] = v;
    }
  }
  j["flagged_per_account"] = std::move(per_account);
  j["flagged_unattributed"] = unattributed;
  Json err;
  err["total"] = c.errors;
  Json by_kind = Json::object();
  for (const auto& [k, v] : c.errors_by_kind) by_kind[k] = v;
  err["by_kind"] = std::move(by_kind);
  std::sort(errors.begin(), errors.end(), ErrorLess);
  const bool truncated = errors.size() > kMaxErrorsRecorded;
  if (truncated) errors.resize(kMaxErrorsRecorded);
  Json recorded = Json::array();
  for (const ErrorEntry& e : errors) recorded.push_back(ErrorJson(files, e));
  err["recorded"] = std::move(recorded);
  err["recorded_truncated"] = truncated;
  j["errors"] = std::move(err);
  return j;
}

Result<ScanCounts> CountsFromSummary(const Json& j, std::vector<ErrorEntry>* errors) {
  ScanCounts c;
  try {
    c.documents = j.at("documents_scanned").get<uint64_t>();
    c.bytes = j.at("bytes_scanned").get<uint64_t>();
    c.tokens_scored = j.at("tokens_scored").get<uint64_t>();
    c.flagged = j.at("documents_flagged").get<uint64_t>();
    for (const auto& [k, v] : j.at("flagged_per_account").items()) {
      c.flagged_per_account[k] = v.get<uint64_t>();
    }
    const uint64_t unattributed = j.at("flagged_unattributed").get<uint64_t>();
    if (unattributed > 0) c.flagged_per_account[""] = unattributed;
    const Json& err = j.at("errors");
    c.errors = err.at("total").get<uint64_t>();
    for (const auto& [k, v] : err.at("by_kind").items()) c.errors_by_kind[k] = v.get<uint64_t>();
    if (errors != nullptr) {
      for (const Json& e : err.at("recorded")) {
        ErrorEntry entry;
        entry.file = e.at("file_index").get<uint32_t>();
        entry.error.index = e.at("record").get<uint64_t>();
        entry.error.line = e.at("line").get<uint64_t>();
        entry.error.offset_is_compressed = e.contains("compressed_offset");
        entry.error.offset =
            e.at(entry.error.offset_is_compressed ? "compressed_offset" : "offset").get<uint64_t>();
        entry.error.kind = e.at("kind").get<std::string>();
        entry.error.message = e.at("message").get<std::string>();
        errors->push_back(std::move(entry));
      }
    }
  } catch (const Json::exception& e) {
    return InvalidArgument(fmt::format("malformed shard summary: {}", e.what()));
  }
  return c;
}

// A bounded multi-consumer queue of document batches.
struct Batch {
  std::vector<std::pair<uint32_t, Record>> items;
  size_t bytes = 0;
};

class BatchQueue {
 public:
  explicit BatchQueue(size_t capacity) : capacity_(capacity) {}
  // Blocks while full; returns false once aborted.
  bool Push(Batch batch) {
    std::unique_lock<std::mutex> lock(mu_);
    not_full_.wait(lock, [&] { return q_.size() < capacity_ || aborted_; });
    if (aborted_) return false;
    q_.push_back(std::move(batch));
    not_empty_.notify_one();
    return true;
  }
  // Blocks while empty; returns false when closed and drained, or aborted.
  bool Pop(Batch* batch) {
    std::unique_lock<std::mutex> lock(mu_);
    not_empty_.wait(lock, [&] { return !q_.empty() || closed_ || aborted_; });
    if (aborted_ || q_.empty()) return false;
    *batch = std::move(q_.front());
    q_.pop_front();
    not_full_.notify_one();
    return true;
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    not_empty_.notify_all();
  }
  void Abort() {
    std::lock_guard<std::mutex> lock(mu_);
    aborted_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable not_full_, not_empty_;
  std::deque<Batch> q_;
  size_t capacity_;
  bool closed_ = false;
  bool aborted_ = false;
};

// What one worker produced.
struct WorkerOutput {
  ScanCounts counts;
  std::vector<Flagged> flagged;
  std::vector<ErrorEntry> errors;
  Status status;
};

std::string HumanBytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) {
    b /= 1000;
    ++u;
  }
  return fmt::format("{:.1f} {}", b, units[u]);
}

std::string HumanSeconds(double s) {
  if (!(s >= 0) || s > 1e7) return "?";
  const auto t = static_cast<long>(s);
  if (t >= 3600) return fmt::format("{}h{:02d}m", t / 3600, (t / 60) % 60);
  return fmt::format("{}m{:02d}s", t / 60, t % 60);
}

// A one-line progress bar on stderr, redrawn from its own thread.
class Progress {
 public:
  Progress(bool enabled, uint64_t total_bytes) : enabled_(enabled), total_(total_bytes) {
    if (enabled_) thread_ = std::thread([this] { Loop(); });
  }
  ~Progress() { Stop(); }
  void Stop() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    Draw();
    std::fputc('\n', stderr);
  }
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> docs{0};

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, kProgressInterval, [&] { return stop_; })) Draw();
  }
  void Draw() {
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const uint64_t b = bytes.load(), d = docs.load();
    const double frac = total_ > 0 ? std::min(1.0, static_cast<double>(b) / total_) : 0.0;
    constexpr int kWidth = 24;
    const int filled = static_cast<int>(frac * kWidth);
    std::string bar(filled, '#');
    bar.append(kWidth - filled, '.');
    const double eta = frac > 0 ? secs * (1 - frac) / frac : -1;
    std::fprintf(stderr, "\r[%s] %5.1f%% %s / %s  %.0f docs/s  ETA %s   ", bar.c_str(), frac * 100,
                 HumanBytes(static_cast<double>(b)).c_str(),
                 HumanBytes(static_cast<double>(total_)).c_str(), secs > 0 ? d / secs : 0.0,
                 HumanSeconds(eta).c_str());
    std::fflush(stderr);
  }
  bool enabled_;
  uint64_t total_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
};

void Worker(ScorerFactory& scorers, const std::vector<std::string>& files, double threshold,
            BatchQueue& queue, Progress& progress, WorkerOutput* out) {
  Result<std::unique_ptr<DocumentScorer>> scorer = scorers.NewScorer();
  if (!scorer.ok()) {
    out->status = scorer.status();
    queue.Abort();
    return;
  }
  Batch batch;
  while (queue.Pop(&batch)) {
    for (auto& [file, rec] : batch.items) {
      Result<DocScore> r = (*scorer)->Score(rec.text);
      if (!r.ok()) {
        out->counts.errors++;
        out->counts.errors_by_kind[kErrScore]++;
        out->errors.push_back(ErrorEntry{
            file, ReadError{kErrScore, rec.index, rec.line, rec.offset, false, r.status().message()}});
        continue;
      }
      DocScore& s = *r;
      out->counts.documents++;
      out->counts.bytes += rec.text.size();
      out->counts.tokens_scored += static_cast<uint64_t>(std::max<int64_t>(s.tokens_scored, 0));
      if (s.p_value < threshold) {
        out->counts.flagged++;
        out->counts.flagged_per_account[AccountKey(s.account)]++;
        Flagged f;
        f.file = file;
        f.record = rec.index;
        f.row = RowJson(files, file, rec, s);
        f.account = s.account;
        f.key_version = s.key_version;
        f.tokens = std::move(s.tokens);
        if (s.skip_mask.size() == f.tokens.size()) f.skip_mask = std::move(s.skip_mask);
        out->flagged.push_back(std::move(f));
      }
    }
    progress.docs += batch.items.size();
  }
}

void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

Status EnsureDirs(const std::string& out_dir) {
  std::error_code ec;
  for (const char* sub : {"shards", "completions"}) {
    fs::create_directories(fs::path(out_dir) / sub, ec);
    if (ec) return IoError(fmt::format("cannot create {}/{}: {}", out_dir, sub, ec.message()));
  }
  return Status::Ok();
}

struct Paths {
  std::string results, tokens, summary, completion;
};

Paths ShardPaths(const std::string& out_dir, int rank, int world_size) {
  const std::string name = ShardName(rank, world_size);
  const fs::path dir(out_dir);
  return Paths{(dir / "shards" / (name + ".results.jsonl")).string(),
               (dir / "shards" / (name + ".tokens.bin")).string(),
               (dir / "shards" / (name + ".summary.json")).string(),
               (dir / "completions" / name).string()};
}

// Reads tokens.bin: entries in results order.
struct TokenEntry {
  uint32_t file;
  uint64_t record;
  std::vector<int32_t> tokens;
  std::vector<uint8_t> skip_mask;
};

Result<std::vector<TokenEntry>> ReadTokens(const std::string& path) {
  TM_ASSIGN_OR_RETURN(std::string data, ReadFile(path, kMaxShardFileBytes));
  std::vector<TokenEntry> out;
  if (data.size() < 8 || std::memcmp(data.data(), kTokensMagic, 8) != 0) {
    return InvalidArgument(fmt::format("{}: not a tracemark scan tokens file", path));
  }
  size_t pos = 8;
  auto get = [&](size_t n, uint64_t* v) {
    if (data.size() - pos < n) return false;
    *v = 0;
    for (size_t i = 0; i < n; ++i) *v |= static_cast<uint64_t>(static_cast<uint8_t>(data[pos + i])) << (8 * i);
    pos += n;
    return true;
  };
  while (pos < data.size()) {
    uint64_t file, record, n;
    if (!get(8, &file) || !get(8, &record) || !get(4, &n) || (data.size() - pos) / 5 < n) {
      return InvalidArgument(fmt::format("{}: truncated at byte {}", path, pos));
    }
    TokenEntry e{static_cast<uint32_t>(file), record, std::vector<int32_t>(n), {}};
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t v = 0;
      get(4, &v);
      e.tokens[i] = static_cast<int32_t>(static_cast<uint32_t>(v));
    }
    e.skip_mask.assign(data.begin() + static_cast<ptrdiff_t>(pos),
                       data.begin() + static_cast<ptrdiff_t>(pos + n));
    pos += n;
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

std::string JobDescription(const ScanJob& job, const ScorerFactory& scorers) {
  Json j;
  j["files"] = job.files;
  j["format"] = FormatName(job.records.format);
  j["whole_file"] = job.records.whole_file;
  j["field"] = job.records.field;
  j["all_roles"] = job.records.all_roles;
  const ReaderLimits& l = job.records.limits;
  j["limits"] = Json{{"max_line_bytes", l.max_line_bytes},
                     {"max_document_bytes", l.max_document_bytes},
                     {"max_decompressed_bytes", l.max_decompressed_bytes},
                     {"max_compression_ratio", l.max_compression_ratio},
                     {"max_json_depth", l.max_json_depth}};
  j["threshold"] = job.threshold;
  j["scorer"] = scorers.Identity();
  return j.dump();
}

Result<ShardReport> RunShard(const ScanJob& job, const ShardOptions& options,
                             ScorerFactory& scorers) {
  if (options.threads < 1 || options.threads > kMaxThreads) {
    return InvalidArgument(fmt::format("--threads must be in [1, {}]", kMaxThreads));
  }
  if (job.files.size() > UINT32_MAX) return InvalidArgument("too many input files");
  TM_ASSIGN_OR_RETURN(ShardPlan plan,
                      ShardPlan::Create(options.rank, options.world_size, job.files.size()));
  TM_RETURN_IF_ERROR(EnsureDirs(options.out_dir));
  const Paths paths = ShardPaths(options.out_dir, options.rank, options.world_size);
  const std::string job_text = JobDescription(job, scorers);

  ShardReport report;
  std::error_code ec;
  if (fs::exists(paths.completion, ec)) {
    TM_ASSIGN_OR_RETURN(std::string marker, ReadFile(paths.completion, kMaxManifestBytes));
    if (marker != job_text + "\n") {
      return InvalidArgument(fmt::format(
          "{} holds the results of a different scan job (other inputs, options, keys or model); "
          "use a fresh --out directory",
          options.out_dir));
    }
    TM_ASSIGN_OR_RETURN(std::string summary, ReadFile(paths.summary, kMaxShardFileBytes));
    Json sj = Json::parse(summary, nullptr, /*allow_exceptions=*/false);
    if (sj.is_discarded()) return InvalidArgument(fmt::format("{} is not JSON", paths.summary));
    TM_ASSIGN_OR_RETURN(report.counts, CountsFromSummary(sj, nullptr));
    report.skipped = true;
    return report;
  }

  uint64_t total_bytes = 0;
  for (size_t f = 0; f < job.files.size(); ++f) {
    if (plan.ReadsFile(f)) total_bytes += fs::file_size(job.files[f], ec) * (ec ? 0 : 1);
  }
  Progress progress(options.progress, total_bytes);

  BatchQueue queue(static_cast<size_t>(options.threads) * kQueueBatchesPerThread);
  std::vector<WorkerOutput> outputs(options.threads);
  std::vector<std::thread> workers;
  workers.reserve(options.threads);
  for (int t = 0; t < options.threads; ++t) {
    workers.emplace_back(Worker, std::ref(scorers), std::cref(job.files), job.threshold,
                         std::ref(queue), std::ref(progress), &outputs[t]);
  }

  // The reader: this thread, in (file, record) order.
  ScanCounts read_counts;
  std::vector<ErrorEntry> read_errors;
  auto add_error = [&](uint32_t file, ReadError e) {
    read_counts.errors++;
    read_counts.errors_by_kind[e.kind]++;
    read_errors.push_back(ErrorEntry{file, std::move(e)});
  };
  Batch batch;
  bool aborted = false;
  uint64_t bytes_done = 0;
  for (size_t f = 0; f < job.files.size() && !aborted; ++f) {
    if (!plan.ReadsFile(f)) continue;
    const auto file = static_cast<uint32_t>(f);
    Result<std::unique_ptr<RecordReader>> reader = RecordReader::OpenFile(job.files[f], job.records);
    if (!reader.ok()) {
      if (plan.Owns(f, 0)) {
        const Status& s = reader.status();
        add_error(file, ReadError{kErrOpen, 0, 0, 0, false, s.message()});
      }
      continue;
    }
    const RecordReader::Filter wanted = [&plan, f](uint64_t index) { return plan.Owns(f, index); };
    Record rec;
    ReadError err;
    for (;;) {
      const RecordReader::Outcome o = (*reader)->Next(wanted, &rec, &err);
      if (o == RecordReader::Outcome::kEnd) break;
      if (o == RecordReader::Outcome::kError) {
        if (plan.Owns(f, err.index)) add_error(file, std::move(err));
        continue;
      }
      batch.bytes += rec.text.size();
      batch.items.emplace_back(file, std::move(rec));
      rec = Record{};
      if (batch.items.size() >= kBatchDocs || batch.bytes >= kBatchBytes) {
        progress.bytes = bytes_done + (*reader)->raw_offset();
        if (!queue.Push(std::move(batch))) {
          aborted = true;
          break;
        }
        batch = Batch{};
      }
    }
    bytes_done += (*reader)->raw_size();
    progress.bytes = bytes_done;
  }
  if (!aborted && !batch.items.empty()) queue.Push(std::move(batch));
  queue.Close();
  for (std::thread& t : workers) t.join();
  progress.Stop();
  for (const WorkerOutput& o : outputs) {
    if (!o.status.ok()) return o.status.WithContext("cannot build a document scorer");
  }

  // Gather in a deterministic order.
  ScanCounts counts = read_counts;
  std::vector<ErrorEntry> errors = std::move(read_errors);
  std::vector<Flagged> flagged;
  for (WorkerOutput& o : outputs) {
    AddCounts(o.counts, &counts);
    for (ErrorEntry& e : o.errors) errors.push_back(std::move(e));
    for (Flagged& fl : o.flagged) flagged.push_back(std::move(fl));
  }
  std::sort(flagged.begin(), flagged.end(), [](const Flagged& a, const Flagged& b) {
    return std::tie(a.file, a.record) < std::tie(b.file, b.record);
  });
  std::string results, tokens(kTokensMagic, sizeof(kTokensMagic));
  for (const Flagged& fl : flagged) {
    results += fl.row;
    results += '\n';
    PutU64(&tokens, fl.file);
    PutU64(&tokens, fl.record);
    PutU32(&tokens, static_cast<uint32_t>(fl.tokens.size()));
    for (int32_t t : fl.tokens) PutU32(&tokens, static_cast<uint32_t>(t));
    if (fl.skip_mask.empty()) {
      tokens.append(fl.tokens.size(), '\0');
    } else {
      tokens.append(reinterpret_cast<const char*>(fl.skip_mask.data()), fl.skip_mask.size());
    }
  }
  const Json summary =
      SummaryJson(job_text, job.files, counts, std::move(errors), options.rank, options.world_size);
  TM_RETURN_IF_ERROR(WriteFileAtomic(paths.results, results));
  TM_RETURN_IF_ERROR(WriteFileAtomic(paths.tokens, tokens));
  TM_RETURN_IF_ERROR(WriteFileAtomic(paths.summary, summary.dump(2) + "\n"));
  // Last: the marker that makes the three files above count.
  TM_RETURN_IF_ERROR(WriteFileAtomic(paths.completion, job_text + "\n"));
  report.counts = std::move(counts);
  return report;
}

Result<MergeReport> MergeShards(const std::string& out_dir, PoolFactory* pools) {
  const fs::path completions = fs::path(out_dir) / "completions";
  std::error_code ec;
  if (!fs::is_directory(completions, ec)) {
    return NotFound(fmt::format("{} has no completions/ folder: run `tracemark scan` first", out_dir));
  }
  int world = 0;
  std::vector<bool> have;
  for (const auto& entry : fs::directory_iterator(completions, ec)) {
    const std::string name = entry.path().filename().string();
    int r = 0, w = 0;
    if (name.size() != 14 || std::sscanf(name.c_str(), "%5d-of-%5d", &r, &w) != 2 ||
        ShardName(r, w) != name || w < 1 || r >= w) {
      continue;  // temp files and strangers
    }
    if (world != 0 && w != world) {
      return InvalidArgument(fmt::format(
          "{} holds shards of world sizes {} and {}; use one --out directory per world size",
          out_dir, world, w));
    }
    world = w;
    have.resize(w, false);
    have[r] = true;
  }
  if (ec) return IoError(fmt::format("cannot list {}: {}", completions.string(), ec.message()));
  if (world == 0) return NotFound(fmt::format("{} holds no completed shard", out_dir));
  std::string missing;
  for (int r = 0; r < world; ++r) {
    if (!have[r]) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
  }
  if (!missing.empty()) {
    return InvalidArgument(fmt::format("ranks {} of world size {} are not complete; run them first",
                                       missing, world));
  }

  std::string job_text;
  ScanCounts counts;
  std::vector<ErrorEntry> errors;
  struct Row {
    uint32_t file;
    uint64_t record;
    std::string line;
    std::optional<uint64_t> account;
    int key_version;
    std::vector<int32_t> tokens;
    std::vector<uint8_t> skip_mask;
  };
  std::vector<Row> rows;
  for (int r = 0; r < world; ++r) {
    const Paths paths = ShardPaths(out_dir, r, world);
    TM_ASSIGN_OR_RETURN(std::string marker, ReadFile(paths.completion, kMaxManifestBytes));
    if (r == 0) {
      job_text = marker;
    } else if (marker != job_text) {
      return InvalidArgument(fmt::format("shard {} belongs to a different scan job", ShardName(r, world)));
    }
    TM_ASSIGN_OR_RETURN(std::string summary_text, ReadFile(paths.summary, kMaxShardFileBytes));
    Json sj = Json::parse(summary_text, nullptr, false);
    if (sj.is_discarded()) return InvalidArgument(fmt::format("{} is not JSON", paths.summary));
    Result<ScanCounts> c = CountsFromSummary(sj, &errors);
    if (!c.ok()) return c.status().WithContext(paths.summary);
    AddCounts(*c, &counts);
    TM_ASSIGN_OR_RETURN(std::string results, ReadFile(paths.results, kMaxShardFileBytes));
    TM_ASSIGN_OR_RETURN(std::vector<TokenEntry> tokens, ReadTokens(paths.tokens));
    size_t pos = 0, k = 0;
    while (pos < results.size()) {
      size_t nl = results.find('\n', pos);
      if (nl == std::string::npos) nl = results.size();
      Row row;
      row.line = results.substr(pos, nl - pos);
      pos = nl + 1;
      Json j = Json::parse(row.line, nullptr, false);
      if (j.is_discarded() || !j.is_object() || k >= tokens.size()) {
        return InvalidArgument(fmt::format("{}: malformed row {}", paths.results, k + 1));
      }
      try {
        row.file = j.at("file_index").get<uint32_t>();
        row.record = j.at("record").get<uint64_t>();
        row.key_version = j.at("key_version").get<int>();
        if (!j.at("account").is_null()) row.account = std::stoull(j.at("account").get<std::string>());
      } catch (const std::exception& e) {
        return InvalidArgument(fmt::format("{}: malformed row {}: {}", paths.results, k + 1, e.what()));
      }
      if (tokens[k].file != row.file || tokens[k].record != row.record) {
        return InvalidArgument(fmt::format("{} does not match {}", paths.tokens, paths.results));
      }
      row.tokens = std::move(tokens[k].tokens);
      row.skip_mask = std::move(tokens[k].skip_mask);
      ++k;
      rows.push_back(std::move(row));
    }
    if (k != tokens.size()) {
      return InvalidArgument(fmt::format("{} does not match {}", paths.tokens, paths.results));
    }
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return std::tie(a.file, a.record) < std::tie(b.file, b.record);
  });
  if (!job_text.empty() && job_text.back() == '\n') job_text.pop_back();
  Json job = Json::parse(job_text, nullptr, false);
  if (job.is_discarded()) return InvalidArgument("completion marker is not JSON");
  std::vector<std::string> files;
  try {
    files = job.at("files").get<std::vector<std::string>>();
  } catch (const std::exception& e) {
    return InvalidArgument(fmt::format("completion marker: {}", e.what()));
  }
  for (const ErrorEntry& e : errors) {
    if (e.file >= files.size()) return InvalidArgument("shard summary names an unknown file");
  }

  if (pools != nullptr && (!job.contains("scorer") || job["scorer"] != pools->Identity())) {
    return InvalidArgument(
        "the keyring or model given to merge differ from the ones the shards were scanned with");
  }
  Json summary = SummaryJson(job_text, files, counts, std::move(errors), 0, 0);
  Json corpus;
  corpus["pooled"] = pools != nullptr;
  Json accounts = Json::array();
  if (pools != nullptr) {
    std::map<std::pair<uint64_t, int>, std::pair<std::unique_ptr<CorpusPool>, uint64_t>> by_account;
    for (const Row& row : rows) {
      if (!row.account) continue;
      auto& slot = by_account[{*row.account, row.key_version}];
      if (!slot.first) {
        TM_ASSIGN_OR_RETURN(slot.first, pools->NewPool(*row.account, row.key_version));
      }
      slot.first->AddDocument(row.tokens, row.skip_mask);
      slot.second++;
    }
    for (const auto& [key, slot] : by_account) {
      const double log10_p = slot.first->log10_p_value();
      accounts.push_back(Json{{"account", std::to_string(key.first)},
                              {"key_version", key.second},
                              {"documents", slot.second},
                              {"tuples", slot.first->tuples()},
                              {"log10_p_value", log10_p},
                              {"p_value", std::max(std::pow(10.0, log10_p), std::numeric_limits<double>::min())}});
    }
  }
  corpus["accounts"] = std::move(accounts);
  summary["corpus"] = std::move(corpus);

  std::string results;
  for (const Row& row : rows) {
    results += row.line;
    results += '\n';
  }
  TM_RETURN_IF_ERROR(WriteFileAtomic((fs::path(out_dir) / "results.jsonl").string(), results));
  TM_RETURN_IF_ERROR(
      WriteFileAtomic((fs::path(out_dir) / "summary.json").string(), summary.dump(2) + "\n"));
  MergeReport report;
  report.world_size = world;
  report.counts = std::move(counts);
  return report;
}

}  // namespace tracemark::scan
