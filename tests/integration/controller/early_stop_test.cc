// Early stop on loopback: the simulator, two loadgen replicas, the evaluator and the controller
// as real processes on port 0. One 30 s iteration at 2x the simulator's closed-form capacity is
// stopped by the evaluator's early backlog verdict well before its duration (the loadgen
// replicas cancelled, the Iteration message and iteration.json say when and by which rule);
// one at 0.7x runs its whole duration.
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "tests/integration/controller/suite.h"

namespace mstperf {
namespace {

using testing::Suite;

constexpr double kDurationS = 30;

// One iteration at `load` x capacity: the search's first REQ_MIN, then max_iterations stops it.
v1::ExperimentSpec OneIteration(const Suite& suite, double capacity, double load) {
  v1::ExperimentSpec spec = suite.Spec(32, 16, capacity, v1::EVALUATOR_MODE_DEFAULT, kDurationS);
  spec.clear_req_min_start();
  spec.add_req_min_start(std::round(load * capacity));
  spec.set_max_iterations(1);
  spec.set_early_stop(true);
  return spec;
}

nlohmann::json IterationJson(const Suite& suite, const v1::IterationResult& it) {
  std::ifstream in(suite.results_dir() + "/" + it.directory() + "/iteration.json");
  return nlohmann::json::parse(in, nullptr, false);
}

TEST(ControllerEarlyStopTest, AnOverloadStopsEarlyASustainableRateRunsItsDuration) {
  SUITE_OR_SKIP(suite, "early");
  const double capacity = suite->Capacity(32, 16);
  ASSERT_GT(capacity, 0);

  // 2x capacity: the backlog grows by about capacity/60 requests a second from the start.
  v1::Experiment over =
      suite->RunToEnd(OneIteration(*suite, capacity, 2.0), "early-2x", absl::Minutes(2));
  ASSERT_EQ(over.state(), v1::EXPERIMENT_STATE_SUCCEEDED) << over.error() << "\n" << suite->Logs();
  ASSERT_EQ(over.pairs(0).iterations_size(), 1) << testing::Describe(over);
  const v1::IterationResult& o = over.pairs(0).iterations(0);
  EXPECT_TRUE(o.stopped_early()) << testing::Describe(over) << "\n" << o.verdict().DebugString();
  EXPECT_TRUE(o.verdict().early());
  EXPECT_EQ(o.verdict().state(), v1::VERDICT_STATE_UNSUSTAINABLE);
  EXPECT_EQ(o.verdict().deciding_rule(), "backlog_trend");
  EXPECT_GT(o.verdict().judged_at_elapsed_s(), 0);
  EXPECT_LT(o.verdict().judged_at_elapsed_s(), 0.6 * kDurationS);
  // The replicas were cancelled: the iteration (start delay and drain included) ended long
  // before its 30 s.
  const double wall_s = (o.ended_unix_us() - o.started_unix_us()) / 1e6;
  EXPECT_LT(wall_s, 0.7 * kDurationS);
  const nlohmann::json oj = IterationJson(*suite, o);
  ASSERT_FALSE(oj.is_discarded()) << o.directory();
  EXPECT_TRUE(oj["stopped_early"].get<bool>());
  ASSERT_TRUE(oj.contains("early_stop")) << oj.dump(2);
  EXPECT_EQ(oj["early_stop"]["rule"], "backlog_trend");
  EXPECT_EQ(oj["early_stop"]["at_elapsed_s"].get<double>(), o.verdict().judged_at_elapsed_s());
  EXPECT_GT(oj["early_stop"]["saved_s"].get<double>(), 0.4 * kDurationS);
  testing::ExpectIterationFiles(suite->results_dir(), over);
  std::cout << "2x capacity (" << std::round(2 * capacity) << " req/min): stopped early at "
            << o.verdict().judged_at_elapsed_s() << " s of " << kDurationS << " s, iteration wall "
            << wall_s << " s\n";

  // 0.7x capacity: sustainable, never called early, runs the whole duration.
  v1::Experiment under =
      suite->RunToEnd(OneIteration(*suite, capacity, 0.7), "early-0.7x", absl::Minutes(2));
  ASSERT_EQ(under.state(), v1::EXPERIMENT_STATE_SUCCEEDED) << under.error() << "\n" << suite->Logs();
  ASSERT_EQ(under.pairs(0).iterations_size(), 1) << testing::Describe(under);
  const v1::IterationResult& u = under.pairs(0).iterations(0);
  EXPECT_FALSE(u.stopped_early()) << u.verdict().DebugString();
  EXPECT_FALSE(u.verdict().early());
  EXPECT_EQ(u.verdict().state(), v1::VERDICT_STATE_SUSTAINABLE) << u.verdict().DebugString();
  EXPECT_GE((u.ended_unix_us() - u.started_unix_us()) / 1e6, kDurationS);
  const nlohmann::json uj = IterationJson(*suite, u);
  EXPECT_FALSE(uj["stopped_early"].get<bool>());
  EXPECT_FALSE(uj.contains("early_stop"));
}

}  // namespace
}  // namespace mstperf
