#include "tracemark/redteam/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace tracemark::redteam {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPollInterval = std::chrono::milliseconds(50);

int DecodeStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

Result<std::string> SelfExe() {
  std::error_code ec;
  const std::filesystem::path p = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return IoError("cannot resolve /proc/self/exe: " + ec.message());
  return p.string();
}

Result<ChildProcess> ChildProcess::Start(const std::vector<std::string>& argv, const std::string& stdout_path,
                                         const std::string& stderr_path) {
  if (argv.empty()) return InvalidArgument("empty command");
  // Open the files in the parent so errors are reported here.
  const int out_fd = ::open(stdout_path.empty() ? "/dev/null" : stdout_path.c_str(),
                            O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out_fd < 0) return IoError("cannot open " + stdout_path + ": " + std::strerror(errno));
  int err_fd = -1;
  if (!stderr_path.empty()) {
    err_fd = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (err_fd < 0) {
      ::close(out_fd);
      return IoError("cannot open " + stderr_path + ": " + std::strerror(errno));
    }
  }
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(out_fd);
    if (err_fd >= 0) ::close(err_fd);
    return IoError(std::string("fork failed: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::dup2(out_fd, STDOUT_FILENO);
    if (err_fd >= 0) ::dup2(err_fd, STDERR_FILENO);
    const int null_in = ::open("/dev/null", O_RDONLY);
    if (null_in >= 0) ::dup2(null_in, STDIN_FILENO);
    ::execv(args[0], args.data());
    std::fprintf(stderr, "exec %s failed: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(out_fd);
  if (err_fd >= 0) ::close(err_fd);
  ChildProcess c;
  c.pid_ = pid;
  return c;
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept : pid_(other.pid_), exit_code_(other.exit_code_) {
  other.pid_ = -1;
}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0) Terminate();
    pid_ = other.pid_;
    exit_code_ = other.exit_code_;
    other.pid_ = -1;
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) Terminate();
}

bool ChildProcess::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_code_ = DecodeStatus(status);
    pid_ = -1;
    return false;
  }
  return r == 0;
}

Result<int> ChildProcess::Wait(double timeout_s) {
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  while (pid_ > 0) {
    if (!running()) break;
    if (timeout_s > 0 && Clock::now() >= deadline) return IoError("child did not finish in time");
    std::this_thread::sleep_for(kPollInterval);
  }
  return exit_code_;
}

int ChildProcess::Terminate(double grace_s) {
  if (pid_ <= 0) return exit_code_;
  ::kill(pid_, SIGTERM);
  Result<int> r = Wait(grace_s);
  if (r.ok()) return *r;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  exit_code_ = DecodeStatus(status);
  pid_ = -1;
  return exit_code_;
}

Result<CommandResult> RunCommand(const std::vector<std::string>& argv, const std::string& scratch_dir,
                                 const std::string& stderr_path, double timeout_s) {
  static std::atomic<int> counter{0};
  const std::string out_path = scratch_dir + "/.cmd-" + std::to_string(::getpid()) + "-" +
                               std::to_string(counter.fetch_add(1)) + ".stdout";
  const auto t0 = Clock::now();
  TM_ASSIGN_OR_RETURN(ChildProcess child, ChildProcess::Start(argv, out_path, stderr_path));
  CommandResult r;
  Result<int> code = child.Wait(timeout_s);
  r.exit_code = code.ok() ? *code : child.Terminate();
  r.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::ifstream in(out_path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  r.stdout_text = ss.str().substr(0, kMaxCapturedStdoutBytes);
  std::error_code ec;
  std::filesystem::remove(out_path, ec);
  if (!code.ok()) return IoError(argv.size() > 1 ? "'" + argv[1] + "' timed out after " + std::to_string(timeout_s) + " s" : "timed out");
  return r;
}

}  // namespace tracemark::redteam
