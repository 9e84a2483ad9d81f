// The parallel scanner and the shard merge (see scanner.h, docs/formats/scan.md).
#include "tracemark/scan/scanner.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
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
#include <queue>
#include <thread>
#include <tuple>
#include <utility>

#include <nlohmann/json.hpp>

#include "fmt/format.h"
#include "tracemark/base/file.h"
#include "tracemark/scan/shard.h"

namespace tracemark::scan {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

constexpr char kPoolMagic[8] = {'T', 'M', 'S', 'C', 'A', 'N', 'P', '1'};
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
};

void AddCounts(const ScanCounts& from, ScanCounts* to) {
  to->documents += from.documents;
  to->bytes += from.bytes;
  to->tokens_scored += from.tokens_scored;
  to->flagged += from.flagged;
  to->errors += from.errors;
  for (const auto& [k, v] : from.errors_by_kind) to->errors_by_kind[k] += v;
  for (const auto& [k, v] : from.flagged_per_account) to->flagged_per_account[k] += v;
  to->flagged_unattributed += from.flagged_unattributed;
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
  j["account"] = s.account ? Json(*s.account) : Json(nullptr);
  j["account_p_value"] = s.account_p_value;
  if (s.suspects_tested > 0) {  // scan --suspects (docs/formats/scan.md)
    j["targeted_log10_p"] = s.targeted_log10_p;
    j["targeted_suspect"] = s.targeted_suspect ? Json(*s.targeted_suspect) : Json(nullptr);
  }
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
  Json per_account = Json::array();
  for (const auto& [k, v] : c.flagged_per_account) {
    per_account.push_back(Json{{"account", k}, {"documents", v}});
  }
  j["flagged_per_account"] = std::move(per_account);
  j["flagged_unattributed"] = c.flagged_unattributed;
  j["pool_tuples"] = c.pool_tuples;
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
    for (const Json& e : j.at("flagged_per_account")) {
      c.flagged_per_account[e.at("account").get<uint64_t>()] += e.at("documents").get<uint64_t>();
    }
    c.flagged_unattributed = j.at("flagged_unattributed").get<uint64_t>();
    c.pool_tuples = j.at("pool_tuples").get<uint64_t>();
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

// ---- Pool tuples: sorted, de-duplicated runs on disk and their k-way union. ----

void SortUnique(std::vector<PoolTuple>* v) {
  std::sort(v->begin(), v->end(), PoolTupleLess);
  v->erase(std::unique(v->begin(), v->end()), v->end());
}

Status FsyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return IoError(fmt::format("cannot open {}: {}", dir, std::strerror(errno)));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return IoError(fmt::format("fsync {}: {}", dir, std::strerror(errno)));
  return Status::Ok();
}

// A file written in pieces, then made visible atomically (temp + fsync + rename + dir fsync).
class StreamingFile {
 public:
  static Result<StreamingFile> Create(const std::string& path) {
    StreamingFile f;
    f.path_ = path;
    f.tmp_ = path + ".tmp";
    f.file_ = std::fopen(f.tmp_.c_str(), "wb");
    if (f.file_ == nullptr) {
      return IoError(fmt::format("cannot create {}: {}", f.tmp_, std::strerror(errno)));
    }
    return f;
  }
  StreamingFile(StreamingFile&& o) noexcept
      : path_(std::move(o.path_)), tmp_(std::move(o.tmp_)), file_(std::exchange(o.file_, nullptr)) {}
  StreamingFile& operator=(StreamingFile&&) = delete;
  ~StreamingFile() {
    if (file_ != nullptr) {
      std::fclose(file_);
      std::remove(tmp_.c_str());
    }
  }
  Status Write(const void* data, size_t n) {
    if (n > 0 && std::fwrite(data, 1, n, file_) != n) {
      return IoError(fmt::format("writing {} failed: {}", tmp_, std::strerror(errno)));
    }
    return Status::Ok();
  }
  // atomic=false: a scratch file (no fsync, no rename).
  Status Commit(bool atomic) {
    const bool ok = std::fflush(file_) == 0 && (!atomic || ::fsync(fileno(file_)) == 0);
    const bool closed = std::fclose(file_) == 0;
    file_ = nullptr;
    if (!ok || !closed) {
      std::remove(tmp_.c_str());
      return IoError(fmt::format("writing {} failed: {}", tmp_, std::strerror(errno)));
    }
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
      std::remove(tmp_.c_str());
      return IoError(fmt::format("cannot rename {}: {}", tmp_, std::strerror(errno)));
    }
    if (!atomic) return Status::Ok();
    return FsyncDir(fs::path(path_).parent_path().string());
  }

 private:
  StreamingFile() = default;
  std::string path_, tmp_;
  FILE* file_ = nullptr;
};

