// Secret files on disk (keyrings): created owner-only (mode 0600) and refused on load when any
// group or other permission bit is set or the file belongs to another user, so a leaked copy is
// not silently used. Content is bounded (kMaxSecretFileBytes).
//
// Functions are thread-safe as far as the file system is; concurrent writers of the same path
// must be serialized by the caller (the last atomic rename wins).
#pragma once

#include <string>
#include <string_view>

#include "tracemark/base/status.h"

namespace tracemark::crypto {

// A keyring holds a handful of versions; anything bigger is not a keyring.
inline constexpr size_t kMaxSecretFileBytes = 1 << 20;

// Reads a secret file after checking: regular file, owned by the effective user, no permission
// bits for group or others. A violation is PermissionDenied with a message naming the fix.
Result<std::string> ReadSecretFile(const std::string& path);

// Creates `path` with mode 0600; fails with InvalidArgument if it already exists (never
// overwrites a secret). The content is fsynced before returning.
Status CreateSecretFile(const std::string& path, std::string_view content);

// Replaces an existing secret file atomically (temporary file, fsync, rename) with mode 0600.
Status ReplaceSecretFile(const std::string& path, std::string_view content);

}  // namespace tracemark::crypto
