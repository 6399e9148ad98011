#include "services/common/testing/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

extern char** environ;

namespace mstperf::testing {

std::string MakeTempDir(const std::string& prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = absl::StrCat(base ? base : "/tmp", "/", prefix, "-XXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) std::abort();
  return tmpl;
}

absl::StatusOr<std::unique_ptr<ServiceProcess>> ServiceProcess::Start(
    const std::string& binary_path, const std::vector<std::string>& args,
    absl::Duration timeout) {
  std::unique_ptr<ServiceProcess> p(new ServiceProcess());
  const std::string dir = MakeTempDir("mstperf-proc");
  p->ready_path_ = dir + "/ready.json";
  p->log_path_ = dir + "/log.txt";

  std::vector<std::string> argv_s = {binary_path};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  argv_s.push_back("--ready_file=" + p->ready_path_);
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, p->log_path_.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  int rc = posix_spawn(&p->pid_, binary_path.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("cannot start ", binary_path, ": ", strerror(rc)));
  }

  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    std::ifstream in(p->ready_path_);
    if (in) {
      try {
        nlohmann::json j = nlohmann::json::parse(in);
        for (auto& [k, v] : j.items()) {
          if (v.is_number_integer()) p->ports_[k] = v.get<int>();
        }
        return p;
      } catch (const std::exception&) {
        // Written atomically, so a parse error is unexpected; retry anyway.
      }
    }
    int status = 0;
    if (waitpid(p->pid_, &status, WNOHANG) == p->pid_) {
      p->exited_ = true;
      return absl::InternalError(absl::StrCat(binary_path, " exited before it was ready:\n",
                                              p->LogTail()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError(
      absl::StrCat(binary_path, " not ready after ", absl::FormatDuration(timeout), ":\n",
                   p->LogTail()));
}

ServiceProcess::~ServiceProcess() {
  if (exited_ || pid_ <= 0) return;
  Signal(SIGTERM);
  if (Wait(absl::Seconds(10)) == -1) {
    Signal(SIGKILL);
    Wait(absl::Seconds(5));
  }
}

int ServiceProcess::port(const std::string& key) const {
  auto it = ports_.find(key);
  return it == ports_.end() ? -1 : it->second;
}

std::string ServiceProcess::grpc_address() const {
  return absl::StrCat("127.0.0.1:", port("grpc_port"));
}

std::string ServiceProcess::LogTail(size_t bytes) const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > bytes ? s.substr(s.size() - bytes) : s;
}

void ServiceProcess::Signal(int sig) {
  if (!exited_ && pid_ > 0) ::kill(pid_, sig);
}

int ServiceProcess::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exited_ = true;
      return status;
    }
    if (absl::Now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace mstperf::testing
