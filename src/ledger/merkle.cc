// RFC 6962 Merkle tree: see include/tracemark/ledger/merkle.h.
#include "tracemark/ledger/merkle.h"

#include <openssl/evp.h>

#include <cstring>

namespace tracemark::ledger {
namespace {

// Largest power of two strictly below n (n >= 2).
uint64_t SplitPoint(uint64_t n) {
  uint64_t k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

Hash Digest(const uint8_t* a, size_t a_len, const uint8_t* b, size_t b_len, const uint8_t* c,
            size_t c_len) {
  Hash out{};
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  unsigned int len = 0;
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  if (a_len) EVP_DigestUpdate(ctx, a, a_len);
  if (b_len) EVP_DigestUpdate(ctx, b, b_len);
  if (c_len) EVP_DigestUpdate(ctx, c, c_len);
  EVP_DigestFinal_ex(ctx, out.data(), &len);
  EVP_MD_CTX_free(ctx);
  return out;
}

void Path(std::span<const Hash> d, uint64_t m, std::vector<Hash>& out) {
  const uint64_t n = d.size();
  if (n <= 1) return;
  const uint64_t k = SplitPoint(n);
  if (m < k) {
    Path(d.subspan(0, k), m, out);
    out.push_back(TreeHash(d.subspan(k)));
  } else {
    Path(d.subspan(k), m - k, out);
    out.push_back(TreeHash(d.subspan(0, k)));
  }
}

void SubProof(std::span<const Hash> d, uint64_t m, bool b, std::vector<Hash>& out) {
  const uint64_t n = d.size();
  if (m == n) {
    if (!b) out.push_back(TreeHash(d));
    return;
  }
  const uint64_t k = SplitPoint(n);
  if (m <= k) {
    SubProof(d.subspan(0, k), m, b, out);
    out.push_back(TreeHash(d.subspan(k)));
  } else {
    SubProof(d.subspan(k), m - k, false, out);
    out.push_back(TreeHash(d.subspan(0, k)));
  }
}

}  // namespace

Hash Sha256(std::string_view bytes) {
  return Digest(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), nullptr, 0, nullptr,
                0);
}

Hash LeafHash(std::string_view entry) {
  const uint8_t prefix = 0x00;
  return Digest(&prefix, 1, reinterpret_cast<const uint8_t*>(entry.data()), entry.size(), nullptr,
                0);
}

Hash NodeHash(const Hash& left, const Hash& right) {
  const uint8_t prefix = 0x01;
  return Digest(&prefix, 1, left.data(), left.size(), right.data(), right.size());
}

Hash TreeHash(std::span<const Hash> d) {
  if (d.empty()) return Sha256("");
  if (d.size() == 1) return d[0];
  const uint64_t k = SplitPoint(d.size());
  return NodeHash(TreeHash(d.subspan(0, k)), TreeHash(d.subspan(k)));
}

Result<std::vector<Hash>> InclusionProof(std::span<const Hash> leaf_hashes, uint64_t index) {
  if (index >= leaf_hashes.size()) {
    return InvalidArgument("inclusion proof: index " + std::to_string(index) +
                           " is not below the tree size " + std::to_string(leaf_hashes.size()));
  }
  std::vector<Hash> out;
  Path(leaf_hashes, index, out);
  return out;
}

Result<std::vector<Hash>> ConsistencyProof(std::span<const Hash> leaf_hashes, uint64_t old_size) {
  if (old_size > leaf_hashes.size()) {
    return InvalidArgument("consistency proof: old size " + std::to_string(old_size) +
                           " exceeds the tree size " + std::to_string(leaf_hashes.size()));
  }
  std::vector<Hash> out;
  if (old_size == 0 || old_size == leaf_hashes.size()) return out;
  SubProof(leaf_hashes, old_size, true, out);
  return out;
}

bool VerifyInclusion(uint64_t index, uint64_t tree_size, const Hash& leaf_hash,
                     std::span<const Hash> proof, const Hash& root) {
  if (index >= tree_size) return false;
  uint64_t fn = index;
  uint64_t sn = tree_size - 1;
  Hash r = leaf_hash;
  for (const Hash& p : proof) {
    if (sn == 0) return false;
    if ((fn & 1) || fn == sn) {
      r = NodeHash(p, r);
      if (!(fn & 1)) {
        while (!(fn & 1) && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = NodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn == 0 && r == root;
}

bool VerifyConsistency(uint64_t old_size, uint64_t new_size, const Hash& old_root,
                       const Hash& new_root, std::span<const Hash> proof) {
  if (old_size > new_size) return false;
  if (old_size == new_size) return proof.empty() && old_root == new_root;
  if (old_size == 0) return proof.empty();
  std::vector<Hash> path(proof.begin(), proof.end());
  if ((old_size & (old_size - 1)) == 0) path.insert(path.begin(), old_root);
  if (path.empty()) return false;
  uint64_t fn = old_size - 1;
  uint64_t sn = new_size - 1;
  while (fn & 1) {
    fn >>= 1;
    sn >>= 1;
  }
  Hash fr = path[0];
  Hash sr = path[0];
  for (size_t i = 1; i < path.size(); ++i) {
    const Hash& c = path[i];
    if (sn == 0) return false;
    if ((fn & 1) || fn == sn) {
      fr = NodeHash(c, fr);
      sr = NodeHash(c, sr);
      while (!(fn & 1) && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      sr = NodeHash(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return fr == old_root && sr == new_root && sn == 0;
}

void MerkleFrontier::Append(const Hash& leaf_hash) {
  nodes_.push_back(leaf_hash);
  // Each trailing 1 bit of the old size is a perfect subtree the new leaf's subtree now pairs
  // with: merge them from the right.
  for (uint64_t s = size_; s & 1; s >>= 1) {
    const Hash right = nodes_.back();
    nodes_.pop_back();
    nodes_.back() = NodeHash(nodes_.back(), right);
  }
  ++size_;
}

Hash MerkleFrontier::Root() const {
  if (nodes_.empty()) return Sha256("");
  Hash r = nodes_.back();
  for (size_t i = nodes_.size() - 1; i-- > 0;) r = NodeHash(nodes_[i], r);
  return r;
}

std::string MerkleFrontier::Serialize() const {
  std::string out(8 + nodes_.size() * 32, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((size_ >> (8 * i)) & 0xff);
  for (size_t i = 0; i < nodes_.size(); ++i) std::memcpy(out.data() + 8 + 32 * i, nodes_[i].data(), 32);
  return out;
}

Result<MerkleFrontier> MerkleFrontier::Parse(std::string_view bytes) {
  if (bytes.size() < 8) return InvalidArgument("Merkle frontier: shorter than its 8-byte size");
  MerkleFrontier f;
  for (int i = 0; i < 8; ++i) f.size_ |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[i])) << (8 * i);
  const size_t count = static_cast<size_t>(__builtin_popcountll(f.size_));
  if (bytes.size() != 8 + 32 * count) {
    return InvalidArgument("Merkle frontier: size " + std::to_string(f.size_) + " needs " + std::to_string(count) +
                           " nodes but " + std::to_string(bytes.size()) + " bytes were stored");
  }
  f.nodes_.resize(count);
  for (size_t i = 0; i < count; ++i) std::memcpy(f.nodes_[i].data(), bytes.data() + 8 + 32 * i, 32);
  return f;
}

std::string HexEncode(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 15];
  }
  return out;
}

bool HexDecode(std::string_view hex, std::span<uint8_t> out) {
  if (hex.size() != out.size() * 2) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = nibble(hex[2 * i]);
    const int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return true;
}

}  // namespace tracemark::ledger
