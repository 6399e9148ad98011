#ifndef MSTPERF_SERVICES_COMMON_TESTING_PROCESS_H_
#define MSTPERF_SERVICES_COMMON_TESTING_PROCESS_H_

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace mstperf::testing {

// A service binary started for a test, on port 0. Start() adds --ready_file=<tmp> to the
// arguments and waits for the service to write its ports there ({"grpc_port": N, ...}).
// stderr and stdout go to a log file whose tail is included in errors. The destructor sends
// SIGTERM, waits up to 10 s, then SIGKILLs.
class ServiceProcess {
 public:
  static absl::StatusOr<std::unique_ptr<ServiceProcess>> Start(
      const std::string& binary_path, const std::vector<std::string>& args,
      absl::Duration timeout = absl::Seconds(30));
  ~ServiceProcess();

  // A port from the ready file, e.g. port("grpc_port"); -1 when absent.
  int port(const std::string& key) const;
  // "127.0.0.1:<grpc_port>".
  std::string grpc_address() const;
  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  // The last `bytes` of the log.
  std::string LogTail(size_t bytes = 4000) const;

  void Signal(int sig);
  // Waits for exit; returns the raw wait status, or -1 on timeout.
  int Wait(absl::Duration timeout = absl::Seconds(10));

 private:
  ServiceProcess() = default;
  pid_t pid_ = -1;
  bool exited_ = false;
  std::string log_path_;
  std::string ready_path_;
  std::map<std::string, int> ports_;
};

// A fresh, empty temporary directory for one test (removed by the OS tmp cleaner, not here:
// failed tests keep their evidence).
std::string MakeTempDir(const std::string& prefix);

}  // namespace mstperf::testing

#endif  // MSTPERF_SERVICES_COMMON_TESTING_PROCESS_H_
