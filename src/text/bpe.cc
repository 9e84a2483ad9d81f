#include "text/bpe.h"

#include <algorithm>
#include <queue>

#include "text/normalize.h"
#include "text/unicode.h"

namespace tracemark::text {
namespace {

// Words up to this many initial symbols use the quadratic scan; longer ones use a heap.
constexpr size_t kQuadraticMaxSymbols = 48;

inline uint64_t PairKey(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

bool IsPrintableLatin1(uint32_t b) {
  return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

struct HeapEntry {
  uint32_t rank;
  uint32_t pos;
  int32_t left;
  int32_t right;
  bool operator>(const HeapEntry& o) const {
    return rank != o.rank ? rank > o.rank : pos > o.pos;
  }
};

struct Scratch {
  std::vector<int32_t> ids;
  std::vector<uint32_t> ranks;
  std::vector<int32_t> merged;
  std::vector<int32_t> prev;
  std::vector<int32_t> next;
  std::vector<HeapEntry> heap;
  std::vector<PieceSpan> pieces;
  std::vector<int32_t> word_ids;
  std::string normalized;
};

Scratch& LocalScratch() {
  thread_local Scratch scratch;
  return scratch;
}

}  // namespace

uint32_t ByteToUnicode(uint8_t b) {
  if (IsPrintableLatin1(b)) return b;
  uint32_t n = 0;
  for (uint32_t x = 0; x < b; ++x) {
    if (!IsPrintableLatin1(x)) ++n;
  }
  return 256 + n;
}

Result<std::unique_ptr<BpeTokenizer>> BpeTokenizer::Create(
    std::vector<std::string> pieces, std::vector<TokenType> types,
    const std::vector<std::string_view>& merges, const Config& config, const Options& options,
    std::vector<int32_t> eog_ids) {
  std::unique_ptr<BpeTokenizer> tok(new BpeTokenizer());
  tok->options_ = options;
  tok->config_ = config;
  tok->eog_ids_ = std::move(eog_ids);
  tok->vocab_.Build(std::move(pieces), std::move(types));
  const int32_t n = tok->vocab_.size();

  // Byte alphabet ids and the inverse map for decoding.
  uint8_t unicode_to_byte_lo[512];
  bool has_inverse[512] = {};
  for (int b = 0; b < 256; ++b) {
    const uint32_t cp = ByteToUnicode(static_cast<uint8_t>(b));
    std::string s;
    AppendUtf8(cp, &s);
    tok->byte_to_id_[b] = tok->vocab_.Find(s);
    unicode_to_byte_lo[cp] = static_cast<uint8_t>(b);
    has_inverse[cp] = true;
  }

  tok->merges_.Reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const std::string_view m = merges[rank];
    const size_t sp = m.find(' ', 1);
    if (sp == std::string_view::npos) {
      return InvalidArgument("tokenizer.ggml.merges[" + std::to_string(rank) +
                                  "] has no space separating the two tokens");
    }
    const std::string_view a = m.substr(0, sp);
    const std::string_view b = m.substr(sp + 1);
    const int32_t ia = tok->vocab_.Find(a);
    const int32_t ib = tok->vocab_.Find(b);
    std::string joined(a);
    joined.append(b);
    const int32_t ij = tok->vocab_.Find(joined);
    if (ia < 0 || ib < 0 || ij < 0) continue;  // merges of absent tokens can never apply
    tok->merges_.Insert(PairKey(ia, ib), (static_cast<uint64_t>(rank) << 32) |
                                             static_cast<uint32_t>(ij));
  }

  tok->token_bytes_.resize(n);
  for (int32_t id = 0; id < n; ++id) {
    const std::string_view p = tok->vocab_.piece(id);
    const TokenType t = tok->vocab_.type(id);
    std::string& out = tok->token_bytes_[id];
    if (t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown) {
      out.assign(p);
      continue;
    }
    for (size_t i = 0; i < p.size();) {
      size_t len = 1;
      const uint32_t cp = DecodeUtf8(p, i, &len);
      if (cp < 512 && has_inverse[cp]) {
        out.push_back(static_cast<char>(unicode_to_byte_lo[cp]));
      } else {
        out.append(p.substr(i, len));  // not in the byte alphabet: keep as is
      }
      i += len;
    }
  }
  tok->BuildSpecials();
  return tok;
}

std::string BpeTokenizer::TokenBytes(int32_t id, bool skip_special) const {
  if (id < 0 || id >= vocab_.size()) return std::string();
  if (skip_special) {
    const TokenType t = vocab_.type(id);
    if (t == TokenType::kControl || t == TokenType::kUnknown) return std::string();
  }
  return token_bytes_[id];
}

void BpeTokenizer::EncodeFragment(std::string_view text, bool first_fragment,
                                  std::vector<int32_t>* out) const {
  Scratch& scratch = LocalScratch();
  if (options_.nfc && !IsNfcQuick(text)) {
    scratch.normalized.clear();
    NormalizeNfc(text, &scratch.normalized);
    text = scratch.normalized;
  }
  // Copy the pieces: EncodeWord reuses other scratch buffers but not this one.
  std::vector<PieceSpan>& pieces = scratch.pieces;
  pieces.clear();
  PreTokenize(options_.pre, text, &pieces);
  WordCache& cache = LocalWordCache(serial_);
  for (const PieceSpan& span : pieces) {
    const std::string_view word = text.substr(span.begin, span.end - span.begin);
    if (word.size() == 1) {
      const int32_t id = byte_to_id_[static_cast<unsigned char>(word[0])];
      if (id >= 0) out->push_back(id);
      continue;
    }
    if (word.size() <= WordCache::kMaxWordBytes && cache.Lookup(word, out)) continue;
    const size_t before = out->size();
    EncodeWord(word, out);
    cache.Insert(word, out->data() + before, out->size() - before);
  }
}

void BpeTokenizer::EncodeWord(std::string_view word, std::vector<int32_t>* out) const {
  if (options_.ignore_merges) {
    std::string mapped;
    for (const char c : word) AppendUtf8(ByteToUnicode(static_cast<uint8_t>(c)), &mapped);
    const int32_t id = vocab_.Find(mapped);
    if (id >= 0 && vocab_.type(id) == TokenType::kNormal) {
      out->push_back(id);
      return;
    }
  }
  Scratch& s = LocalScratch();
  std::vector<int32_t>& ids = s.ids;
  ids.clear();
  for (const char c : word) {
    const int32_t id = byte_to_id_[static_cast<unsigned char>(c)];
    if (id >= 0) ids.push_back(id);  // a byte missing from the alphabet is dropped, as in HF
  }
  const size_t n = ids.size();
  if (n <= 1) {
    out->insert(out->end(), ids.begin(), ids.end());
    return;
  }
  if (n <= kQuadraticMaxSymbols) {
    // ranks[i]/merged[i]: the merge of (ids[i], ids[i+1]), or UINT32_MAX.
    std::vector<uint32_t>& ranks = s.ranks;
    std::vector<int32_t>& merged = s.merged;
    ranks.resize(n);
    merged.resize(n);
    auto compute = [&](size_t i) {
      const uint64_t* v = merges_.Find(PairKey(ids[i], ids[i + 1]));
      if (v) {
        ranks[i] = static_cast<uint32_t>(*v >> 32);
        merged[i] = static_cast<int32_t>(*v & 0xFFFFFFFFu);
      } else {
        ranks[i] = UINT32_MAX;
      }
    };
    size_t m = n;
    for (size_t i = 0; i + 1 < m; ++i) compute(i);
    while (m > 1) {
      size_t best = 0;
      uint32_t best_rank = UINT32_MAX;
      for (size_t i = 0; i + 1 < m; ++i) {
        if (ranks[i] < best_rank) {
          best_rank = ranks[i];
          best = i;
        }
      }
      if (best_rank == UINT32_MAX) break;
      ids[best] = merged[best];
      for (size_t i = best + 1; i + 1 < m; ++i) {
        ids[i] = ids[i + 1];
        ranks[i] = ranks[i + 1];
        merged[i] = merged[i + 1];
      }
      --m;
      if (best > 0) compute(best - 1);
      if (best + 1 < m) compute(best);
    }
    out->insert(out->end(), ids.begin(), ids.begin() + m);
    return;
  }

  // Heap + linked list for long words: O(n log n).
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
    const int32_t j = next[i];
    if (i < 0 || j < 0) return;
    const uint64_t* v = merges_.Find(PairKey(ids[i], ids[j]));
    if (!v) return;
    heap.push_back({static_cast<uint32_t>(*v >> 32), static_cast<uint32_t>(i), ids[i], ids[j]});
    std::push_heap(heap.begin(), heap.end(), std::greater<HeapEntry>());
  };
  for (size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<HeapEntry>());
    const HeapEntry e = heap.back();
    heap.pop_back();
    const auto i = static_cast<int32_t>(e.pos);
    const int32_t j = next[i];
    if (ids[i] != e.left || j < 0 || ids[j] != e.right) continue;  // stale
    const uint64_t* v = merges_.Find(PairKey(ids[i], ids[j]));
    ids[i] = static_cast<int32_t>(*v & 0xFFFFFFFFu);
    ids[j] = -1;
    next[i] = next[j];
    if (next[j] >= 0) prev[next[j]] = i;
    if (prev[i] >= 0) push(prev[i]);
    push(i);
  }
  for (int32_t i = 0; i >= 0; i = next[i]) out->push_back(ids[i]);
}

}  // namespace tracemark::text
