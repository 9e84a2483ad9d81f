// StopMatcher: see include/tracemark/model/stop.h.
#include "tracemark/model/stop.h"

#include <algorithm>

namespace tracemark {
namespace {

// Bytes at the end of `s` that start a UTF-8 sequence which is not complete yet (0 to 3).
size_t IncompleteUtf8Tail(std::string_view s) {
  const size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const unsigned char c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead byte
    size_t need = 0;
    if ((c & 0xE0) == 0xC0) need = 2;
    else if ((c & 0xF0) == 0xE0) need = 3;
    else if ((c & 0xF8) == 0xF0) need = 4;
    return (need > back) ? back : 0;
  }
  return 0;
}

}  // namespace

Result<StopMatcher> StopMatcher::Create(std::vector<std::string> stops) {
  if (stops.size() > kMaxStopStrings) {
    return InvalidArgument("too many stop strings: " + std::to_string(stops.size()) + " (at most " +
                           std::to_string(kMaxStopStrings) + ")");
  }
  for (const std::string& s : stops) {
    if (s.empty()) return InvalidArgument("a stop string is empty; remove it or give some text");
    if (s.size() > kMaxStopStringBytes) {
      return InvalidArgument("a stop string is " + std::to_string(s.size()) + " bytes (at most " +
                             std::to_string(kMaxStopStringBytes) + ")");
    }
  }
  StopMatcher m;
  m.stops_ = std::move(stops);
  m.held_.reserve(kMaxStopStringBytes * 2);
  return m;
}

bool StopMatcher::Feed(std::string_view piece, std::string* out) {
  if (stopped_) return true;
  held_.append(piece);

  // Earliest match wins; at equal start, the first listed string.
  size_t best = std::string::npos;
  for (size_t i = 0; i < stops_.size(); ++i) {
    const size_t pos = held_.find(stops_[i]);
    if (pos < best) {
      best = pos;
      matched_ = static_cast<int>(i);
    }
  }
  if (best != std::string::npos) {
    out->append(held_, 0, best);
    held_.clear();
    stopped_ = true;
    return true;
  }

  // Longest suffix of held_ that is a proper prefix of some stop string.
  size_t keep = 0;
  for (const std::string& s : stops_) {
    const size_t max_len = std::min(s.size() - 1, held_.size());
    for (size_t len = max_len; len > keep; --len) {
      if (std::string_view(held_).substr(held_.size() - len) == std::string_view(s).substr(0, len)) {
        keep = len;
        break;
      }
    }
  }
  keep = std::max(keep, IncompleteUtf8Tail(held_));
  const size_t emit = held_.size() - keep;
  out->append(held_, 0, emit);
  held_.erase(0, emit);
  return false;
}

void StopMatcher::Flush(std::string* out) {
  if (stopped_) return;
  out->append(held_);
  held_.clear();
}

}  // namespace tracemark
