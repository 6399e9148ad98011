#include "services/common/init.h"

#include <cctype>
#include <cstdlib>
#include <iostream>

#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "services/common/log.h"

namespace mstperf {
namespace {

sigset_t TerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

std::string EnvName(const std::string& flag) {
  std::string name = "MSTPERF_";
  for (char c : flag) name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return name;
}

void ApplyEnvironmentOverrides() {
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    std::string env = EnvName(std::string(name));
    const char* value = std::getenv(env.c_str());
    if (value == nullptr) continue;
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      std::cerr << "invalid value for " << env << " (flag --" << name << "): " << error << "\n";
      std::exit(2);
    }
  }
}

}  // namespace

std::vector<char*> InitProcess(int argc, char** argv, const std::string& service,
                               const std::string& usage) {
  sigset_t set = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  SetLogServiceName(service);
  absl::SetProgramUsageMessage(usage);
  ApplyEnvironmentOverrides();
  return absl::ParseCommandLine(argc, argv);
}

int WaitForTerminationSignal() {
  sigset_t set = TerminationSignals();
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  return sig;
}

}  // namespace mstperf
