// Group-commit usage journal: see include/tracemark/ledger/usage_journal.h.
#include "tracemark/ledger/usage_journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "tracemark/base/file.h"

namespace tracemark::ledger {
namespace {

// Frame: u32 little-endian payload length, u32 little-endian CRC-32 (zlib) of the payload, payload.
constexpr size_t kFrameHeader = 8;
constexpr const char* kSegmentPrefix = "usage-";
constexpr const char* kSegmentSuffix = ".wal";
// Replay never reads a segment larger than this.
constexpr size_t kMaxSegmentReadBytes = 256u << 20;

std::string SegmentPath(const std::string& dir, uint64_t n) {
  char name[64];
  std::snprintf(name, sizeof(name), "%s%012llu%s", kSegmentPrefix,
                static_cast<unsigned long long>(n), kSegmentSuffix);
  return dir + "/" + name;
}

void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

Status SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return IoError("usage journal: cannot open directory " + dir + ": " + std::strerror(errno));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return IoError("usage journal: fsync " + dir + ": " + std::strerror(errno));
  return Status::Ok();
}

// Creates segment `n` in `dir`, empty, with its directory entry on disk (so that the records
// later made durable by fdatasync can be found after a crash), and returns its descriptor.
Result<int> CreateSegment(const std::string& dir, uint64_t n) {
  const std::string path = SegmentPath(dir, n);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return IoError("usage journal: cannot create " + path + ": " + std::strerror(errno));
  if (Status s = SyncDir(dir); !s.ok()) {
    ::close(fd);
    return s;
  }
  return fd;
}

// Parses every complete, checksummed frame; stops at the first torn or corrupt one (it was never
// acknowledged: its fdatasync did not return before the crash).
std::vector<UsageRecord> ParseSegment(std::string_view data) {
  std::vector<UsageRecord> out;
  size_t pos = 0;
  while (pos + kFrameHeader <= data.size()) {
    const uint32_t len = GetU32(data.data() + pos);
    const uint32_t crc = GetU32(data.data() + pos + 4);
    if (len == 0 || len > kJournalMaxRecordBytes || pos + kFrameHeader + len > data.size()) break;
    const char* payload = data.data() + pos + kFrameHeader;
    const uint32_t actual = static_cast<uint32_t>(
        crc32(0L, reinterpret_cast<const Bytef*>(payload), static_cast<uInt>(len)));
    if (actual != crc) break;
    Result<UsageRecord> r = DecodeUsageRecord(std::string_view(payload, len));
    if (!r.ok()) break;
    out.push_back(std::move(r).value());
    pos += kFrameHeader + len;
  }
  return out;
}

}  // namespace

std::string EncodeUsageRecord(const UsageRecord& r) {
  nlohmann::json j;
  j["request_id"] = r.request_id;
  j["account_id"] = r.account_id;
  j["key_id"] = r.key_id;
  j["model"] = r.model;
  j["endpoint"] = r.endpoint;
  j["prompt_tokens"] = r.prompt_tokens;
  j["completion_tokens"] = r.completion_tokens;
  j["wm_scheme"] = r.wm_scheme;
  j["wm_key_version"] = r.wm_key_version;
  j["started_at_ms"] = r.started_at_ms;
  j["finished_at_ms"] = r.finished_at_ms;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<UsageRecord> DecodeUsageRecord(std::string_view payload) {
  nlohmann::json j = nlohmann::json::parse(payload, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgument("usage record is not a JSON object");
  UsageRecord r;
  try {
    r.request_id = j.at("request_id").get<std::string>();
    r.account_id = j.at("account_id").get<std::string>();
    r.key_id = j.at("key_id").get<std::string>();
    r.model = j.at("model").get<std::string>();
    r.endpoint = j.at("endpoint").get<std::string>();
    r.prompt_tokens = j.at("prompt_tokens").get<int64_t>();
    r.completion_tokens = j.at("completion_tokens").get<int64_t>();
    r.wm_scheme = j.at("wm_scheme").get<std::string>();
    r.wm_key_version = j.at("wm_key_version").get<int64_t>();
    r.started_at_ms = j.at("started_at_ms").get<int64_t>();
    r.finished_at_ms = j.at("finished_at_ms").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument(std::string("usage record: ") + e.what());
  }
  return r;
}

Result<std::unique_ptr<UsageJournal>> UsageJournal::Open(const std::string& dir, LedgerStore* store,
                                                         uint64_t* replayed, JournalSync sync) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return IoError("usage journal: cannot create " + dir + ": " + ec.message());
  // Replay leftovers in segment order.
  std::vector<std::pair<uint64_t, std::string>> segments;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(kSegmentPrefix, 0) != 0 || name.size() < 5 ||
        name.substr(name.size() - 4) != kSegmentSuffix) {
      continue;
    }
    const std::string digits = name.substr(std::strlen(kSegmentPrefix),
                                           name.size() - std::strlen(kSegmentPrefix) - 4);
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) continue;
    segments.emplace_back(std::stoull(digits), entry.path().string());
  }
  if (ec) return IoError("usage journal: cannot list " + dir + ": " + ec.message());
  std::sort(segments.begin(), segments.end());
  uint64_t total = 0;
  uint64_t next = 0;
  for (const auto& [n, path] : segments) {
    TM_ASSIGN_OR_RETURN(std::string data, ReadFile(path, kMaxSegmentReadBytes));
    std::vector<UsageRecord> records = ParseSegment(data);
    TM_RETURN_IF_ERROR(store->InsertUsage(records));
    total += records.size();
    next = std::max(next, n + 1);
  }
  for (const auto& seg : segments) std::filesystem::remove(seg.second, ec);
  if (!segments.empty()) TM_RETURN_IF_ERROR(SyncDir(dir));
  if (replayed) *replayed = total;

  std::unique_ptr<UsageJournal> j(new UsageJournal(dir, store, sync));
  TM_RETURN_IF_ERROR(j->OpenSegment(next));
  j->writer_ = std::thread([p = j.get()] { p->WriterLoop(); });
  j->flusher_ = std::thread([p = j.get()] { p->FlusherLoop(); });
  return j;
}

