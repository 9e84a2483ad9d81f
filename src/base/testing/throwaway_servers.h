// Test helper: runs tests/replicas/throwaway_servers.sh, which starts and stops real PostgreSQL
// clusters and redis-servers in temporary folders for the store and rate-limiter tests. Test-only;
// not thread-safe (call from the test's main thread).
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace tracemark::testing {

// Runs a shell command; returns its exit code (-1 if it could not run) and its trimmed stdout.
inline int RunScript(const std::string& cmd, std::string* out) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  char buf[512];
  out->clear();
  while (std::fgets(buf, sizeof buf, p) != nullptr) *out += buf;
  const int rc = ::pclose(p);
  while (!out->empty() && (out->back() == '\n' || out->back() == ' ')) out->pop_back();
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// The script that starts throwaway PostgreSQL and Redis servers (tests/replicas/).
inline std::string ThrowawayServersScript() {
  return std::string(TM_SOURCE_DIR) + "/tests/replicas/throwaway_servers.sh";
}

}  // namespace tracemark::testing
