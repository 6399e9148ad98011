// Early stop on loopback: the same default-mode search against the simulator with the
// evaluator's early verdicts on and off (real processes on port 0: simulator, evaluator, two
// loadgen replicas, controller; tests/integration/controller/suite.h). Prints the search's wall
// time, its iterations and the MST for each, and the ratio. Run by bench/controller/run.sh.
#include <cmath>
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "tests/integration/controller/suite.h"

ABSL_FLAG(double, duration_s, 30, "DURATION of every iteration, seconds");
ABSL_FLAG(int, input_tokens, 32, "input tokens of the pair");
ABSL_FLAG(int, output_tokens, 16, "output tokens of the pair");

namespace mstperf {
namespace {

struct Run {
  double wall_s = 0;
  double iteration_s = 0;  // sum of the iterations' own spans
  int iterations = 0;
  int stopped_early = 0;
  double mst = 0;
  std::string sequence;
};

Run Search(testing::Suite& suite, double capacity, bool early, const std::string& id) {
  v1::ExperimentSpec spec =
      suite.Spec(absl::GetFlag(FLAGS_input_tokens), absl::GetFlag(FLAGS_output_tokens), capacity,
                 v1::EVALUATOR_MODE_DEFAULT, absl::GetFlag(FLAGS_duration_s));
  spec.set_early_stop(early);
  const absl::Time start = absl::Now();
  v1::Experiment e = suite.RunToEnd(spec, id, absl::Minutes(60));
  Run r;
  r.wall_s = absl::ToDoubleSeconds(absl::Now() - start);
  if (e.state() != v1::EXPERIMENT_STATE_SUCCEEDED) {
    std::cerr << id << " did not succeed: " << e.error() << "\n" << suite.Logs() << "\n";
    return r;
  }
  const v1::PairResult& pair = e.pairs(0);
  r.mst = pair.mst_req_min();
  for (const auto& it : pair.iterations()) {
    ++r.iterations;
    r.stopped_early += it.stopped_early();
    r.iteration_s += (it.ended_unix_us() - it.started_unix_us()) / 1e6;
    r.sequence += absl::StrFormat(
        "%s%.0f %s%s", r.sequence.empty() ? "" : ", ", it.req_min(),
        it.verdict().sustainable() ? "T" : "F",
        it.stopped_early() ? absl::StrFormat(" (early %.1f s)", it.verdict().judged_at_elapsed_s())
                           : "");
  }
  return r;
}

int Main() {
  auto suite_or = testing::Suite::Start("early-bench");
  if (!suite_or.ok()) {
    std::cerr << suite_or.status() << "\n";
    return 1;
  }
  testing::Suite& suite = **suite_or;
  const int in = absl::GetFlag(FLAGS_input_tokens), out = absl::GetFlag(FLAGS_output_tokens);
  const double capacity = suite.Capacity(in, out);
  if (capacity <= 0) return 1;
  std::cout << absl::StrFormat(
      "pair %d:%d, closed-form capacity %.1f req/min, DURATION %.0f s, start 0.5 C, x3, "
      "relative threshold 0.05, constant arrivals\n",
      in, out, capacity, absl::GetFlag(FLAGS_duration_s));
  const Run on = Search(suite, capacity, true, "early-on");
  const Run off = Search(suite, capacity, false, "early-off");
  std::cout << "| early stop | iterations | stopped early | iterations' time | search wall | MST "
               "(vs C) |\n|---|---|---|---|---|---|\n";
  for (const auto& [name, r] : {std::pair{"on", on}, std::pair{"off", off}}) {
    std::cout << absl::StrFormat("| %s | %d | %d | %.1f s | %.1f s | %.0f (%+.1f%%) |\n", name,
                                 r.iterations, r.stopped_early, r.iteration_s, r.wall_s, r.mst,
                                 100 * (r.mst - capacity) / capacity);
  }
  std::cout << "on:  " << on.sequence << "\noff: " << off.sequence << "\n";
  if (off.wall_s > 0) {
    std::cout << absl::StrFormat("search wall on / off: %.2f\n", on.wall_s / off.wall_s);
  }
  return on.mst > 0 && off.mst > 0 ? 0 : 1;
}

}  // namespace
}  // namespace mstperf

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return mstperf::Main();
}
