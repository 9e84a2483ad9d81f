// Input expansion (see inputs.h).
#include "tracemark/scan/inputs.h"

#include <glob.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "fmt/format.h"
#include "tracemark/base/file.h"
#include "tracemark/scan/limits.h"

namespace tracemark::scan {
namespace {

namespace fs = std::filesystem;

bool IsPattern(const std::string& p) { return p.find_first_of("*?[") != std::string::npos; }

Status AddPath(const std::string& path, std::vector<std::string>* out) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return NotFound(fmt::format("input {} does not exist", path));
  if (fs::is_directory(st)) {
    fs::recursive_directory_iterator it(path, fs::directory_options::skip_permission_denied, ec);
    if (ec) return IoError(fmt::format("cannot list {}: {}", path, ec.message()));
    for (const fs::recursive_directory_iterator end; it != end; it.increment(ec)) {
      if (ec) return IoError(fmt::format("cannot list {}: {}", path, ec.message()));
      if (it->is_regular_file(ec)) out->push_back(it->path().string());
      if (out->size() > kMaxInputFiles) break;
    }
  } else if (fs::is_regular_file(st)) {
    out->push_back(path);
  } else {
    return InvalidArgument(fmt::format("input {} is neither a file nor a directory", path));
  }
  if (out->size() > kMaxInputFiles) {
    return ResourceExhausted(fmt::format("more than {} input files (kMaxInputFiles)", kMaxInputFiles));
  }
  return Status::Ok();
}

Status AddArgument(const std::string& arg, std::vector<std::string>* out) {
  if (!IsPattern(arg)) return AddPath(arg, out);
  glob_t g{};
  const int rc = ::glob(arg.c_str(), GLOB_NOSORT, nullptr, &g);
  if (rc == GLOB_NOMATCH) {
    globfree(&g);
    return NotFound(fmt::format("pattern {} matches no file", arg));
  }
  if (rc != 0) {
    globfree(&g);
    return IoError(fmt::format("cannot expand pattern {}", arg));
  }
  Status status;
  for (size_t i = 0; i < g.gl_pathc && status.ok(); ++i) status = AddPath(g.gl_pathv[i], out);
  globfree(&g);
  return status;
}

}  // namespace

Result<std::vector<std::string>> ExpandInputs(const std::vector<std::string>& paths,
                                              const std::vector<std::string>& manifests) {
  std::vector<std::string> out;
  for (const std::string& p : paths) TM_RETURN_IF_ERROR(AddArgument(p, &out));
  for (const std::string& m : manifests) {
    TM_ASSIGN_OR_RETURN(std::string text, ReadFile(m, kMaxManifestBytes));
    const fs::path base = fs::path(m).parent_path();
    size_t pos = 0;
    uint64_t line_no = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) nl = text.size();
      std::string line = text.substr(pos, nl - pos);
      pos = nl + 1;
      ++line_no;
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
        line.pop_back();
      }
      const size_t first = line.find_first_not_of(" \t");
      if (first == std::string::npos || line[first] == '#') continue;
      line.erase(0, first);
      const std::string path = fs::path(line).is_absolute() || base.empty()
                                   ? line
                                   : (base / line).string();
      Status s = AddArgument(path, &out);
      if (!s.ok()) return s.WithContext(fmt::format("manifest {} line {}", m, line_no));
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  if (out.empty()) return InvalidArgument("no input files");
  return out;
}

}  // namespace tracemark::scan
