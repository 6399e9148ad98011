// Real experiments on loopback: the simulator (a target with a known closed-form capacity), two
// loadgen replicas, the evaluator and the controller, each a real process on port 0.
//  - the default-mode search finds an MST within 10% of the simulator's capacity, and every
//    iteration's files exist with the original's columns;
//  - SIGKILL the controller mid-experiment and restart it on the same results directory: no
//    completed iteration is lost and the search goes on exactly where it stopped;
//  - CancelExperiment stops the running iteration and keeps what it collected.
// The `most` mode search needs iterations of two minutes or more (the original's median
// completions-per-minute gate fails any iteration shorter than a minute), so its full run is
// in the e2e suite (most_mode_e2e_test.cc).
#include <curl/curl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "mstperf/v1/controller.grpc.pb.h"
#include "services/common/testing/process.h"
#include "services/controller/search.h"
#include "services/controller/service.h"
#include "services/controller/spec.h"
#include "tests/integration/controller/suite.h"

namespace mstperf {
namespace {

namespace fs = std::filesystem;
using testing::Suite;

TEST(ControllerExperimentTest, DefaultModeFindsTheSimulatorsCapacity) {
  SUITE_OR_SKIP(suite, "default");
  const double capacity = suite->Capacity(32, 16);
  ASSERT_GT(capacity, 0);
  v1::ExperimentSpec spec = suite->Spec(32, 16, capacity, v1::EVALUATOR_MODE_DEFAULT, 8);
  v1::Experiment e = suite->RunToEnd(spec, "default-1", absl::Minutes(4));
  ASSERT_EQ(e.state(), v1::EXPERIMENT_STATE_SUCCEEDED) << e.error() << "\n" << suite->Logs();
  const v1::PairResult& pair = e.pairs(0);
  EXPECT_TRUE(pair.finished());
  EXPECT_EQ(pair.termination_reason(), controller::kConverged);
  EXPECT_NEAR(pair.mst_req_min(), capacity, 0.10 * capacity)
      << testing::Describe(e) << "\ncapacity " << capacity;
  testing::ExpectIterationFiles(suite->results_dir(), e);

  // The controller's own metrics say the same.
  const std::string metrics = suite->ControllerMetrics();
  EXPECT_NE(metrics.find(absl::StrCat(
                "mstperf_controller_mst_requests_per_minute{input_tokens=\"32\",output_tokens=\"16\"} ",
                pair.mst_req_min())),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("mstperf_controller_experiments{state=\"succeeded\"} 1"), std::string::npos);
  EXPECT_NE(metrics.find(absl::StrCat("mstperf_controller_lower_bound_requests_per_minute ",
                                      pair.largest_sustainable_req_min())),
            std::string::npos);

  // The simulator's /metrics (vLLM's names) were sampled into every iteration.json.
  for (const auto& it : pair.iterations()) {
    std::ifstream in(suite->results_dir() + "/" + it.directory() + "/iteration.json");
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    ASSERT_TRUE(j.contains("target_metrics")) << it.directory();
    ASSERT_TRUE(j["target_metrics"].is_array());
    ASSERT_GE(j["target_metrics"].size(), 2u) << it.directory();
    EXPECT_TRUE(j["target_metrics"][0]["values"].contains("vllm:num_requests_running"))
        << j["target_metrics"][0].dump();
  }
}

TEST(ControllerExperimentTest, SigkillMidExperimentResumesWhereItStopped) {
  SUITE_OR_SKIP(suite, "resume");
  const double capacity = suite->Capacity(32, 16);
  // This test is about the resume, not the answer (the test above checks that): the search
  // stops after 5 iterations, 2 before the kill and 3 after.
  v1::ExperimentSpec spec = suite->Spec(32, 16, capacity, v1::EVALUATOR_MODE_DEFAULT, 8);
  spec.set_max_iterations(5);
  ASSERT_TRUE(suite->StartExperiment(spec, "resume-1").ok());
  // Wait for two completed iterations, then kill the controller in the middle of the third.
  ASSERT_TRUE(suite->WaitForIterations("resume-1", 2, absl::Minutes(2))) << suite->Logs();
  absl::SleepFor(absl::Seconds(1));
  suite->KillController();

  std::ifstream in(suite->results_dir() + "/experiments/resume-1.json");
  std::stringstream text;
  text << in.rdbuf();
  v1::Experiment before;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(text.str(), &before).ok());
  ASSERT_EQ(before.state(), v1::EXPERIMENT_STATE_RUNNING);
  const int completed = before.pairs(0).iterations_size();
  ASSERT_GE(completed, 2);
  // What the search must run next, from the recorded verdicts alone.
  std::vector<controller::Observation> history;
  for (const auto& it : before.pairs(0).iterations()) history.push_back(controller::ObservationFrom(it));
  controller::Search expected =
      controller::Search::Replay(controller::SearchConfigFor(before.spec(), 0), history);

