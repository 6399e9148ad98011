// The controller as a real process on loopback: every RPC rejects bad input with
// INVALID_ARGUMENT naming the field (table-driven), nothing is written outside the results
// directory, and experiments persisted in the store are loaded and resumed at start-up.
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "mstperf/v1/controller.grpc.pb.h"
#include "services/common/testing/process.h"

namespace mstperf {
namespace {

namespace fs = std::filesystem;
using v1::ExperimentSpec;

const std::string kController = std::string(MSTPERF_BIN_DIR) + "/mstperf-controller";

// A valid spec; each table row breaks one thing.
ExperimentSpec ValidSpec() {
  ExperimentSpec spec;
  spec.set_name("valid");
  spec.mutable_target()->set_url("127.0.0.1:8000");
  auto* pair = spec.add_tokens();
  pair->mutable_input()->set_min(32);
  pair->mutable_input()->set_max(32);
  pair->mutable_output()->set_min(16);
  pair->mutable_output()->set_max(16);
  spec.set_duration_s(30);
  spec.add_req_min_start(60);
  spec.set_multiplier(2);
  spec.set_stop_threshold(10);
  spec.set_filter_buffer_s(5);
  return spec;
}

struct Case {
  std::string name;
  std::function<void(v1::StartExperimentRequest&)> mutate;
  std::string field;  // the error message must start with this
};

class ControllerValidationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    results_ = testing::MakeTempDir("controller-validation");
    // Loadgen and evaluator addresses that refuse connections: validation needs neither.
    auto process = testing::ServiceProcess::Start(
        kController, {"--port=0", "--metrics_port=-1", "--host=127.0.0.1",
                      "--results_dir=" + results_, "--loadgen=127.0.0.1:1",
                      "--evaluator=127.0.0.1:1"});
    ASSERT_TRUE(process.ok()) << process.status();
    process_ = std::move(*process);
    stub_ = v1::SearchController::NewStub(
        grpc::CreateChannel(process_->grpc_address(), grpc::InsecureChannelCredentials()));
  }

  std::string results_;
  std::unique_ptr<testing::ServiceProcess> process_;
  std::unique_ptr<v1::SearchController::Stub> stub_;
};