// Little-endian bytes of a tuple (the in-memory layout on the x86-64/aarch64 hosts we build
// for; asserted at compile time below).
static_assert(std::endian::native == std::endian::little, "tuples files are little-endian");

// Reads a sorted run of tuples: an in-memory vector, or a file from `offset` on.
class TupleStream {
 public:
  explicit TupleStream(const std::vector<PoolTuple>* memory) : memory_(memory) {}
  static Result<std::unique_ptr<TupleStream>> Open(const std::string& path, bool with_magic) {
    auto s = std::unique_ptr<TupleStream>(new TupleStream(nullptr));
    s->path_ = path;
    s->file_ = std::fopen(path.c_str(), "rb");
    if (s->file_ == nullptr) {
      return IoError(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
    }
    if (with_magic) {
      char magic[sizeof(kPoolMagic)];
      if (std::fread(magic, 1, sizeof(magic), s->file_) != sizeof(magic) ||
          std::memcmp(magic, kPoolMagic, sizeof(magic)) != 0) {
        return InvalidArgument(fmt::format("{}: not a tracemark scan tuples file", path));
      }
    }
    s->buffer_.resize(kPoolReadBufferTuples);
    return s;
  }
  ~TupleStream() {
    if (file_ != nullptr) std::fclose(file_);
  }
  TupleStream(const TupleStream&) = delete;
  TupleStream& operator=(const TupleStream&) = delete;

  // Next tuple, or false at the end (check status()).
  bool Next(PoolTuple* t) {
    if (memory_ != nullptr) {
      if (pos_ >= memory_->size()) return false;
      *t = (*memory_)[pos_++];
      return true;
    }
    if (pos_ == size_) {
      if (file_ == nullptr || !status_.ok()) return false;
      const size_t got = std::fread(buffer_.data(), 1, buffer_.size() * sizeof(PoolTuple), file_);
      if (got % sizeof(PoolTuple) != 0) {
        status_ = InvalidArgument(fmt::format("{}: truncated tuple", path_));
        return false;
      }
      if (got == 0) {
        if (std::ferror(file_) != 0) status_ = IoError(fmt::format("reading {} failed", path_));
        return false;
      }
      size_ = got / sizeof(PoolTuple);
      pos_ = 0;
    }
    *t = buffer_[pos_++];
    if (t->lane > kPoolAccountLane || t->reserved != 0 || (have_last_ && !PoolTupleLess(last_, *t))) {
      status_ = InvalidArgument(fmt::format("{}: tuples are not sorted and unique", path_));
      return false;
    }
    last_ = *t;
    have_last_ = true;
    return true;
  }
  const Status& status() const { return status_; }

 private:
  const std::vector<PoolTuple>* memory_;
  std::string path_;
  FILE* file_ = nullptr;
  std::vector<PoolTuple> buffer_;
  size_t pos_ = 0, size_ = 0;
  PoolTuple last_;
  bool have_last_ = false;
  Status status_;
};

// Calls f(tuple) once per distinct tuple of the union of sorted runs, in PoolTupleLess order.
template <typename F>
Status UnionRuns(const std::vector<TupleStream*>& runs, F&& f) {
  struct Head {
    PoolTuple t;
    size_t run;
  };
  auto greater = [](const Head& a, const Head& b) {
    if (PoolTupleLess(b.t, a.t)) return true;
    if (PoolTupleLess(a.t, b.t)) return false;
    return a.run > b.run;
  };
  std::priority_queue<Head, std::vector<Head>, decltype(greater)> heap(greater);
  for (size_t r = 0; r < runs.size(); ++r) {
    PoolTuple t;
    if (runs[r]->Next(&t)) heap.push(Head{t, r});
    TM_RETURN_IF_ERROR(runs[r]->status());
  }
  bool have_last = false;
  PoolTuple last;
  while (!heap.empty()) {
    const Head h = heap.top();
    heap.pop();
    if (!have_last || !(h.t == last)) {
      TM_RETURN_IF_ERROR(f(h.t));
      last = h.t;
      have_last = true;
    }
    PoolTuple t;
    if (runs[h.run]->Next(&t)) heap.push(Head{t, h.run});
    TM_RETURN_IF_ERROR(runs[h.run]->status());
  }
  return Status::Ok();
}

// One worker's pool tuples: a bounded buffer, spilled as sorted unique runs when full.
class PoolSpill {
 public:
  PoolSpill(std::string prefix, size_t max_tuples) : prefix_(std::move(prefix)), max_(max_tuples) {}
  ~PoolSpill() {
    for (const std::string& f : files_) std::remove(f.c_str());
  }
  Status Add(std::span<const PoolTuple> tuples) {
    buffer_.insert(buffer_.end(), tuples.begin(), tuples.end());
    if (buffer_.size() < max_) return Status::Ok();
    SortUnique(&buffer_);
    // A buffer that de-duplicated well keeps collecting; spill when at least half full.
    if (buffer_.size() < max_ / 2) return Status::Ok();
    const std::string path = fmt::format("{}{}.run", prefix_, files_.size());
    TM_ASSIGN_OR_RETURN(StreamingFile f, StreamingFile::Create(path));
    files_.push_back(path);
    TM_RETURN_IF_ERROR(f.Write(buffer_.data(), buffer_.size() * sizeof(PoolTuple)));
    TM_RETURN_IF_ERROR(f.Commit(/*atomic=*/false));
    buffer_.clear();
    return Status::Ok();
  }
  void Finish() { SortUnique(&buffer_); }
  const std::vector<std::string>& files() const { return files_; }
  const std::vector<PoolTuple>& buffer() const { return buffer_; }

