// Open-addressing hash sets of 64-bit context hashes and of (context hash, token) tuples, with
// linear probing in one flat array: no allocation per insert, Clear() keeps the capacity. Used for
// repeated-context skipping (generation) and tuple de-duplication (detection).
// Not thread-safe; one per sequence or per detector.
#pragma once

#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <vector>

namespace tracemark::watermark {

class TupleSet {
 public:
  TupleSet() { Rebuild(kInitialCapacity); }
  void Clear() {
    if (size_ == 0) return;
    if (keys_.size() > kShrinkAbove) {
      // One huge document must not make every later Clear() sweep megabytes.
      keys_.assign(kInitialCapacity, Entry{});
      keys_.shrink_to_fit();
      mask_ = kInitialCapacity - 1;
    } else {
      std::fill(keys_.begin(), keys_.end(), Entry{});
    }
    size_ = 0;
  }
  size_t size() const { return size_; }
  // Inserts (hash, token); returns false when it was already present.
  bool Insert(uint64_t hash, int32_t token) {
    if ((size_ + 1) * 4 > keys_.size() * 3) Rebuild(keys_.size() * 2);
    return InsertNoGrow(hash, static_cast<uint32_t>(token));
  }
  bool Contains(uint64_t hash, int32_t token) const {
    const Entry e{hash, static_cast<uint32_t>(token), 1};
    for (size_t i = Slot(e);; i = (i + 1) & mask_) {
      const Entry& k = keys_[i];
      if (k.used == 0) return false;
      if (k.hash == e.hash && k.token == e.token) return true;
    }
  }

 private:
  static constexpr size_t kInitialCapacity = 1024;
  static constexpr size_t kShrinkAbove = 1 << 16;
  struct Entry {
    uint64_t hash = 0;
    uint32_t token = 0;
    uint32_t used = 0;
  };
  size_t Slot(const Entry& e) const {
    uint64_t x = e.hash ^ (static_cast<uint64_t>(e.token) * 0x9E3779B97F4A7C15ull);
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 32;
    return static_cast<size_t>(x) & mask_;
  }
  bool InsertNoGrow(uint64_t hash, uint32_t token) {
    const Entry e{hash, token, 1};
    for (size_t i = Slot(e);; i = (i + 1) & mask_) {
      Entry& k = keys_[i];
      if (k.used == 0) {
        k = e;
        ++size_;
        return true;
      }
      if (k.hash == hash && k.token == token) return false;
    }
  }
  void Rebuild(size_t capacity) {
    std::vector<Entry> old;
    old.swap(keys_);
    keys_.assign(capacity, Entry{});
    mask_ = capacity - 1;
    size_ = 0;
    for (const Entry& e : old) {
      if (e.used != 0) InsertNoGrow(e.hash, e.token);
    }
  }
  std::vector<Entry> keys_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace tracemark::watermark