TEST_F(ControllerValidationTest, StartExperimentRejectsBadSpecsNamingTheField) {
  auto pair0 = [](v1::StartExperimentRequest& r) { return r.mutable_spec()->mutable_tokens(0); };
  const std::vector<Case> cases = {
      {"no spec", [](auto& r) { r.clear_spec(); }, "spec:"},
      {"zero duration", [](auto& r) { r.mutable_spec()->set_duration_s(0); }, "spec.duration_s:"},
      {"negative duration", [](auto& r) { r.mutable_spec()->set_duration_s(-5); }, "spec.duration_s:"},
      {"NaN duration", [](auto& r) { r.mutable_spec()->set_duration_s(std::nan("")); }, "spec.duration_s:"},
      {"multiplier 1", [](auto& r) { r.mutable_spec()->set_multiplier(1); }, "spec.multiplier:"},
      {"multiplier 0.5", [](auto& r) { r.mutable_spec()->set_multiplier(0.5); }, "spec.multiplier:"},
      {"negative multiplier", [](auto& r) { r.mutable_spec()->set_multiplier(-2); }, "spec.multiplier:"},
      {"no tokens", [](auto& r) { r.mutable_spec()->clear_tokens(); }, "spec.tokens:"},
      {"pair without input", [&](auto& r) { pair0(r)->clear_input(); }, "spec.tokens[0].input:"},
      {"zero input tokens", [&](auto& r) { pair0(r)->mutable_input()->set_min(0); }, "spec.tokens[0].input.min:"},
      {"range max < min", [&](auto& r) { pair0(r)->mutable_output()->set_max(8); }, "spec.tokens[0].output.max:"},
      {"path-like label", [&](auto& r) { pair0(r)->set_label("../../etc"); }, "spec.tokens[0].label:"},
      {"label with slash", [&](auto& r) { pair0(r)->set_label("a/b"); }, "spec.tokens[0].label:"},
      {"missing URL", [](auto& r) { r.mutable_spec()->mutable_target()->clear_url(); }, "spec.target.url:"},
      {"URL with bad scheme", [](auto& r) { r.mutable_spec()->mutable_target()->set_url("ftp://x:1"); }, "spec.target.url:"},
      {"URL without port", [](auto& r) { r.mutable_spec()->mutable_target()->set_url("localhost"); }, "spec.target.url:"},
      {"URL with space", [](auto& r) { r.mutable_spec()->mutable_target()->set_url("http://a b:1"); }, "spec.target.url:"},
      {"unknown mode", [](auto& r) { r.mutable_spec()->set_evaluator_mode(static_cast<v1::EvaluatorMode>(7)); }, "spec.evaluator_mode:"},
      {"unknown arrival", [](auto& r) { r.mutable_spec()->set_arrival(static_cast<v1::Arrival>(9)); }, "spec.arrival:"},
      {"unknown threshold type", [](auto& r) { r.mutable_spec()->set_threshold_type(static_cast<v1::ThresholdType>(5)); }, "spec.threshold_type:"},
      {"unknown api", [](auto& r) { r.mutable_spec()->mutable_target()->set_api(static_cast<v1::Api>(4)); }, "spec.target.api:"},
      {"zero threshold", [](auto& r) { r.mutable_spec()->set_stop_threshold(0); }, "spec.stop_threshold:"},
      {"relative threshold >= 1", [](auto& r) {
         r.mutable_spec()->set_threshold_type(v1::THRESHOLD_TYPE_RELATIVE);
         r.mutable_spec()->set_stop_threshold(1.5);
       }, "spec.stop_threshold:"},
      {"no REQ_MIN_START", [](auto& r) { r.mutable_spec()->clear_req_min_start(); }, "spec.req_min_start:"},
      {"zero REQ_MIN_START", [](auto& r) { r.mutable_spec()->set_req_min_start(0, 0); }, "spec.req_min_start[0]:"},
      {"REQ_MIN_START count mismatch", [](auto& r) {
         r.mutable_spec()->add_req_min_start(1);
         r.mutable_spec()->add_req_min_start(2);
       }, "spec.req_min_start:"},
      {"filter buffer eats the iteration", [](auto& r) { r.mutable_spec()->set_filter_buffer_s(15); }, "spec.filter_buffer_s:"},
      {"success rate > 100", [](auto& r) { r.mutable_spec()->set_success_rate_pct(101); }, "spec.success_rate_pct:"},
      {"negative cooldown", [](auto& r) { r.mutable_spec()->set_cooldown_s(-1); }, "spec.cooldown_s:"},
      {"negative gamma shape", [](auto& r) { r.mutable_spec()->set_gamma_shape(-1); }, "spec.gamma_shape:"},
      {"negative send-lag limit", [](auto& r) { r.mutable_spec()->set_max_send_lag_p99_us(-1); }, "spec.max_send_lag_p99_us:"},
      {"too many iterations", [](auto& r) { r.mutable_spec()->set_max_iterations(1000000); }, "spec.max_iterations:"},
      {"bad loadgen address", [](auto& r) { r.mutable_spec()->add_loadgen_addresses("http://x/y"); }, "spec.loadgen_addresses[0]:"},
      {"loadgen without port", [](auto& r) { r.mutable_spec()->add_loadgen_addresses("loadgen"); }, "spec.loadgen_addresses[0]:"},
      {"negative SLO", [](auto& r) { r.mutable_spec()->mutable_slo()->set_ttft_ms(-1); }, "spec.slo.ttft_ms:"},
      {"SLO percentile > 100", [](auto& r) { r.mutable_spec()->mutable_slo()->set_percentile(120); }, "spec.slo.percentile:"},
      {"path-like name", [](auto& r) { r.mutable_spec()->set_name("../../etc/passwd"); }, "spec.name:"},
      {"name with slash", [](auto& r) { r.mutable_spec()->set_name("a/b"); }, "spec.name:"},
      {"path-like id", [](auto& r) { r.set_experiment_id("../escape"); }, "experiment_id:"},
      {"id with slash", [](auto& r) { r.set_experiment_id("a/b"); }, "experiment_id:"},
      {"id dot-dot", [](auto& r) { r.set_experiment_id(".."); }, "experiment_id:"},
      {"id too long", [](auto& r) { r.set_experiment_id(std::string(65, 'a')); }, "experiment_id:"},
  };
  for (const Case& c : cases) {
    v1::StartExperimentRequest request;
    *request.mutable_spec() = ValidSpec();
    c.mutate(request);
    grpc::ClientContext ctx;
    v1::Experiment response;
    grpc::Status status = stub_->StartExperiment(&ctx, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.name << ": " << status.error_message();
    EXPECT_TRUE(absl::StartsWith(status.error_message(), c.field))
        << c.name << ": \"" << status.error_message() << "\" should start with " << c.field;
  }
  // None of them created anything, inside or outside the results directory.
  EXPECT_TRUE(fs::is_empty(results_ + "/experiments"));
  EXPECT_FALSE(fs::exists(results_ + "/requests"));
  EXPECT_FALSE(fs::exists(fs::path(results_).parent_path() / "escape.json"));
  EXPECT_FALSE(fs::exists(fs::path(results_).parent_path() / "etc"));

  // The valid spec itself is accepted (it then fails to reach the loadgen, which is fine).
  v1::StartExperimentRequest ok;
  *ok.mutable_spec() = ValidSpec();
  ok.set_experiment_id("valid-1");
  grpc::ClientContext ctx;
  v1::Experiment response;
  grpc::Status status = stub_->StartExperiment(&ctx, ok, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.id(), "valid-1");
  EXPECT_EQ(response.spec().tokens(0).label(), "32_16");
  EXPECT_EQ(response.spec().multiplier(), 2);
  EXPECT_TRUE(fs::exists(results_ + "/experiments/valid-1.json"));
  // Same id twice: ALREADY_EXISTS.
  grpc::ClientContext ctx2;
  EXPECT_EQ(stub_->StartExperiment(&ctx2, ok, &response).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
}

TEST_F(ControllerValidationTest, IdRpcsRejectBadIdsNamingTheField) {
  for (const std::string& bad : std::vector<std::string>{"", "../x", "a/b", "..", ".", std::string(65, 'x'), "a b", "x\\y"}) {
    {
      grpc::ClientContext ctx;
      v1::GetExperimentRequest r;
      r.set_experiment_id(bad);
      v1::Experiment e;
      grpc::Status s = stub_->GetExperiment(&ctx, r, &e);
      EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << "Get \"" << bad << "\"";
      EXPECT_TRUE(absl::StartsWith(s.error_message(), "experiment_id:")) << s.error_message();
    }
    {
      grpc::ClientContext ctx;
      v1::CancelExperimentRequest r;
      r.set_experiment_id(bad);
      v1::Experiment e;
      grpc::Status s = stub_->CancelExperiment(&ctx, r, &e);
      EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << "Cancel \"" << bad << "\"";
      EXPECT_TRUE(absl::StartsWith(s.error_message(), "experiment_id:")) << s.error_message();
    }
    {
      grpc::ClientContext ctx;
      v1::WatchExperimentRequest r;
      r.set_experiment_id(bad);
      auto reader = stub_->WatchExperiment(&ctx, r);
      v1::ExperimentEvent event;
      EXPECT_FALSE(reader->Read(&event));
      grpc::Status s = reader->Finish();
      EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << "Watch \"" << bad << "\"";
      EXPECT_TRUE(absl::StartsWith(s.error_message(), "experiment_id:")) << s.error_message();
    }
  }
  // A well-formed id that does not exist is NOT_FOUND, not INVALID_ARGUMENT.
  grpc::ClientContext ctx;
  v1::GetExperimentRequest r;
  r.set_experiment_id("nope");
  v1::Experiment e;
  EXPECT_EQ(stub_->GetExperiment(&ctx, r, &e).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ControllerValidationTest, UnreachableLoadgenFailsTheExperimentWithTheReason) {
  v1::StartExperimentRequest request;
  *request.mutable_spec() = ValidSpec();
  request.set_experiment_id("unreachable");
  grpc::ClientContext ctx;
  v1::Experiment started;
  ASSERT_TRUE(stub_->StartExperiment(&ctx, request, &started).ok());

  // Watch: a snapshot first, then events until the experiment ends.
  grpc::ClientContext wctx;
  v1::WatchExperimentRequest w;
  w.set_experiment_id("unreachable");
  auto reader = stub_->WatchExperiment(&wctx, w);
  v1::ExperimentEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.kind(), v1::ExperimentEvent::KIND_SNAPSHOT);
  v1::ExperimentEvent last = event;
  while (reader->Read(&event)) last = event;
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(last.kind(), v1::ExperimentEvent::KIND_EXPERIMENT_FINISHED);
  EXPECT_EQ(last.experiment().state(), v1::EXPERIMENT_STATE_FAILED);
  EXPECT_TRUE(absl::StrContains(last.experiment().error(), "loadgen 127.0.0.1:1"))
      << last.experiment().error();
  EXPECT_EQ(last.experiment().pairs(0).iterations_size(), 0);
}

// A RUNNING experiment in the store (as a killed controller leaves it) is loaded at start-up and
// resumed after its last completed iteration: the search state is rebuilt from the recorded
// verdicts.
TEST(ControllerStoreTest, LoadsAndResumesPersistedExperiments) {
  const std::string results = testing::MakeTempDir("controller-store");
  fs::create_directories(results + "/experiments");
  v1::Experiment e;
  e.set_id("resume-me");
  *e.mutable_spec() = ValidSpec();
  e.mutable_spec()->set_evaluator_mode(v1::EVALUATOR_MODE_MOST);
  e.mutable_spec()->mutable_tokens(0)->set_label("32_16");
  e.mutable_spec()->set_multiplier(2);
  e.mutable_spec()->set_max_iterations(100);
  e.set_state(v1::EXPERIMENT_STATE_RUNNING);
  e.set_created_unix_us(absl::ToUnixMicros(absl::Now()));
  v1::PairResult* pair = e.add_pairs();
  *pair->mutable_tokens() = e.spec().tokens(0);
  // 60 TRUE, 120 TRUE, 240 FALSE: the next iteration is the confirmation retry at 240.
  const std::pair<double, v1::VerdictState> done[] = {{60, v1::VERDICT_STATE_SUSTAINABLE},
                                                      {120, v1::VERDICT_STATE_SUSTAINABLE},
                                                      {240, v1::VERDICT_STATE_UNSUSTAINABLE}};
  for (uint32_t i = 0; i < 3; ++i) {
    v1::IterationResult* it = pair->add_iterations();
    it->set_index(i);
    it->set_req_min(done[i].first);
    it->mutable_verdict()->set_state(done[i].second);
    it->mutable_verdict()->set_sustainable(done[i].second == v1::VERDICT_STATE_SUSTAINABLE);
  }
  // A finished experiment is loaded but not resumed.
  v1::Experiment finished;
  finished.set_id("old");
  *finished.mutable_spec() = ValidSpec();
  finished.set_state(v1::EXPERIMENT_STATE_SUCCEEDED);
  for (const v1::Experiment* x : {&e, &finished}) {
    std::string json;
    ASSERT_TRUE(google::protobuf::util::MessageToJsonString(*x, &json).ok());
    std::ofstream(results + "/experiments/" + x->id() + ".json") << json;
  }
  // Garbage next to them is skipped, not fatal.
  std::ofstream(results + "/experiments/broken.json") << "{not json";

  // The evaluator/loadgen addresses refuse connections: the resumed experiment fails on its
  // next iteration, which must be the retry at 240, and keeps its three iterations.
  auto process = testing::ServiceProcess::Start(
      kController, {"--port=0", "--metrics_port=-1", "--host=127.0.0.1",
                    "--results_dir=" + results, "--loadgen=127.0.0.1:1", "--evaluator=127.0.0.1:1"});
  ASSERT_TRUE(process.ok()) << process.status();
  auto stub = v1::SearchController::NewStub(
      grpc::CreateChannel((*process)->grpc_address(), grpc::InsecureChannelCredentials()));

  grpc::ClientContext lctx;
  v1::ListExperimentsRequest list;
  v1::ListExperimentsResponse all;
  ASSERT_TRUE(stub->ListExperiments(&lctx, list, &all).ok());
  ASSERT_EQ(all.experiments_size(), 2);

  grpc::ClientContext wctx;
  v1::WatchExperimentRequest w;
  w.set_experiment_id("resume-me");
  auto reader = stub->WatchExperiment(&wctx, w);
  v1::ExperimentEvent event;
  double started_at = 0;
  v1::Experiment last;
  while (reader->Read(&event)) {
    if (event.kind() == v1::ExperimentEvent::KIND_ITERATION_STARTED) {
      started_at = event.iteration().req_min();
      EXPECT_EQ(event.iteration().index(), 3u);
    }
    last = event.experiment();
  }
  // The resumed search's next REQ_MIN is the confirmation retry (unless the watch began after
  // the failure, when the snapshot still shows it as the pair's current REQ_MIN).
  if (started_at == 0) started_at = last.pairs(0).current_req_min();
  EXPECT_EQ(started_at, 240);
  EXPECT_EQ(last.pairs(0).current_req_min(), 240);
  EXPECT_EQ(last.pairs(0).largest_sustainable_req_min(), 120);
  EXPECT_EQ(last.pairs(0).iterations_size(), 3);
  EXPECT_EQ(last.state(), v1::EXPERIMENT_STATE_FAILED);

  grpc::ClientContext gctx;
  v1::GetExperimentRequest g;
  g.set_experiment_id("old");
  v1::Experiment old;
  ASSERT_TRUE(stub->GetExperiment(&gctx, g, &old).ok());
  EXPECT_EQ(old.state(), v1::EXPERIMENT_STATE_SUCCEEDED);
  EXPECT_NE((*process)->LogTail().find("skipping experiment file"), std::string::npos);
}

}  // namespace
}  // namespace mstperf