 private:
  std::string prefix_;
  size_t max_;
  std::vector<PoolTuple> buffer_;
  std::vector<std::string> files_;
};

// What one worker produced.
struct WorkerOutput {
  ScanCounts counts;
  std::vector<Flagged> flagged;
  std::vector<ErrorEntry> errors;
  std::unique_ptr<PoolSpill> pool;
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
      if (Status st = out->pool->Add(s.pool_tuples); !st.ok()) {
        out->status = std::move(st);
        queue.Abort();
        return;
      }
      out->counts.documents++;
      out->counts.bytes += rec.text.size();
      out->counts.tokens_scored += static_cast<uint64_t>(std::max<int64_t>(s.tokens_scored, 0));
      if (s.p_value < threshold) {
        out->counts.flagged++;
        if (s.account) {
          out->counts.flagged_per_account[*s.account]++;
        } else {
          out->counts.flagged_unattributed++;
        }
        out->flagged.push_back(Flagged{file, rec.index, RowJson(files, file, rec, s)});
      }
    }
    progress.docs += batch.items.size();
  }
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
  std::string results, tuples, summary, completion, spill_prefix;
};

Paths ShardPaths(const std::string& out_dir, int rank, int world_size) {
  const std::string name = ShardName(rank, world_size);
  const fs::path dir(out_dir);
  return Paths{(dir / "shards" / (name + ".results.jsonl")).string(),
               (dir / "shards" / (name + ".tuples.bin")).string(),
               (dir / "shards" / (name + ".summary.json")).string(),
               (dir / "completions" / name).string(),
               (dir / "shards" / (name + ".spill-")).string()};
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
  const size_t run_tuples =
      std::max(kMinPoolRunTuples, options.pool_memory_bytes / sizeof(PoolTuple) /
                                      static_cast<size_t>(options.threads));
  for (int t = 0; t < options.threads; ++t) {
    outputs[t].pool = std::make_unique<PoolSpill>(
        fmt::format("{}w{}-", paths.spill_prefix, t), run_tuples);
  }
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
    if (!o.status.ok()) return o.status.WithContext("scan worker failed");
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
  std::string results;
  for (const Flagged& fl : flagged) {
    results += fl.row;
    results += '\n';
  }
  // The shard's pool tuples: the union of every worker's runs, each tuple once.
  {
    std::vector<std::unique_ptr<TupleStream>> owned;
    std::vector<TupleStream*> runs;
    for (WorkerOutput& o : outputs) {
      o.pool->Finish();
      for (const std::string& f : o.pool->files()) {
        TM_ASSIGN_OR_RETURN(std::unique_ptr<TupleStream> run, TupleStream::Open(f, false));
        owned.push_back(std::move(run));
      }
      owned.push_back(std::make_unique<TupleStream>(&o.pool->buffer()));
    }
    for (auto& r : owned) runs.push_back(r.get());
    TM_ASSIGN_OR_RETURN(StreamingFile out, StreamingFile::Create(paths.tuples));
    TM_RETURN_IF_ERROR(out.Write(kPoolMagic, sizeof(kPoolMagic)));
    std::vector<PoolTuple> chunk;
    chunk.reserve(kPoolReadBufferTuples);
    uint64_t n = 0;
    TM_RETURN_IF_ERROR(UnionRuns(runs, [&](const PoolTuple& t) -> Status {
      chunk.push_back(t);
      ++n;
      if (chunk.size() == kPoolReadBufferTuples) {
        TM_RETURN_IF_ERROR(out.Write(chunk.data(), chunk.size() * sizeof(PoolTuple)));
        chunk.clear();
      }
      return Status::Ok();
    }));
    TM_RETURN_IF_ERROR(out.Write(chunk.data(), chunk.size() * sizeof(PoolTuple)));
    TM_RETURN_IF_ERROR(out.Commit(/*atomic=*/true));
    counts.pool_tuples = n;
  }
  outputs.clear();  // removes the spilled runs
  const Json summary =
      SummaryJson(job_text, job.files, counts, std::move(errors), options.rank, options.world_size);
  TM_RETURN_IF_ERROR(WriteFileAtomic(paths.results, results));
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
    size_t pos = 0, k = 0;
    while (pos < results.size()) {
      size_t nl = results.find('\n', pos);
      if (nl == std::string::npos) nl = results.size();
      Row row;
      row.line = results.substr(pos, nl - pos);
      pos = nl + 1;
      Json j = Json::parse(row.line, nullptr, false);
      if (j.is_discarded() || !j.is_object()) {
        return InvalidArgument(fmt::format("{}: malformed row {}", paths.results, k + 1));
      }
      try {
        row.file = j.at("file_index").get<uint32_t>();
        row.record = j.at("record").get<uint64_t>();
        row.key_version = j.at("key_version").get<int>();
        if (!j.at("account").is_null()) row.account = j.at("account").get<uint64_t>();
      } catch (const std::exception& e) {
        return InvalidArgument(fmt::format("{}: malformed row {}: {}", paths.results, k + 1, e.what()));
      }
      ++k;
      rows.push_back(std::move(row));
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
        "the keyring, model or scorer options (--max-token-prob, --suspects) given to merge differ "
        "from the ones the shards were scanned with");
  }
  // Accounts the flagged documents were attributed to, per key version; the most flagged first
  // when there are more than kMaxPooledAccounts.
  std::map<std::pair<int, uint64_t>, uint64_t> flagged_by_account;  // (version, account) -> docs
  for (const Row& row : rows) {
    if (row.account) flagged_by_account[{row.key_version, *row.account}]++;
  }
  if (flagged_by_account.size() > kMaxPooledAccounts) {
    std::vector<std::pair<uint64_t, std::pair<int, uint64_t>>> order;
    for (const auto& [k, v] : flagged_by_account) order.push_back({v, k});
    std::stable_sort(order.begin(), order.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    order.resize(kMaxPooledAccounts);
    flagged_by_account.clear();
    for (const auto& [v, k] : order) flagged_by_account[k] = v;
  }

  // The corpus-level pool: the union of the shards' sorted tuple sets, each tuple scored once,
  // summed in tuple order (so the same bytes for any sharding and thread count).
  struct LaneSum {
    std::unique_ptr<LaneScorer> scorer;
    double sum = 0;
    int64_t count = 0;
  };
  struct VersionPool {
    LaneSum provider;
    std::vector<std::pair<uint64_t, LaneSum>> accounts;  // sorted by account id
  };
  std::map<int, VersionPool> by_version;
  // The scan's suspects are pooled in every key version the corpus holds, attributed or not: the
  // list was fixed before the scan, so each suspect's pooled account-lane test is exact.
  const std::vector<uint64_t> suspects =
      pools != nullptr ? pools->PooledSuspects() : std::vector<uint64_t>{};
  // Sets up a version's provider lane and adds its suspects' lanes (kept sorted by account).
  auto open_version = [&](int version, VersionPool& vp) -> Status {
    TM_ASSIGN_OR_RETURN(vp.provider.scorer, pools->NewLaneScorer(version, std::nullopt));
    for (uint64_t account : suspects) {
      const auto at = std::lower_bound(vp.accounts.begin(), vp.accounts.end(), account,
                                       [](const auto& e, uint64_t a) { return e.first < a; });
      if (at != vp.accounts.end() && at->first == account) continue;
      LaneSum lane;
      TM_ASSIGN_OR_RETURN(lane.scorer, pools->NewLaneScorer(version, account));
      vp.accounts.emplace(at, account, std::move(lane));
    }
    return Status::Ok();
  };
  if (pools != nullptr) {
    for (const auto& [key, docs] : flagged_by_account) {
      VersionPool& vp = by_version[key.first];
      LaneSum lane;
      TM_ASSIGN_OR_RETURN(lane.scorer, pools->NewLaneScorer(key.first, key.second));
      vp.accounts.emplace_back(key.second, std::move(lane));
    }
    for (auto& [version, vp] : by_version) TM_RETURN_IF_ERROR(open_version(version, vp));
  }
  uint64_t union_tuples = 0;
  {
    std::vector<std::unique_ptr<TupleStream>> owned;
    std::vector<TupleStream*> runs;
    for (int r = 0; r < world; ++r) {
      TM_ASSIGN_OR_RETURN(std::unique_ptr<TupleStream> run,
                          TupleStream::Open(ShardPaths(out_dir, r, world).tuples, true));
      runs.push_back(run.get());
      owned.push_back(std::move(run));
    }
    int cached_version = -1;
    VersionPool* vp = nullptr;
    TM_RETURN_IF_ERROR(UnionRuns(runs, [&](const PoolTuple& t) -> Status {
      ++union_tuples;
      if (pools == nullptr) return Status::Ok();
      if (t.key_version != cached_version) {
        cached_version = t.key_version;
        vp = &by_version[t.key_version];
        if (!vp->provider.scorer) TM_RETURN_IF_ERROR(open_version(t.key_version, *vp));
      }
      if (t.lane == kPoolProviderLane) {
        vp->provider.sum += vp->provider.scorer->Score(t.context_hash, t.token);
        vp->provider.count++;
      } else {
        for (auto& [account, lane] : vp->accounts) {
          lane.sum += lane.scorer->Score(t.context_hash, t.token);
          lane.count++;
        }
      }
      return Status::Ok();
    }));
  }
  counts.pool_tuples = union_tuples;

  Json summary = SummaryJson(job_text, files, counts, std::move(errors), 0, 0);
  auto p_value = [](double log10_p) {
    return std::max(std::pow(10.0, log10_p), std::numeric_limits<double>::min());
  };
  Json corpus;
  corpus["pooled"] = pools != nullptr;
  Json provider = Json::array();
  Json accounts = Json::array();
  for (const auto& [version, vp] : by_version) {
    if (vp.provider.scorer) {
      const double log10_p = vp.provider.scorer->Log10Tail(vp.provider.sum, vp.provider.count);
      provider.push_back(Json{{"key_version", version},
                              {"tuples", vp.provider.count},
                              {"log10_p_value", log10_p},
                              {"p_value", p_value(log10_p)}});
    }
    for (const auto& [account, lane] : vp.accounts) {
      const double log10_p = lane.scorer->Log10Tail(lane.sum, lane.count);
      Json entry{{"account", account},
                 {"key_version", version},
                 {"flagged_documents", flagged_by_account[{version, account}]},
                 {"tuples", lane.count},
                 {"log10_p_value", log10_p},
                 {"p_value", p_value(log10_p)}};
      if (std::binary_search(suspects.begin(), suspects.end(), account)) entry["suspect"] = true;
      accounts.push_back(std::move(entry));
    }
  }
  corpus["provider"] = std::move(provider);
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
