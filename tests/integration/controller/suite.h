#ifndef MSTPERF_TESTS_INTEGRATION_CONTROLLER_SUITE_H_
#define MSTPERF_TESTS_INTEGRATION_CONTROLLER_SUITE_H_

// The whole mstperf suite for one test, as real processes on loopback (port 0): the simulator,
// the evaluator, two loadgen replicas and the controller, plus helpers to drive experiments
// through the controller's gRPC API.

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "mstperf/v1/controller.grpc.pb.h"
#include "services/common/testing/process.h"

namespace mstperf::testing {

class Suite {
 public:
  // NOT_FOUND when a service binary has not been built (the test then skips).
  static absl::StatusOr<std::unique_ptr<Suite>> Start(const std::string& name);

  const std::string& results_dir() const { return results_; }
  // The simulator's closed-form capacity for a pair (GET /sim/capacity), requests per minute.
  double Capacity(int input_tokens, int output_tokens) const;
  // A spec against the simulator that starts at 0.5 x capacity, triples (so stage 1 overloads
  // it by 50%, where no verdict is a close call) and bisects to `threshold` (relative).
  v1::ExperimentSpec Spec(int input_tokens, int output_tokens, double capacity,
                          v1::EvaluatorMode mode, double duration_s, double threshold = 0.05) const;

  grpc::Status StartExperiment(const v1::ExperimentSpec& spec, const std::string& id);
  v1::Experiment RunToEnd(const v1::ExperimentSpec& spec, const std::string& id, absl::Duration timeout);
  // Watches (re-watching across controller restarts) until the experiment ends or timeout.
  v1::Experiment WaitToEnd(const std::string& id, absl::Duration timeout);
  bool WaitForIterations(const std::string& id, int n, absl::Duration timeout);
  bool WaitForProgress(const std::string& id, int n, absl::Duration timeout);
  v1::Experiment Cancel(const std::string& id);

  void KillController();     // SIGKILL, as a crash
  void RestartController();  // same results directory and flags
  std::string Logs() const;  // the tails of the controller's and evaluator's logs
  std::string ControllerMetrics() const;  // the controller's /metrics text

 private:
  Suite() = default;
  absl::Status StartController();
  // Watches the experiment until `done` accepts an event (true) or `timeout` passes (false).
  bool WatchUntil(const std::string& id, absl::Duration timeout,
                  const std::function<bool(const v1::ExperimentEvent&)>& done);

  std::string results_;
  std::unique_ptr<ServiceProcess> simulator_, evaluator_, loadgen_a_, loadgen_b_, controller_;
  std::unique_ptr<v1::SearchController::Stub> stub_;
};

// "REQ_MIN 120: sustainable (backlog_trend), ..." for failure messages.
std::string Describe(const v1::Experiment& e);
// Every iteration folder holds the original's files with their columns, and ours.
void ExpectIterationFiles(const std::string& results_dir, const v1::Experiment& e);

}  // namespace mstperf::testing

#define SUITE_OR_SKIP(var, name)                                   \
  auto var##_or = ::mstperf::testing::Suite::Start(name);          \
  if (absl::IsNotFound(var##_or.status())) {                       \
    GTEST_SKIP() << var##_or.status();                             \
  }                                                                \
  ASSERT_TRUE(var##_or.ok()) << var##_or.status();                 \
  auto& var = *var##_or

#endif  // MSTPERF_TESTS_INTEGRATION_CONTROLLER_SUITE_H_
