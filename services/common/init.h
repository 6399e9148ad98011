#ifndef MSTPERF_SERVICES_COMMON_INIT_H_
#define MSTPERF_SERVICES_COMMON_INIT_H_

#include <csignal>
#include <string>
#include <vector>

namespace mstperf {

// Call first thing in main(), before any thread exists:
//  - blocks SIGTERM/SIGINT in every thread (WaitForTerminationSignal() receives them),
//  - applies environment overrides: for every registered absl flag `foo_bar`, a variable
//    MSTPERF_FOO_BAR sets its value (the command line still wins), which is how containers
//    configure the services,
//  - parses the command line (exits with a clear message on a bad flag).
// `service` names the process in logs. Returns the positional arguments.
std::vector<char*> InitProcess(int argc, char** argv, const std::string& service,
                               const std::string& usage);

// Blocks until SIGTERM or SIGINT arrives; returns the signal number.
int WaitForTerminationSignal();

}  // namespace mstperf

#endif  // MSTPERF_SERVICES_COMMON_INIT_H_
