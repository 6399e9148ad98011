// mstperfctl: start and follow MST experiments, run one iteration, re-judge an iteration folder.
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "services/common/init.h"
#include "services/ctl/commands.h"
#include "services/ctl/common.h"

ABSL_FLAG(std::string, controller, "127.0.0.1:50051", "SearchController gRPC address");
ABSL_FLAG(std::string, env_file, ".env", "run: the experiment's .env file");
ABSL_FLAG(std::string, id, "", "run: id for the new experiment ([A-Za-z0-9._-]; generated when empty)");
ABSL_FLAG(std::string, progress, "auto",
          "run: auto (a progress bar on a TTY, plain lines otherwise), bar, plain or none");
ABSL_FLAG(double, progress_every_s, 10, "run: plain mode prints a progress line this often");
ABSL_FLAG(bool, capacity, true,
          "run/status: show the simulator's closed-form capacity next to the MST when the target "
          "answers GET /sim/capacity");
ABSL_FLAG(std::string, url, "", "iterate: target URL, e.g. http://127.0.0.1:8000");
ABSL_FLAG(std::string, model, "", "iterate: model name (default: the target's first model)");
ABSL_FLAG(std::string, tokens, "", "iterate: IN:OUT token pair, either side may be min-max");
ABSL_FLAG(double, req_min, 0,
          "iterate: offered rate, requests per minute; evaluate: REQ_MIN of the folder's "
          "iteration (default: read from its results.csv / iteration.json)");
ABSL_FLAG(std::string, duration, "", "iterate: sending window, e.g. 30s, 5m");
ABSL_FLAG(std::string, api, "completions", "iterate: completions or chat");
ABSL_FLAG(std::string, arrival, "poisson", "iterate: constant, poisson or gamma");
ABSL_FLAG(std::string, loadgen, "127.0.0.1:50052",
          "iterate: loadgen gRPC address(es), comma-separated; the rate is split across them");
ABSL_FLAG(std::string, out, "", "iterate: folder for output.csv, results.json, requests.jsonl");
ABSL_FLAG(uint64_t, seed, 0, "iterate: seed of the schedule, token lengths and prompts");
ABSL_FLAG(std::string, mode, "most", "evaluate: most (the original's verdict) or default");
ABSL_FLAG(std::string, evaluator, "",
          "evaluate: evaluator gRPC address; empty judges in-process with the same rules");
ABSL_FLAG(double, filter_buffer, -1,
          "evaluate: FILTER_BUFFER seconds (default: from the folder, else the mode's default)");
ABSL_FLAG(double, success_rate, 0,
          "evaluate: SUCCESS_RATE percent (default: from the folder, else 95)");

