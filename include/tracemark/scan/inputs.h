// Input expansion: command-line paths, globs, directories and manifests -> the sorted file list.
//
// A path containing *, ? or [ is a glob(3) pattern; a directory contributes its regular files,
// recursively; a manifest lists one path per line (blank lines and lines starting with '#' are
// skipped; relative paths are relative to the manifest's folder). The result is sorted
// byte-wise and de-duplicated, so a file's index never depends on argument order: shard
// ownership and output order both rest on it. Pure functions of the file system; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "tracemark/base/status.h"

namespace tracemark::scan {

// Most files one scan job takes.
inline constexpr size_t kMaxInputFiles = 10'000'000;

Result<std::vector<std::string>> ExpandInputs(const std::vector<std::string>& paths,
                                              const std::vector<std::string>& manifests);

}  // namespace tracemark::scan
