// Stop strings for streaming generation (OpenAI `stop`): fed the decoded text piece by piece,
// a StopMatcher says which text is safe to send to the client now. It holds back the longest
// suffix that could still grow into a stop string (and an unfinished UTF-8 sequence at the
// end), and once a stop string appears it releases the text before it and reports the stop;
// the stop string itself and everything after it are never emitted.
//
// One StopMatcher per sequence; not thread-safe. Feed() appends to the caller's string and
// does not allocate beyond the held-back buffer, whose size is bounded by the longest stop
// string plus one piece.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "tracemark/base/status.h"

namespace tracemark {

// OpenAI accepts up to 4 stop sequences.
inline constexpr size_t kMaxStopStrings = 4;
// Longest accepted stop string, in bytes.
inline constexpr size_t kMaxStopStringBytes = 256;

class StopMatcher {
 public:
  // Rejects more than kMaxStopStrings strings, empty strings and strings longer than
  // kMaxStopStringBytes. Duplicates are allowed. An empty list matches nothing.
  static Result<StopMatcher> Create(std::vector<std::string> stops);

  // Adds `piece` to the stream and appends the text that is now safe to emit to `*out`.
  // Returns true when a stop string has matched: `*out` then ends just before it, and every
  // later Feed() appends nothing and returns true.
  bool Feed(std::string_view piece, std::string* out);

  // End of generation without a stop: appends whatever is still held back.
  void Flush(std::string* out);

  bool stopped() const { return stopped_; }
  // Index into the Create() list of the stop string that matched, or -1.
  int matched_index() const { return matched_; }

 private:
  StopMatcher() = default;
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
  int matched_ = -1;
};

}  // namespace tracemark
