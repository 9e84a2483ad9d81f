// RFC 6962 (Certificate Transparency) Merkle tree hashing, inclusion and consistency proofs.
//
// The audit log is a list of entries; its tree hash is MTH(D[n]) of RFC 6962 section 2.1:
// leaf = SHA-256(0x00 || entry), node = SHA-256(0x01 || left || right), split at the largest
// power of two below n (an odd node is promoted, never duplicated). Proofs follow RFC 6962
// sections 2.1.1 (PATH) and 2.1.2 (PROOF); verification follows RFC 9162 sections 2.1.3.2 and
// 2.1.4.2. The format is documented in docs/formats/ledger.md.
// All functions are pure and safe to call from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tracemark/base/status.h"

namespace tracemark::ledger {

using Hash = std::array<uint8_t, 32>;

// SHA-256 of arbitrary bytes (OpenSSL).
Hash Sha256(std::string_view bytes);
// SHA-256(0x00 || entry).
Hash LeafHash(std::string_view entry);
// SHA-256(0x01 || left || right).
Hash NodeHash(const Hash& left, const Hash& right);

// MTH over leaf hashes; the empty tree hashes to SHA-256("").
Hash TreeHash(std::span<const Hash> leaf_hashes);

// The audit path of leaf `index` in the tree of all `leaf_hashes` (RFC 6962 PATH).
Result<std::vector<Hash>> InclusionProof(std::span<const Hash> leaf_hashes, uint64_t index);
// The proof that the first `old_size` leaves form a prefix of the whole tree (RFC 6962 PROOF).
Result<std::vector<Hash>> ConsistencyProof(std::span<const Hash> leaf_hashes, uint64_t old_size);

bool VerifyInclusion(uint64_t index, uint64_t tree_size, const Hash& leaf_hash,
                     std::span<const Hash> proof, const Hash& root);
bool VerifyConsistency(uint64_t old_size, uint64_t new_size, const Hash& old_root,
                       const Hash& new_root, std::span<const Hash> proof);

// The compact range [0, n) of an RFC 6962 tree (the Merkle "frontier"): the roots of the
// perfect subtrees that n's binary digits give, largest (leftmost) first, at most 64 of them.
// Append() merges equal-size subtrees (O(log n) hashes, amortized 2); Root() folds them right to
// left (O(log n)) and equals TreeHash() of every leaf appended so far. Lets a log append and
// sign a new checkpoint without reading its earlier entries. A value type; not thread-safe.
class MerkleFrontier {
 public:
  uint64_t size() const { return size_; }
  const std::vector<Hash>& nodes() const { return nodes_; }
  void Append(const Hash& leaf_hash);
  Hash Root() const;
  // Binary form: 8-byte little-endian size, then 32 bytes per node (popcount(size) nodes).
  std::string Serialize() const;
  static Result<MerkleFrontier> Parse(std::string_view bytes);

 private:
  uint64_t size_ = 0;
  std::vector<Hash> nodes_;
};

std::string HexEncode(std::span<const uint8_t> bytes);
// Parses lowercase or uppercase hex of exactly 2 * out.size() digits.
bool HexDecode(std::string_view hex, std::span<uint8_t> out);

}  // namespace tracemark::ledger
