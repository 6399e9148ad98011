#ifndef MSTPERF_SERVICES_CTL_COMMON_H_
#define MSTPERF_SERVICES_CTL_COMMON_H_

// What the mstperfctl commands share: Ctrl-C handling, gRPC error messages, file reading.

#include <functional>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"

namespace mstperf::ctl {

// Exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitInterrupted = 130;

// SIGINT/SIGTERM are blocked in every thread (mstperf::InitProcess); one watcher thread
// receives them and calls the current handler. The default handler exits with 130; commands
// that can stop gracefully (run detaches, iterate cancels) install their own for their
// duration with ScopedInterruptHandler.
void StartInterruptWatcher();
class ScopedInterruptHandler {
 public:
  explicit ScopedInterruptHandler(std::function<void()> handler);
  ~ScopedInterruptHandler();  // restores the default; the handler never runs after this
};

// "cannot reach the controller at 127.0.0.1:50051 (...)" etc.: one sentence for a failed RPC.
std::string DescribeRpcError(const grpc::Status& status, const std::string& service,
                             const std::string& address);
int ExitCodeFor(const grpc::Status& status);

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address);

absl::StatusOr<std::string> ReadFile(const std::string& path);

// "mstperfctl: <message>" on stderr; returns `code`.
int Fail(int code, const std::string& message);

}  // namespace mstperf::ctl

#endif  // MSTPERF_SERVICES_CTL_COMMON_H_