Status UsageJournal::OpenSegment(uint64_t number) {
  TM_ASSIGN_OR_RETURN(int fd, CreateSegment(dir_, number));
  fd_ = fd;
  segment_ = number;
  segment_bytes_ = 0;
  return Status::Ok();
}

Status UsageJournal::Rotate() {
  int fd = -1;
  uint64_t number = 0;
  {
    std::unique_lock<std::mutex> lock(mu_);
    spare_cv_.wait(lock, [&] { return !spare_busy_; });
    number = segment_ + 1;
    if (spare_fd_ >= 0 && spare_segment_ == number) {
      fd = spare_fd_;
      spare_fd_ = -1;
    }
  }
  if (fd < 0) {
    // No spare ready (the flusher is behind): the slow path, create it here.
    Result<int> created = CreateSegment(dir_, number);
    if (!created.ok()) return created.status();
    fd = *created;
  }
  int old_fd = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Every record of the closed segment is already in to_store_ (moved there at its commit).
    closed_segments_.push_back(segment_);
    old_fd = fd_;
    fd_ = fd;
    segment_ = number;
    segment_bytes_ = 0;
  }
  if (old_fd >= 0) {
    // kInterval: the closed segment's last writes reach the disk now (once per segment); its
    // records are acknowledged already, so an error here is only counted, like a late sync.
    if (sync_ == JournalSync::kInterval) ::fdatasync(old_fd);
    ::close(old_fd);
  }
  return Status::Ok();
}

void UsageJournal::PrepareSpare() {
  uint64_t number = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_ || spare_fd_ >= 0 || spare_busy_) return;
    spare_busy_ = true;
    number = segment_ + 1;  // segment_ cannot move meanwhile: Rotate waits for spare_busy_
  }
  Result<int> fd = CreateSegment(dir_, number);
  {
    std::lock_guard<std::mutex> lock(mu_);
    spare_busy_ = false;
    if (fd.ok()) {
      spare_fd_ = *fd;
      spare_segment_ = number;
    }
  }
  spare_cv_.notify_all();
}

UsageJournal::~UsageJournal() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  writer_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  flusher_cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  if (sync_ == JournalSync::kInterval) SyncCurrentSegment();
  FlushOnce().ok();  // best effort; what is not stored is replayed on the next Open
  if (fd_ >= 0) ::close(fd_);
  std::lock_guard<std::mutex> lock(mu_);
  std::error_code ec;
  if (spare_fd_ >= 0) {  // never written
    ::close(spare_fd_);
    std::filesystem::remove(SegmentPath(dir_, spare_segment_), ec);
  }
  // The open segment is empty of unstored records once FlushOnce succeeded; remove it.
  if (to_store_.empty() && flush_error_.ok()) {
    std::filesystem::remove(SegmentPath(dir_, segment_), ec);
    for (uint64_t s : closed_segments_) std::filesystem::remove(SegmentPath(dir_, s), ec);
  }
}

void UsageJournal::Append(UsageRecord record, Callback done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) {
      done(Internal("usage journal is shutting down"));
      return;
    }
    pending_.emplace_back(std::move(record), std::move(done));
    ++appended_;
  }
  writer_cv_.notify_one();
}

