#include "text/spm.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "text/unicode.h"

namespace tracemark::text {
namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581
// Chunks up to this many symbols use the quadratic scan; longer ones use a heap.
constexpr size_t kQuadraticMaxSymbols = 48;
constexpr float kNoMerge = -std::numeric_limits<float>::infinity();
// User-defined tokens (U+2581 runs) merge before any scored token, as in the HF merges list.
constexpr float kUserDefinedPriority = std::numeric_limits<float>::max();

std::string SpacesToMarks(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c == ' ') {
      out.append(kSpaceMark);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

struct Symbol {
  uint32_t start;
  uint32_t len;
  int32_t id;  // vocab id of text[start, start + len), -1 if none
};



struct HeapEntry {
  float priority;
  uint32_t pos;
  uint32_t left_len;
  uint32_t right_len;
  // Max-heap on priority, then min on position.
  bool operator<(const HeapEntry& o) const {
    return priority != o.priority ? priority < o.priority : pos > o.pos;
  }
};

struct Scratch {
  std::string normalized;
  std::vector<Symbol> syms;
  std::vector<float> pri;
  std::vector<int32_t> prev;
  std::vector<int32_t> next;
  std::vector<HeapEntry> heap;
  std::vector<int32_t> chunk_ids;
};

Scratch& LocalScratch() {
  thread_local Scratch scratch;
  return scratch;
}

}  // namespace

Result<std::unique_ptr<SpmTokenizer>> SpmTokenizer::Create(std::vector<std::string> pieces,
                                                           std::vector<TokenType> types,
                                                           std::vector<float> scores,
                                                           const Config& config,
                                                           std::vector<int32_t> eog_ids) {
  std::unique_ptr<SpmTokenizer> tok(new SpmTokenizer());
  tok->config_ = config;
  tok->eog_ids_ = std::move(eog_ids);
  scores.resize(pieces.size(), 0.0f);
  tok->vocab_.Build(std::move(pieces), std::move(types));
  const int32_t n = tok->vocab_.size();
  tok->priority_.assign(n, kNoMerge);
  for (int32_t id = 0; id < n; ++id) {
    const TokenType t = tok->vocab_.type(id);
    const std::string_view p = tok->vocab_.piece(id);
    if (t == TokenType::kUserDefined) {
      // The GGUF converter spells U+2581 as a space in user-defined tokens; HF keeps U+2581.
      if (p.find(' ') != std::string_view::npos) tok->vocab_.AddAlias(SpacesToMarks(p), id);
      tok->priority_[id] = kUserDefinedPriority;
    } else if (t == TokenType::kNormal || t == TokenType::kControl ||
               t == TokenType::kUnused) {
      tok->priority_[id] = scores[id];
    }
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    tok->byte_ids_[b] = tok->vocab_.Find(name);
  }
  for (int c = 0; c < 128; ++c) tok->ascii_ids_[c] = tok->vocab_.Find(std::string(1, char(c)));
  tok->space_mark_id_ = tok->vocab_.Find(kSpaceMark);
  // Character bigrams inside vocab entries (every type, so the set is conservative).
  for (int32_t id = 0; id < n; ++id) {
    const std::string text = tok->SpecialText(id);
    uint32_t prev = kInvalidCodepoint;
    for (size_t i = 0; i < text.size();) {
      size_t len = 1;
      const uint32_t cp = DecodeUtf8(text, i, &len);
      if (prev != kInvalidCodepoint && cp != kInvalidCodepoint) {
        if ((prev | cp) < 128) {
          tok->ascii_bigrams_[prev * 128 + cp] = true;
        } else {
          tok->bigrams_.Insert(PairKey(prev, cp), 1);
        }
      }
      prev = cp;
      i += len;
    }
  }
  tok->BuildSpecials();
  return tok;
}

std::string SpmTokenizer::SpecialText(int32_t id) const {
  const std::string_view p = vocab_.piece(id);
  if (vocab_.type(id) == TokenType::kUserDefined) return SpacesToMarks(p);
  return std::string(p);
}

std::string SpmTokenizer::TokenBytes(int32_t id, bool skip_special) const {
  if (id < 0 || id >= vocab_.size()) return std::string();
  const TokenType t = vocab_.type(id);
  const std::string_view p = vocab_.piece(id);
  switch (t) {
    case TokenType::kControl:
    case TokenType::kUnknown:
      return skip_special ? std::string() : std::string(p);
    case TokenType::kUserDefined:
      return std::string(p);
    case TokenType::kByte:
      // "<0xXX>": the byte itself.
      if (p.size() == 6 && p.substr(0, 3) == "<0x" && p[5] == '>') {
        auto hex = [](char c) {
          return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        };
        const int hi = hex(p[3]), lo = hex(p[4]);
        if (hi >= 0 && lo >= 0 && byte_ids_[hi * 16 + lo] == id) {
          return std::string(1, static_cast<char>(hi * 16 + lo));
        }
      }
      return std::string(p);
    default:
      break;
  }
  std::string out;
  out.reserve(p.size());
  for (size_t i = 0; i < p.size();) {
    if (p.substr(i, 3) == kSpaceMark) {
      out.push_back(' ');
      i += 3;
    } else {
      out.push_back(p[i++]);
    }
  }
  return out;
}

void SpmTokenizer::EncodeFragment(std::string_view text, bool first_fragment,
                                  std::vector<int32_t>* out) const {
  Scratch& s = LocalScratch();
  std::string& norm = s.normalized;
  norm.clear();
  norm.reserve(text.size() + text.size() / 4 + 3);
  if (config_.add_space_prefix && first_fragment) norm.append(kSpaceMark);
  for (const char c : text) {
    if (c == ' ') {
      norm.append(kSpaceMark);
    } else {
      norm.push_back(c);
    }
  }
  const std::string_view t = norm;
  WordCache& cache = LocalWordCache(serial_);
  size_t start = 0;
  auto flush = [&](size_t end) {
    const std::string_view chunk = t.substr(start, end - start);
    if (chunk.size() <= WordCache::kMaxWordBytes && cache.Lookup(chunk, out)) return;
    const size_t before = out->size();
    EncodeChunk(chunk, out);
    cache.Insert(chunk, out->data() + before, out->size() - before);
  };
  // Chunk boundaries: between characters that are never adjacent inside a vocab entry.
  uint32_t prev = kInvalidCodepoint;
  for (size_t i = 0; i < t.size();) {
    const auto c = static_cast<unsigned char>(t[i]);
    uint32_t cp = c;
    size_t len = 1;
    if (c >= 0x80) cp = DecodeUtf8(t, i, &len);
    if (i > start &&
        (prev == kInvalidCodepoint || cp == kInvalidCodepoint || !HasBigram(prev, cp))) {
      flush(i);
      start = i;
    }
    prev = cp;
    i += len;
  }
  if (start < t.size()) flush(t.size());
}

void SpmTokenizer::EncodeChunk(std::string_view text, std::vector<int32_t>* out) const {
  Scratch& s = LocalScratch();
  std::vector<Symbol>& syms = s.syms;
  syms.clear();
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      syms.push_back({static_cast<uint32_t>(i), 1, ascii_ids_[c]});
      ++i;
      continue;
    }
    size_t len = 1;
    DecodeUtf8(text, i, &len);
    const int32_t id = len == 3 && text.compare(i, 3, kSpaceMark) == 0
                           ? space_mark_id_
                           : vocab_.Find(text.substr(i, len));
    syms.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(len), id});
    i += len;
  }
  const size_t n = syms.size();
  // The merge of a and b: priority and merged id (kNoMerge if none).
  // The merge of adjacent symbols a and b (both vocab entries, as in the HF merges list):
  // priority and merged id, or kNoMerge.
  auto pair_merge = [&](const Symbol& a, const Symbol& b, int32_t* merged) {
    if (a.id < 0 || b.id < 0) return kNoMerge;
    const int32_t id = vocab_.Find(text.substr(a.start, a.len + b.len));
    if (id < 0) return kNoMerge;
    *merged = id;
    return priority_[id];
  };
  auto emit = [&](const Symbol& sym) {
    if (sym.id >= 0) {
      out->push_back(sym.id);
      return;
    }
    for (const char c : text.substr(sym.start, sym.len)) {
      const int32_t b = byte_ids_[static_cast<unsigned char>(c)];
      if (b >= 0) {
        out->push_back(b);
      } else if (config_.unk_id >= 0) {
        out->push_back(config_.unk_id);
      }
    }
  };
  if (n <= kQuadraticMaxSymbols) {
    std::vector<float>& pri = s.pri;
    std::vector<int32_t>& merged = s.chunk_ids;
    pri.resize(n);
    merged.resize(n);
    size_t m = n;
    for (size_t i = 0; i + 1 < m; ++i) pri[i] = pair_merge(syms[i], syms[i + 1], &merged[i]);
    while (m > 1) {
      size_t best = 0;
      float best_pri = kNoMerge;
      for (size_t i = 0; i + 1 < m; ++i) {
        if (pri[i] > best_pri) {
          best_pri = pri[i];
          best = i;
        }
      }
      if (best_pri == kNoMerge) break;
      syms[best].len += syms[best + 1].len;
      syms[best].id = merged[best];
      for (size_t i = best + 1; i + 1 < m; ++i) {
        syms[i] = syms[i + 1];
        pri[i] = pri[i + 1];
        merged[i] = merged[i + 1];
      }
      --m;
      if (best > 0) pri[best - 1] = pair_merge(syms[best - 1], syms[best], &merged[best - 1]);
      if (best + 1 < m) pri[best] = pair_merge(syms[best], syms[best + 1], &merged[best]);
    }
    for (size_t i = 0; i < m; ++i) emit(syms[i]);
    return;
  }

  std::vector<int32_t>& prev = s.prev;
  std::vector<int32_t>& next = s.next;
  prev.resize(n);
  next.resize(n);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
  std::vector<HeapEntry>& heap = s.heap;
  heap.clear();
  auto push = [&](int32_t i) {
    if (i < 0 || next[i] < 0) return;
    const Symbol& a = syms[i];
    const Symbol& b = syms[next[i]];
    int32_t merged = -1;
    const float p = pair_merge(a, b, &merged);
    if (p == kNoMerge) return;
    heap.push_back({p, static_cast<uint32_t>(i), a.len, b.len});
    std::push_heap(heap.begin(), heap.end());
  };
  for (size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    const HeapEntry e = heap.back();
    heap.pop_back();
    const auto i = static_cast<int32_t>(e.pos);
    const int32_t j = next[i];
    // Stale if either side changed (a merged symbol only grows) or i was absorbed.
    if (syms[i].len != e.left_len || j < 0 || syms[j].len != e.right_len) continue;
    int32_t merged = -1;
    pair_merge(syms[i], syms[j], &merged);
    syms[i].len += syms[j].len;
    syms[i].id = merged;
    syms[j].len = 0;
    next[i] = next[j];
    if (next[j] >= 0) prev[next[j]] = i;
    if (prev[i] >= 0) push(prev[i]);
    push(i);
  }
  for (int32_t i = 0; i >= 0; i = next[i]) emit(syms[i]);
}

}  // namespace tracemark::text
