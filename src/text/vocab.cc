#include "text/vocab.h"

#include <algorithm>
#include <atomic>
#include <utility>

namespace tracemark::text {

// ---- FlatU64Map ----

void FlatU64Map::Reserve(size_t n) {
  size_t cap = 16;
  while (cap < 2 * n) cap <<= 1;
  if (cap <= slots_.size()) return;
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  size_ = 0;
  for (const Slot& s : old) {
    if (s.used) Insert(s.key, s.value);
  }
}

bool FlatU64Map::Insert(uint64_t key, uint64_t value) {
  if (2 * (size_ + 1) > slots_.size()) Reserve(size_ + 1 > 8 ? size_ + 1 : 8);
  size_t i = HashU64(key) & mask_;
  while (slots_[i].used) {
    if (slots_[i].key == key) return false;
    i = (i + 1) & mask_;
  }
  slots_[i] = Slot{key, value, true};
  ++size_;
  return true;
}

// ---- Vocab ----

void Vocab::Build(std::vector<std::string> pieces, std::vector<TokenType> types) {
  pieces_ = std::move(pieces);
  types_ = std::move(types);
  types_.resize(pieces_.size(), TokenType::kNormal);
  size_t cap = 16;
  while (cap < 2 * pieces_.size() + 64) cap <<= 1;
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  size_t total = 0;
  for (const auto& p : pieces_) total += p.size();
  keys_.reserve(total + 1024);
  for (size_t id = 0; id < pieces_.size(); ++id) Insert(pieces_[id], static_cast<int32_t>(id));
}

void Vocab::AddAlias(std::string key, int32_t id) { Insert(key, id); }

void Vocab::Insert(std::string_view key, int32_t id) {
  const uint64_t h = HashBytes(key);
  size_t i = h & mask_;
  while (slots_[i].id >= 0) {
    if (slots_[i].hash == h && KeyOf(slots_[i]) == key) return;  // first id wins
    i = (i + 1) & mask_;
  }
  Slot& s = slots_[i];
  s.hash = h;
  s.key_off = static_cast<uint32_t>(keys_.size());
  s.key_len = static_cast<uint32_t>(key.size());
  s.id = id;
  keys_.append(key);
}

// ---- SpecialMatcher ----

void SpecialMatcher::Add(std::string_view text, int32_t id) {
  if (text.empty()) return;
  int32_t node = 0;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    auto& kids = nodes_[node].kids;
    auto it = std::lower_bound(kids.begin(), kids.end(), std::make_pair(c, int32_t{-1}),
                               [](const auto& a, const auto& b) { return a.first < b.first; });
    if (it != kids.end() && it->first == c) {
      node = it->second;
    } else {
      const auto next = static_cast<int32_t>(nodes_.size());
      kids.insert(it, {c, next});
      nodes_.emplace_back();
      node = next;
    }
  }
  if (nodes_[node].id < 0) nodes_[node].id = id;  // first id wins for duplicate strings
  first_[static_cast<unsigned char>(text[0])] = true;
}

size_t SpecialMatcher::MatchAt(std::string_view text, size_t pos, int32_t* id) const {
  int32_t node = 0;
  size_t best = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    const auto& kids = nodes_[node].kids;
    auto it = std::lower_bound(kids.begin(), kids.end(), std::make_pair(c, int32_t{-1}),
                               [](const auto& a, const auto& b) { return a.first < b.first; });
    if (it == kids.end() || it->first != c) break;
    node = it->second;
    if (nodes_[node].id >= 0) {
      best = i + 1 - pos;
      *id = nodes_[node].id;
    }
  }
  return best;
}

// ---- WordCache ----

bool WordCache::Lookup(std::string_view word, std::vector<int32_t>* out) const {
  if (slots_.empty()) return false;
  const size_t mask = slots_.size() - 1;
  const uint64_t h = HashBytes(word);
  const auto tag = static_cast<uint32_t>(h >> 32);
  size_t i = h & mask;
  while (slots_[i].entry) {
    if (slots_[i].hash == tag) {
      const Entry& e = entries_[slots_[i].entry - 1];
      if (e.key_len == word.size() &&
          std::memcmp(keys_.data() + e.key_off, word.data(), word.size()) == 0) {
        out->insert(out->end(), ids_.begin() + e.ids_off, ids_.begin() + e.ids_off + e.ids_len);
        return true;
      }
    }
    i = (i + 1) & mask;
  }
  return false;
}