void UsageJournal::WriterLoop() {
  std::vector<std::pair<UsageRecord, Callback>> batch;
  std::string buf;
  bool abandon_segment = false;  // a write or fdatasync failed: continue in a fresh segment
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      writer_cv_.wait(lock, [&] { return stop_ || !pending_.empty(); });
      if (pending_.empty() && stop_) return;
      batch.swap(pending_);
    }
    buf.clear();
    for (const auto& [rec, cb] : batch) {
      const std::string payload = EncodeUsageRecord(rec);
      PutU32(buf, static_cast<uint32_t>(payload.size()));
      PutU32(buf, static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(payload.data()),
                                              static_cast<uInt>(payload.size()))));
      buf += payload;
    }
    Status status;
    // A batch that does not fit goes to the next segment (a batch larger than a whole segment
    // extends it: slower, still correct).
    const bool full = segment_bytes_ > 0 && segment_bytes_ + buf.size() > kJournalSegmentBytes;
    if (abandon_segment || fd_ < 0 || full) {
      status = Rotate();
      abandon_segment = !status.ok();
    }
    if (status.ok()) {
      size_t off = 0;
      while (off < buf.size()) {
        const ssize_t n =
            ::pwrite(fd_, buf.data() + off, buf.size() - off, static_cast<off_t>(segment_bytes_ + off));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          status = IoError(std::string("usage journal: write failed: ") + std::strerror(errno));
          break;
        }
        off += static_cast<size_t>(n);
      }
      if (status.ok() && sync_ == JournalSync::kCommit && ::fdatasync(fd_) != 0) {
        status = IoError(std::string("usage journal: fdatasync failed: ") + std::strerror(errno));
      }
      // Bytes of a failed write may sit past the last good frame: never write after them.
      abandon_segment = !status.ok();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (status.ok()) {
        for (auto& [rec, cb] : batch) to_store_.push_back(rec);
        committed_ += batch.size();
        segment_bytes_ += buf.size();
        if (sync_ == JournalSync::kCommit) ++fsyncs_;
      } else {
        failed_ += batch.size();
      }
    }
    for (auto& [rec, cb] : batch) cb(status);
    batch.clear();
  }
}

Status UsageJournal::FlushOnce() {
  std::lock_guard<std::mutex> flush_lock(flush_mu_);
  std::vector<UsageRecord> records;
  std::vector<uint64_t> closed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    records.swap(to_store_);
    closed.swap(closed_segments_);
  }
  Status s = store_->InsertUsage(records);
  std::unique_lock<std::mutex> lock(mu_);
  if (!s.ok()) {
    // Put them back in front; they stay in their segments on disk and are retried.
    to_store_.insert(to_store_.begin(), records.begin(), records.end());
    closed_segments_.insert(closed_segments_.begin(), closed.begin(), closed.end());
    flush_error_ = s;
    return s;
  }
  flush_error_ = Status::Ok();
  stored_ += records.size();
  flushed_cv_.notify_all();
  lock.unlock();  // unlinking can take a while; Append and the writer need mu_
  // Every record of a closed segment was in to_store_ before the segment was closed, so it was
  // stored by now: the segment can go.
  std::error_code ec;
  for (uint64_t seg : closed) std::filesystem::remove(SegmentPath(dir_, seg), ec);
  return Status::Ok();
}

void UsageJournal::FlusherLoop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      flusher_cv_.wait_for(lock, kJournalFlushInterval, [&] { return stop_; });
      if (stop_) return;
    }
    if (sync_ == JournalSync::kInterval) SyncCurrentSegment();
    FlushOnce().ok();  // errors are kept in flush_error_ and retried next interval
    PrepareSpare();
  }
}

void UsageJournal::SyncCurrentSegment() {
  int fd = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (fd_ >= 0) fd = ::dup(fd_);  // fd_ changes (and the old one is closed) only after it is swapped under mu_
  }
  if (fd < 0) return;
  if (::fdatasync(fd) == 0) {
    std::lock_guard<std::mutex> lock(mu_);
    ++fsyncs_;
  }
  ::close(fd);
}

Status UsageJournal::FlushToStore() {
  uint64_t target;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Not committed_ + pending_.size(): the writer's batch in flight is in neither.
    target = appended_;
  }
  // Wait for the writer to commit everything queued, then store it.
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (committed_ + failed_ >= target) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return FlushOnce();
}

uint64_t UsageJournal::committed_records() const {
  std::lock_guard<std::mutex> lock(mu_);
  return committed_;
}

uint64_t UsageJournal::fsyncs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return fsyncs_;
}

}  // namespace tracemark::ledger
