// Child processes for `tracemark replay`: start another tracemark subcommand (usually
// /proc/self/exe), wait for it with a timeout, capture its stdout, send its stderr to a log file.
//
// A ChildProcess is owned by one thread; its destructor terminates a child still running (SIGTERM,
// then SIGKILL after kTerminateGraceSeconds). Only processes started here are ever signalled.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "tracemark/base/status.h"

namespace tracemark::redteam {

inline constexpr double kTerminateGraceSeconds = 20;
// Most stdout bytes RunCommand keeps.
inline constexpr size_t kMaxCapturedStdoutBytes = 16u << 20;

// The running binary's path (/proc/self/exe resolved).
Result<std::string> SelfExe();

class ChildProcess {
 public:
  // Starts argv[0] with argv. stdout goes to stdout_path ("" = /dev/null), stderr is appended to
  // stderr_path ("" = inherited).
  static Result<ChildProcess> Start(const std::vector<std::string>& argv, const std::string& stdout_path,
                                    const std::string& stderr_path);
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  bool running();
  // Waits up to timeout_s (<= 0: forever). Returns the exit code (128+signal when signalled);
  // DeadlineExceeded-like IoError when it did not end in time (the child keeps running).
  Result<int> Wait(double timeout_s);
  // SIGTERM, wait up to grace, then SIGKILL; returns the exit code.
  int Terminate(double grace_s = kTerminateGraceSeconds);

 private:
  ChildProcess() = default;
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

struct CommandResult {
  int exit_code = -1;
  std::string stdout_text;
  double wall_s = 0;
};

// Runs argv to completion (terminated after timeout_s), stdout captured through a temp file in
// scratch_dir, stderr appended to stderr_path.
Result<CommandResult> RunCommand(const std::vector<std::string>& argv, const std::string& scratch_dir,
                                 const std::string& stderr_path, double timeout_s);

}  // namespace tracemark::redteam
