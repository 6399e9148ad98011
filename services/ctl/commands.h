#ifndef MSTPERF_SERVICES_CTL_COMMANDS_H_
#define MSTPERF_SERVICES_CTL_COMMANDS_H_

// The mstperfctl commands. Each returns the process exit code: 0 success, 1 the operation
// failed (experiment failed, RPC error), 2 bad usage or input (flags, .env), 130 interrupted.
// Errors are printed to stderr as one clear sentence; results to stdout.

#include <cstdint>
#include <string>
#include <vector>

namespace mstperf::ctl {

struct CtlOptions {
  std::string controller = "127.0.0.1:50051";  // SearchController address
  // run
  std::string env_file = ".env";
  std::string experiment_id;     // optional id for the new experiment
  std::string progress = "auto"; // auto (bar on a TTY, else plain), bar, plain, none
  double progress_every_s = 10;  // plain mode: a progress line this often
  bool capacity = true;          // ask the simulator's /sim/capacity for the table
  // iterate
  std::string url;
  std::string model;
  std::string tokens;
  double req_min = 0;
  std::string duration;
  std::string api = "completions";
  std::string arrival = "poisson";
  std::string loadgen = "127.0.0.1:50052";  // comma-separated: the rate is split across them
  std::string out;
  uint64_t seed = 0;
  // evaluate
  std::string mode = "most";
  std::string evaluator;          // evaluator service address; empty: judge in-process
  double filter_buffer_s = -1;    // <0: from the folder's files, else the mode's default
  double success_rate_pct = 0;    // 0: from the folder's files, else 95
};

int RunCommand(const CtlOptions& options);
int StatusCommand(const CtlOptions& options, const std::string& id);
int ListCommand(const CtlOptions& options);
int CancelCommand(const CtlOptions& options, const std::string& id);
int IterateCommand(const CtlOptions& options);
int EvaluateCommand(const CtlOptions& options, const std::string& dir);
// Prints every .env key with its default and meaning.
int EnvHelpCommand();

}  // namespace mstperf::ctl

#endif  // MSTPERF_SERVICES_CTL_COMMANDS_H_