  suite->RestartController();
  v1::Experiment after = suite->WaitToEnd("resume-1", absl::Minutes(4));
  ASSERT_EQ(after.state(), v1::EXPERIMENT_STATE_SUCCEEDED) << after.error() << suite->Logs();
  const v1::PairResult& pair = after.pairs(0);
  ASSERT_GE(pair.iterations_size(), completed);
  for (int i = 0; i < completed; ++i) {
    const auto& a = before.pairs(0).iterations(i);
    const auto& b = pair.iterations(i);
    EXPECT_EQ(a.req_min(), b.req_min()) << i;
    EXPECT_EQ(a.verdict().state(), b.verdict().state()) << i;
    EXPECT_EQ(a.directory(), b.directory()) << i;
    EXPECT_TRUE(fs::exists(suite->results_dir() + "/" + b.directory() + "/output.csv")) << i;
  }
  if (!expected.done()) {
    ASSERT_GT(pair.iterations_size(), completed);
    EXPECT_EQ(pair.iterations(completed).req_min(), expected.next_req_min());
    EXPECT_EQ(pair.iterations(completed).index(), static_cast<uint32_t>(completed));
  }
  EXPECT_EQ(pair.iterations_size(), 5) << testing::Describe(after);
  EXPECT_EQ(pair.termination_reason(), controller::kMaxIterations) << testing::Describe(after);
  for (int i = 0; i < pair.iterations_size(); ++i) EXPECT_EQ(pair.iterations(i).index(), static_cast<uint32_t>(i));
  testing::ExpectIterationFiles(suite->results_dir(), after);
}

TEST(ControllerExperimentTest, CancelStopsTheIterationAndKeepsWhatWasCollected) {
  SUITE_OR_SKIP(suite, "cancel");
  const double capacity = suite->Capacity(32, 16);
  v1::ExperimentSpec spec = suite->Spec(32, 16, capacity, v1::EVALUATOR_MODE_DEFAULT, 30);
  ASSERT_TRUE(suite->StartExperiment(spec, "cancel-1").ok());
  ASSERT_TRUE(suite->WaitForProgress("cancel-1", 3, absl::Seconds(30))) << suite->Logs();
  v1::Experiment cancelled = suite->Cancel("cancel-1");
  EXPECT_EQ(cancelled.state(), v1::EXPERIMENT_STATE_CANCELLED) << suite->Logs();
  ASSERT_EQ(cancelled.pairs(0).iterations_size(), 1);
  const v1::IterationResult& it = cancelled.pairs(0).iterations(0);
  EXPECT_EQ(cancelled.pairs(0).termination_reason(), "cancelled");
  // Stopped well before its 30 s, with its records on disk.
  EXPECT_LT(it.ended_unix_us() - it.started_unix_us(), 20 * 1000000);
  const std::string dir = suite->results_dir() + "/" + it.directory();
  std::ifstream csv(dir + "/output.csv");
  std::string header, row;
  std::getline(csv, header);
  EXPECT_TRUE(static_cast<bool>(std::getline(csv, row))) << "no request rows in " << dir;
  EXPECT_TRUE(fs::exists(dir + "/iteration.json"));
}

}  // namespace
}  // namespace mstperf
