// `most` mode end to end (label e2e: about 25 minutes): the original's search and verdict
// against the simulator, with iterations long enough for the original's median
// completions-per-minute gate (it needs three whole minutes in an iteration: with fewer, the
// median minute bucket is a partial one and every iteration fails the gate).
#include <cmath>
#include <iostream>

#include <gtest/gtest.h>

#include "services/controller/search.h"
#include "tests/integration/controller/suite.h"

namespace mstperf {
namespace {

TEST(ControllerMostModeE2eTest, FindsTheSimulatorsCapacity) {
  SUITE_OR_SKIP(suite, "most-e2e");
  const double capacity = suite->Capacity(32, 16);
  v1::ExperimentSpec spec = suite->Spec(32, 16, capacity, v1::EVALUATOR_MODE_MOST, 245, 0.1);
  // 0.7 C, then 1.05 C (x1.5): a short stage 1; then bisection to 10%.
  spec.set_req_min_start(0, std::round(0.7 * capacity));
  spec.set_multiplier(1.5);
  spec.set_filter_buffer_s(10);
  spec.set_early_stop(false);
  v1::Experiment e = suite->RunToEnd(spec, "most-1", absl::Minutes(60));
  ASSERT_EQ(e.state(), v1::EXPERIMENT_STATE_SUCCEEDED) << e.error() << "\n" << suite->Logs();
  const v1::PairResult& pair = e.pairs(0);
  EXPECT_EQ(pair.termination_reason(), controller::kConverged) << testing::Describe(e);
  EXPECT_NEAR(pair.mst_req_min(), capacity, 0.10 * capacity)
      << testing::Describe(e) << "\ncapacity " << capacity;
  testing::ExpectIterationFiles(suite->results_dir(), e);
  std::cout << testing::Describe(e) << "\ncapacity " << capacity << "\n";
}

}  // namespace
}  // namespace mstperf
