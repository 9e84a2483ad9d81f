// Shared pieces of the GGUF tokenizers (internal to text/): the vocabulary with a flat
// string->id index, the special-token partitioner, and a per-thread word cache.
//
// Vocab and SpecialMatcher are immutable after construction and safe to read from any thread.
// WordCache is per thread (see LocalWordCache) and must not be shared.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "tracemark/text/tokenizer.h"

namespace tracemark::text {

// Fast 64-bit hash of a byte string (multiply-xorshift over 8-byte words; not cryptographic).
inline uint64_t HashBytes(std::string_view s) {
  constexpr uint64_t kMul = 0x9E3779B97F4A7C15ull;
  uint64_t h = 0x243F6A8885A308D3ull ^ (s.size() * kMul);
  const char* p = s.data();
  size_t n = s.size();
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * kMul;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  if (n) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * kMul;
    h ^= h >> 29;
  }
  h *= kMul;
  return h ^ (h >> 32);
}

inline uint64_t HashU64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xFF51AFD7ED558CCDull;
  x ^= x >> 33;
  x *= 0xC4CEB9FE1A85EC53ull;
  return x ^ (x >> 33);
}

// Open-addressing map from a 64-bit key to a 64-bit value (no erase). Load factor <= 1/2.
class FlatU64Map {
 public:
  void Reserve(size_t n);
  // Inserts unless present; returns false if the key was already there (value unchanged).
  bool Insert(uint64_t key, uint64_t value);
  // Returns a pointer to the value or nullptr.
  const uint64_t* Find(uint64_t key) const {
    if (mask_ == 0) return nullptr;
    size_t i = HashU64(key) & mask_;
    while (true) {
      const Slot& s = slots_[i];
      if (!s.used) return nullptr;
      if (s.key == key) return &s.value;
      i = (i + 1) & mask_;
    }
  }

 private:
  struct Slot {
    uint64_t key = 0;
    uint64_t value = 0;
    bool used = false;
  };
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

// The token strings with an exact-match index. Pieces are stored in one arena.
class Vocab {
 public:
  void Build(std::vector<std::string> pieces, std::vector<TokenType> types);
  // Adds an extra lookup key for an id (e.g. a user-defined token's Hugging Face spelling).
  void AddAlias(std::string key, int32_t id);
  int32_t size() const { return static_cast<int32_t>(pieces_.size()); }
  std::string_view piece(int32_t id) const { return pieces_[id]; }
  TokenType type(int32_t id) const { return types_[id]; }
  int32_t Find(std::string_view s) const {
    if (mask_ == 0) return -1;
    const uint64_t h = HashBytes(s);
    size_t i = h & mask_;
    while (true) {
      const Slot& slot = slots_[i];
      if (slot.id < 0) return -1;
      if (slot.hash == h && KeyOf(slot) == s) return slot.id;
      i = (i + 1) & mask_;
    }
  }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t key_off = 0;
    uint32_t key_len = 0;
    int32_t id = -1;
  };
  std::string_view KeyOf(const Slot& s) const {
    return std::string_view(keys_).substr(s.key_off, s.key_len);
  }
  void Insert(std::string_view key, int32_t id);
  std::vector<std::string> pieces_;
  std::vector<TokenType> types_;
  std::string keys_;
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

// Leftmost-longest matcher over a set of special token strings (a byte trie).
class SpecialMatcher {
 public:
  void Add(std::string_view text, int32_t id);
  bool empty() const { return nodes_.size() <= 1; }
  // The longest token matching text at pos: its length (0 if none) and *id.
  size_t MatchAt(std::string_view text, size_t pos, int32_t* id) const;
  bool MayStartWith(unsigned char c) const { return first_[c]; }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> kids;  // sorted by byte
    int32_t id = -1;
  };
  std::vector<Node> nodes_{Node{}};
  bool first_[256] = {};
};

// A bounded per-thread cache of word -> token ids, owned by one tokenizer at a time.
// Memory at the limits: 8 B per slot (2 slots per entry) + 16 B per entry + the keys and ids.
class WordCache {
 public:
  static constexpr size_t kMaxEntries = 1u << 19;      // cleared when this many words are cached
  static constexpr size_t kMaxWordBytes = 256;         // longer words are not cached
  static constexpr size_t kMaxArenaBytes = 32u << 20;  // keys + ids before a clear
  static constexpr size_t kInitialSlots = 1u << 12;     // grows by doubling up to 2 * kMaxEntries

  // Returns true and appends the cached ids if word is present.
  bool Lookup(std::string_view word, std::vector<int32_t>* out) const;
  void Insert(std::string_view word, const int32_t* ids, size_t n);
  void Clear();

 private:
  struct Slot {
    uint32_t hash = 0;   // high half of the 64-bit hash
    uint32_t entry = 0;  // 1 + index into entries_; 0 = empty
  };
  struct Entry {
    uint32_t key_off;
    uint32_t key_len;
    uint32_t ids_off;
    uint32_t ids_len;
  };
  void Rehash(size_t slots);
  std::vector<Slot> slots_;
  std::vector<Entry> entries_;
  std::string keys_;
  std::vector<int32_t> ids_;
};

// The calling thread's cache for the tokenizer with this serial number (each tokenizer gets a
// unique serial, so a cache is never reused across tokenizers). Keeps a few per thread.
WordCache& LocalWordCache(uint64_t tokenizer_serial);
uint64_t NextTokenizerSerial();

// Common base of the two families: vocabulary, special tokens, BOS/EOS and the partition of the
// input into special tokens and plain-text fragments.
class VocabTokenizer : public Tokenizer {
 public:
  std::vector<int32_t> Encode(std::string_view text, bool add_special,
                              bool parse_special) const override;
  int32_t vocab_size() const override { return vocab_.size(); }
  int32_t bos_id() const override { return config_.bos_id; }
  int32_t eos_id() const override { return config_.eos_id; }
  bool IsEog(int32_t id) const override;
  TokenType type(int32_t id) const override {
    return id >= 0 && id < vocab_.size() ? vocab_.type(id) : TokenType::kUndefined;
  }
  std::string_view piece(int32_t id) const override {
    return id >= 0 && id < vocab_.size() ? vocab_.piece(id) : std::string_view();
  }
  int32_t Find(std::string_view piece) const override { return vocab_.Find(piece); }

  struct Config {
    int32_t bos_id = -1;
    int32_t eos_id = -1;
    int32_t unk_id = -1;
    bool add_bos = false;
    bool add_eos = false;
    bool add_space_prefix = false;
  };

 protected:
  // Encodes one plain-text fragment (no special tokens inside), appending ids.
  // first_fragment: the fragment begins the input (for add_space_prefix).
  virtual void EncodeFragment(std::string_view text, bool first_fragment,
                              std::vector<int32_t>* out) const = 0;
  // Registers special tokens from the vocabulary types; special_text maps an id to the text
  // that must be matched in the input (family-specific spelling).
  void BuildSpecials();
  virtual std::string SpecialText(int32_t id) const { return std::string(vocab_.piece(id)); }

  Vocab vocab_;
  Config config_;
  std::vector<int32_t> eog_ids_;
  SpecialMatcher user_defined_;  // always split out
  SpecialMatcher all_special_;   // user-defined + control + unknown, with parse_special
  uint64_t serial_ = NextTokenizerSerial();
};

}  // namespace tracemark::text
