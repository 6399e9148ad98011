#include "services/ctl/common.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"

namespace mstperf::ctl {
namespace {

std::mutex handler_mu;
std::function<void()>* current_handler = nullptr;  // guarded by handler_mu

void DefaultInterrupt() {
  std::cerr << "\nmstperfctl: interrupted\n";
  std::_Exit(kExitInterrupted);
}

}  // namespace

void StartInterruptWatcher() {
  std::thread([] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    while (true) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      std::lock_guard<std::mutex> lock(handler_mu);
      if (current_handler != nullptr) {
        (*current_handler)();
      } else {
        DefaultInterrupt();
      }
    }
  }).detach();
}

ScopedInterruptHandler::ScopedInterruptHandler(std::function<void()> handler) {
  std::lock_guard<std::mutex> lock(handler_mu);
  current_handler = new std::function<void()>(std::move(handler));
}

ScopedInterruptHandler::~ScopedInterruptHandler() {
  std::lock_guard<std::mutex> lock(handler_mu);
  delete current_handler;
  current_handler = nullptr;
}

std::string DescribeRpcError(const grpc::Status& status, const std::string& service,
                             const std::string& address) {
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::StrCat("cannot reach the ", service, " at ", address,
                          " (is the suite running? `make up` starts it; --", service,
                          " sets the address): ", status.error_message());
    case grpc::StatusCode::INVALID_ARGUMENT:
      return absl::StrCat("the ", service, " rejected the request: ", status.error_message());
    case grpc::StatusCode::NOT_FOUND:
      return absl::StrCat("not found: ", status.error_message());
    case grpc::StatusCode::UNIMPLEMENTED:
      return absl::StrCat("the service at ", address, " is not the ", service, " (",
                          status.error_message(), ")");
    default:
      return absl::StrCat("the ", service, " at ", address, " failed: ",
                          status.error_message());
  }
}

int ExitCodeFor(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::INVALID_ARGUMENT ? kExitUsage : kExitFailed;
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);  // an Experiment can be large
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int Fail(int code, const std::string& message) {
  std::cerr << "mstperfctl: " << message << "\n";
  return code;
}

}  // namespace mstperf::ctl
