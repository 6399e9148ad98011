#ifndef MSTPERF_TESTS_INTEGRATION_CTL_SUBPROCESS_H_
#define MSTPERF_TESTS_INTEGRATION_CTL_SUBPROCESS_H_

// Runs a program (mstperfctl, the scripts) as a real subprocess: stdout and stderr captured
// to files, an exit code, a timeout, and optional extra environment variables.

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace mstperf::ctl::testing {

struct Output {
  int exit_code = -1;  // -1: killed by a signal or the timeout
  std::string out;
  std::string err;
};

class Subprocess {
 public:
  // Starts `argv` (argv[0] is a path) with the current environment plus `env`.
  Subprocess(const std::vector<std::string>& argv,
             const std::map<std::string, std::string>& env = {});
  ~Subprocess();  // kills the process if still running

  pid_t pid() const { return pid_; }
  void Signal(int sig);
  // Waits up to `timeout`, then SIGKILLs it; returns what it printed and its exit code.
  Output Wait(absl::Duration timeout);
  // What it has printed so far.
  std::string OutSoFar() const;

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  std::string out_path_, err_path_;
};

// Run to completion.
Output RunCmd(const std::vector<std::string>& argv,
           const std::map<std::string, std::string>& env = {},
           absl::Duration timeout = absl::Seconds(120));

// The built mstperfctl.
std::string CtlPath();

// Writes `text` to `path`.
void WriteText(const std::string& path, const std::string& text);
std::string ReadText(const std::string& path);

}  // namespace mstperf::ctl::testing

#endif  // MSTPERF_TESTS_INTEGRATION_CTL_SUBPROCESS_H_