void WordCache::Insert(std::string_view word, const int32_t* ids, size_t n) {
  if (word.size() > kMaxWordBytes) return;
  if (entries_.size() >= kMaxEntries ||
      keys_.size() + word.size() + 4 * (ids_.size() + n) > kMaxArenaBytes) {
    Clear();
  }
  if (2 * (entries_.size() + 1) > slots_.size()) {
    Rehash(std::max(kInitialSlots, 2 * slots_.size()));
  }
  const size_t mask = slots_.size() - 1;
  const uint64_t h = HashBytes(word);
  const auto tag = static_cast<uint32_t>(h >> 32);
  size_t i = h & mask;
  while (slots_[i].entry) {
    if (slots_[i].hash == tag) {
      const Entry& e = entries_[slots_[i].entry - 1];
      if (e.key_len == word.size() &&
          std::memcmp(keys_.data() + e.key_off, word.data(), word.size()) == 0) {
        return;
      }
    }
    i = (i + 1) & mask;
  }
  entries_.push_back({static_cast<uint32_t>(keys_.size()), static_cast<uint32_t>(word.size()),
                      static_cast<uint32_t>(ids_.size()), static_cast<uint32_t>(n)});
  slots_[i] = Slot{tag, static_cast<uint32_t>(entries_.size())};
  keys_.append(word);
  ids_.insert(ids_.end(), ids, ids + n);
}

void WordCache::Rehash(size_t slots) {
  slots_.assign(slots, Slot{});
  const size_t mask = slots - 1;
  for (size_t e = 0; e < entries_.size(); ++e) {
    const uint64_t h = HashBytes(std::string_view(keys_).substr(entries_[e].key_off,
                                                                entries_[e].key_len));
    size_t i = h & mask;
    while (slots_[i].entry) i = (i + 1) & mask;
    slots_[i] = Slot{static_cast<uint32_t>(h >> 32), static_cast<uint32_t>(e + 1)};
  }
}

void WordCache::Clear() {
  if (!entries_.empty()) std::fill(slots_.begin(), slots_.end(), Slot{});
  entries_.clear();
  keys_.clear();
  ids_.clear();
}

namespace {
constexpr size_t kCachesPerThread = 4;
std::atomic<uint64_t> g_next_serial{1};

struct ThreadCaches {
  uint64_t owner[kCachesPerThread] = {};
  uint64_t last_use[kCachesPerThread] = {};
  uint64_t clock = 0;
  WordCache cache[kCachesPerThread];
};
}  // namespace

uint64_t NextTokenizerSerial() { return g_next_serial.fetch_add(1, std::memory_order_relaxed); }

WordCache& LocalWordCache(uint64_t tokenizer_serial) {
  thread_local ThreadCaches caches;
  ++caches.clock;
  size_t victim = 0;
  for (size_t i = 0; i < kCachesPerThread; ++i) {
    if (caches.owner[i] == tokenizer_serial) {
      caches.last_use[i] = caches.clock;
      return caches.cache[i];
    }
    if (caches.last_use[i] < caches.last_use[victim]) victim = i;
  }
  caches.owner[victim] = tokenizer_serial;
  caches.last_use[victim] = caches.clock;
  caches.cache[victim].Clear();
  return caches.cache[victim];
}

// ---- VocabTokenizer ----

void VocabTokenizer::BuildSpecials() {
  for (int32_t id = 0; id < vocab_.size(); ++id) {
    const TokenType t = vocab_.type(id);
    if (t == TokenType::kUserDefined) {
      const std::string text = SpecialText(id);
      user_defined_.Add(text, id);
      all_special_.Add(text, id);
    } else if (t == TokenType::kControl || t == TokenType::kUnknown) {
      all_special_.Add(SpecialText(id), id);
    }
  }
}

bool VocabTokenizer::IsEog(int32_t id) const {
  if (id < 0) return false;
  if (id == config_.eos_id) return true;
  return std::find(eog_ids_.begin(), eog_ids_.end(), id) != eog_ids_.end();
}

std::vector<int32_t> VocabTokenizer::Encode(std::string_view text, bool add_special,
                                            bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special && config_.add_bos && config_.bos_id >= 0) out.push_back(config_.bos_id);
  const SpecialMatcher& matcher = parse_special ? all_special_ : user_defined_;
  if (matcher.empty()) {
    if (!text.empty()) EncodeFragment(text, true, &out);
  } else {
    size_t frag = 0;
    size_t pos = 0;
    while (pos < text.size()) {
      const auto c = static_cast<unsigned char>(text[pos]);
      if (matcher.MayStartWith(c)) {
        int32_t id = -1;
        const size_t len = matcher.MatchAt(text, pos, &id);
        if (len) {
          if (frag < pos) EncodeFragment(text.substr(frag, pos - frag), frag == 0, &out);
          out.push_back(id);
          pos += len;
          frag = pos;
          continue;
        }
      }
      ++pos;
    }
    if (frag < text.size()) EncodeFragment(text.substr(frag), frag == 0, &out);
  }
  if (add_special && config_.add_eos && config_.eos_id >= 0) out.push_back(config_.eos_id);
  return out;
}

}  // namespace tracemark::text