namespace {

constexpr char kUsage[] =
    "mstperfctl: find the maximum sustainable throughput of an LLM endpoint.\n"
    "\n"
    "  mstperfctl run [--env-file .env] [--controller ADDR]   start an experiment, follow it,\n"
    "                                                          print the MST table\n"
    "  mstperfctl status [ID]        state and MST table (default: the latest experiment)\n"
    "  mstperfctl list               every experiment the controller knows\n"
    "  mstperfctl cancel ID          stop an experiment, keeping what it collected\n"
    "  mstperfctl iterate --url URL --tokens IN:OUT --req-min R --duration D --out DIR\n"
    "        [--api completions|chat] [--arrival constant|poisson|gamma] [--loadgen ADDR[,ADDR]]\n"
    "                                one fixed-rate iteration through the loadgen service\n"
    "  mstperfctl evaluate [--mode most|default] DIR\n"
    "                                re-judge an iteration folder (mstperf's or the original's)\n"
    "  mstperfctl env-keys           every .env key with its default\n"
    "\n"
    "Flags may be written --env-file or --env_file; each can also be set as MSTPERF_<FLAG>.";

// absl flags are named with underscores; accept the dashed spelling too (--env-file).
std::vector<char*> NormalizeFlagNames(int argc, char** argv, std::vector<std::string>& storage) {
  storage.assign(argv, argv + argc);
  for (size_t i = 1; i < storage.size(); ++i) {
    std::string& a = storage[i];
    if (a == "--") break;
    if (a.rfind("--", 0) != 0) continue;
    const size_t end = std::min(a.find('='), a.size());
    for (size_t j = 2; j < end; ++j) {
      if (a[j] == '-') a[j] = '_';
    }
  }
  std::vector<char*> out;
  for (auto& s : storage) out.push_back(s.data());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> storage;
  std::vector<char*> args = NormalizeFlagNames(argc, argv, storage);
  std::vector<char*> positional =
      mstperf::InitProcess(static_cast<int>(args.size()), args.data(), "mstperfctl", kUsage);
  mstperf::ctl::StartInterruptWatcher();

  if (positional.size() < 2) {
    std::cerr << kUsage << "\n";
    return mstperf::ctl::kExitUsage;
  }
  const std::string command = positional[1];
  const std::string arg = positional.size() > 2 ? positional[2] : "";
  if (positional.size() > 3) {
    return mstperf::ctl::Fail(mstperf::ctl::kExitUsage,
                              absl::StrCat("unexpected argument \"", positional[3], "\""));
  }

  mstperf::ctl::CtlOptions o;
  o.controller = absl::GetFlag(FLAGS_controller);
  o.env_file = absl::GetFlag(FLAGS_env_file);
  o.experiment_id = absl::GetFlag(FLAGS_id);
  o.progress = absl::GetFlag(FLAGS_progress);
  o.progress_every_s = absl::GetFlag(FLAGS_progress_every_s);
  o.capacity = absl::GetFlag(FLAGS_capacity);
  o.url = absl::GetFlag(FLAGS_url);
  o.model = absl::GetFlag(FLAGS_model);
  o.tokens = absl::GetFlag(FLAGS_tokens);
  o.req_min = absl::GetFlag(FLAGS_req_min);
  o.duration = absl::GetFlag(FLAGS_duration);
  o.api = absl::GetFlag(FLAGS_api);
  o.arrival = absl::GetFlag(FLAGS_arrival);
  o.loadgen = absl::GetFlag(FLAGS_loadgen);
  o.out = absl::GetFlag(FLAGS_out);
  o.seed = absl::GetFlag(FLAGS_seed);
  o.mode = absl::GetFlag(FLAGS_mode);
  o.evaluator = absl::GetFlag(FLAGS_evaluator);
  o.filter_buffer_s = absl::GetFlag(FLAGS_filter_buffer);
  o.success_rate_pct = absl::GetFlag(FLAGS_success_rate);
  if (o.progress != "auto" && o.progress != "bar" && o.progress != "plain" &&
      o.progress != "none") {
    return mstperf::ctl::Fail(mstperf::ctl::kExitUsage,
                              "--progress: expected auto, bar, plain or none, got \"" +
                                  o.progress + "\"");
  }

  auto no_arg = [&](const char* name) {
    if (!arg.empty()) {
      std::exit(mstperf::ctl::Fail(mstperf::ctl::kExitUsage,
                                   absl::StrCat(name, " takes no argument, got \"", arg, "\"")));
    }
  };
  if (command == "run") {
    no_arg("run");
    return mstperf::ctl::RunCommand(o);
  }
  if (command == "status") return mstperf::ctl::StatusCommand(o, arg);
  if (command == "list") {
    no_arg("list");
    return mstperf::ctl::ListCommand(o);
  }
  if (command == "cancel") return mstperf::ctl::CancelCommand(o, arg);
  if (command == "iterate") {
    no_arg("iterate");
    return mstperf::ctl::IterateCommand(o);
  }
  if (command == "evaluate") return mstperf::ctl::EvaluateCommand(o, arg);
  if (command == "env-keys") return mstperf::ctl::EnvHelpCommand();
  if (command == "help") {
    std::cout << kUsage << "\n";
    return 0;
  }
  return mstperf::ctl::Fail(mstperf::ctl::kExitUsage,
                            absl::StrCat("unknown command \"", command, "\"\n", kUsage));
}
