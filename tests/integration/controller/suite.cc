#include "tests/integration/controller/suite.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "services/common/prom_scrape.h"

namespace mstperf::testing {
namespace {

namespace fs = std::filesystem;

std::string Bin(const std::string& name) { return std::string(MSTPERF_BIN_DIR) + "/" + name; }

const std::vector<std::string> kCommon = {"--port=0", "--metrics_port=-1", "--host=127.0.0.1"};

bool Terminal(v1::ExperimentState s) {
  return s == v1::EXPERIMENT_STATE_SUCCEEDED || s == v1::EXPERIMENT_STATE_FAILED ||
         s == v1::EXPERIMENT_STATE_CANCELLED;
}

int TotalIterations(const v1::Experiment& e) {
  int n = 0;
  for (const auto& p : e.pairs()) n += p.iterations_size();
  return n;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Suite>> Suite::Start(const std::string& name) {
  for (const char* bin : {"mstperf-simulator", "mstperf-loadgen", "mstperf-evaluator", "mstperf-controller"}) {
    if (!fs::exists(Bin(bin))) return absl::NotFoundError(absl::StrCat(Bin(bin), " is not built"));
  }
  std::unique_ptr<Suite> s(new Suite());
  s->results_ = MakeTempDir("controller-" + name);
  // A small engine with a capacity of a few hundred requests per minute: enough requests per
  // short iteration for a verdict, few enough for a loaded 2-core machine.
  auto sim = ServiceProcess::Start(
      Bin("mstperf-simulator"),
      {"--port=0", "--host=127.0.0.1", "--max_num_seqs=4", "--step_base_ms=10",
       "--step_per_seq_ms=2.5", "--prefill_per_token_ms=0.05"});
  if (!sim.ok()) return sim.status();
  s->simulator_ = std::move(*sim);
  auto ev = ServiceProcess::Start(Bin("mstperf-evaluator"), kCommon);
  if (!ev.ok()) return ev.status();
  s->evaluator_ = std::move(*ev);
  auto la = ServiceProcess::Start(Bin("mstperf-loadgen"), kCommon);
  if (!la.ok()) return la.status();
  s->loadgen_a_ = std::move(*la);
  auto lb = ServiceProcess::Start(Bin("mstperf-loadgen"), kCommon);
  if (!lb.ok()) return lb.status();
  s->loadgen_b_ = std::move(*lb);
  if (absl::Status st = s->StartController(); !st.ok()) return st;
  return s;
}

absl::Status Suite::StartController() {
  auto c = ServiceProcess::Start(
      Bin("mstperf-controller"),
      {"--port=0", "--metrics_port=0", "--host=127.0.0.1", "--results_dir=" + results_,
            "--loadgen=" + loadgen_a_->grpc_address() + "," + loadgen_b_->grpc_address(),
            "--evaluator=" + evaluator_->grpc_address()});
  if (!c.ok()) return c.status();
  controller_ = std::move(*c);
  stub_ = v1::SearchController::NewStub(
      grpc::CreateChannel(controller_->grpc_address(), grpc::InsecureChannelCredentials()));
  return absl::OkStatus();
}

double Suite::Capacity(int in, int out) const {
  const absl::StatusOr<std::string> got =
      prom::HttpGetText(absl::StrCat("http://127.0.0.1:", simulator_->port("http_port"),
                               "/sim/capacity?input_tokens=", in, "&output_tokens=", out),
                  absl::Seconds(10));
  if (!got.ok()) {
    ADD_FAILURE() << "GET /sim/capacity: " << got.status();
    return 0;
  }
  const std::string& body = *got;
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.contains("capacity_req_min")) {
    ADD_FAILURE() << "bad /sim/capacity answer: " << body;
    return 0;
  }
  return j["capacity_req_min"].get<double>();
}

v1::ExperimentSpec Suite::Spec(int in, int out, double capacity, v1::EvaluatorMode mode,
                               double duration_s, double threshold) const {
  v1::ExperimentSpec spec;
  spec.set_name("controller integration test");
  spec.mutable_target()->set_url(absl::StrCat("http://127.0.0.1:", simulator_->port("http_port")));
  spec.mutable_target()->set_metrics_url(
      absl::StrCat("http://127.0.0.1:", simulator_->port("http_port"), "/metrics"));
  auto* pair = spec.add_tokens();
  pair->mutable_input()->set_min(in);
  pair->mutable_input()->set_max(in);
  pair->mutable_output()->set_min(out);
  pair->mutable_output()->set_max(out);
  spec.set_duration_s(duration_s);
  // 0.5 C, then 1.5 C: no stage-1 rate lands near the capacity, where verdicts are noise.
  spec.add_req_min_start(std::round(0.5 * capacity));
  spec.set_multiplier(3);
  spec.set_stop_threshold(threshold);
  spec.set_threshold_type(v1::THRESHOLD_TYPE_RELATIVE);
  spec.set_filter_buffer_s(-1);
  spec.set_evaluator_mode(mode);
  spec.set_early_stop(true);
  spec.set_seed(1);
  // Evenly spaced sends: in an 8 s iteration a Poisson schedule's realised rate varies by about
  // 10% (about 100 requests), as much as the precision asked of the search.
  spec.set_arrival(v1::ARRIVAL_CONSTANT);
  // The test machine is shared and loaded: a few late sends of 10-50 ms are the machine, not
  // a sign that the loadgen cannot offer a few requests per second.
  spec.set_max_send_lag_p99_us(100000);
  return spec;
}

grpc::Status Suite::StartExperiment(const v1::ExperimentSpec& spec, const std::string& id) {
  v1::StartExperimentRequest request;
  *request.mutable_spec() = spec;
  request.set_experiment_id(id);
  grpc::ClientContext ctx;
  v1::Experiment response;
  return stub_->StartExperiment(&ctx, request, &response);
}

v1::Experiment Suite::RunToEnd(const v1::ExperimentSpec& spec, const std::string& id,
                               absl::Duration timeout) {
  grpc::Status status = StartExperiment(spec, id);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return WaitToEnd(id, timeout);
}

v1::Experiment Suite::WaitToEnd(const std::string& id, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  v1::Experiment last;
  while (absl::Now() < deadline) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(deadline));
    v1::WatchExperimentRequest request;
    request.set_experiment_id(id);
    auto reader = stub_->WatchExperiment(&ctx, request);
    v1::ExperimentEvent event;
    while (reader->Read(&event)) {
      last = event.experiment();
      if (Terminal(last.state())) {
        ctx.TryCancel();
        return last;
      }
    }
    reader->Finish();
    absl::SleepFor(absl::Milliseconds(200));
  }
  ADD_FAILURE() << "experiment " << id << " did not end in " << timeout << "\n" << Describe(last);
  return last;
}

bool Suite::WatchUntil(const std::string& id, absl::Duration timeout,
                       const std::function<bool(const v1::ExperimentEvent&)>& done) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  v1::WatchExperimentRequest request;
  request.set_experiment_id(id);
  auto reader = stub_->WatchExperiment(&ctx, request);
  v1::ExperimentEvent event;
  while (reader->Read(&event)) {
    if (done(event)) {
      ctx.TryCancel();
      reader->Finish();
      return true;
    }
  }
  reader->Finish();
  return false;
}

bool Suite::WaitForIterations(const std::string& id, int n, absl::Duration timeout) {
  return WatchUntil(id, timeout, [n](const v1::ExperimentEvent& event) {
    return TotalIterations(event.experiment()) >= n;
  });
}

bool Suite::WaitForProgress(const std::string& id, int n, absl::Duration timeout) {
  int seen = 0;
  return WatchUntil(id, timeout, [n, &seen](const v1::ExperimentEvent& event) {
    return event.kind() == v1::ExperimentEvent::KIND_PROGRESS &&
           event.progress().completed() > 0 && ++seen >= n;
  });
}

v1::Experiment Suite::Cancel(const std::string& id) {
  grpc::ClientContext ctx;
  v1::CancelExperimentRequest request;
  request.set_experiment_id(id);
  v1::Experiment response;
  grpc::Status status = stub_->CancelExperiment(&ctx, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response;
}

void Suite::KillController() {
  controller_->Signal(SIGKILL);
  controller_->Wait();
}

void Suite::RestartController() {
  absl::Status status = StartController();
  ASSERT_TRUE(status.ok()) << status;
}

std::string Suite::ControllerMetrics() const {
  const absl::StatusOr<std::string> got = prom::HttpGetText(
      absl::StrCat("http://127.0.0.1:", controller_->port("metrics_port"), "/metrics"),
      absl::Seconds(10));
  if (!got.ok()) ADD_FAILURE() << "GET the controller's /metrics: " << got.status();
  return got.value_or("");
}

std::string Suite::Logs() const {
  return absl::StrCat("--- controller log:\n", controller_ ? controller_->LogTail(6000) : "",
                      "\n--- evaluator log:\n", evaluator_ ? evaluator_->LogTail(2000) : "",
                      "\n--- loadgen log:\n", loadgen_a_ ? loadgen_a_->LogTail(2000) : "");
}

std::string Describe(const v1::Experiment& e) {
  std::string out = absl::StrCat("experiment ", e.id(), " state ", v1::ExperimentState_Name(e.state()));
  for (const auto& p : e.pairs()) {
    absl::StrAppend(&out, "\n pair ", p.tokens().label(), ": m=", p.largest_sustainable_req_min(),
                    " M=", p.smallest_unsustainable_req_min(), " MST=", p.mst_req_min(), " (",
                    p.termination_reason(), ")");
    for (const auto& it : p.iterations()) {
      absl::StrAppend(&out, "\n  REQ_MIN ", it.req_min(), ": ",
                      v1::VerdictState_Name(it.verdict().state()), " (", it.verdict().deciding_rule(),
                      it.stopped_early() ? ", early" : "", ") achieved ",
                      it.totals().achieved_rate_per_min(), "/min");
    }
  }
  return out;
}

void ExpectIterationFiles(const std::string& root, const v1::Experiment& e) {
  const std::string kOutputHeader =
      "received_timestamp,complete_response_time,success_rate,success,worker_idx,request_idx";
  for (const auto& p : e.pairs()) {
    for (const auto& it : p.iterations()) {
      const std::string dir = root + "/" + it.directory();
      EXPECT_TRUE(absl::StartsWith(it.directory(), "requests/" + p.tokens().label() + "/")) << it.directory();
      for (const char* f : {"output.csv", "first_half.csv", "second_half.csv", "results.csv",
                            "results.json", "iteration.json", "requests.jsonl"}) {
        EXPECT_TRUE(fs::exists(dir + "/" + f)) << dir << "/" << f;
      }
      for (const char* f : {"output.csv", "first_half.csv", "second_half.csv"}) {
        std::ifstream in(dir + "/" + f);
        std::string header;
        std::getline(in, header);
        EXPECT_EQ(header, kOutputHeader) << dir << "/" << f;
      }
      std::ifstream results(dir + "/results.csv");
      std::string header, row;
      std::getline(results, header);
      std::getline(results, row);
      std::vector<std::string> cols = absl::StrSplit(header, ',');
      std::vector<std::string> cells = absl::StrSplit(row, ',');
      EXPECT_EQ(cols.size(), cells.size());
      for (const char* c : {"INPUT_TOKENS", "OUTPUT_TOKENS", "EVALUATION", "REQ_MIN"}) {
        EXPECT_NE(std::find(cols.begin(), cols.end(), c), cols.end()) << c << " in " << header;
      }
      std::map<std::string, std::string> cell;
      for (size_t i = 0; i < cols.size() && i < cells.size(); ++i) cell[cols[i]] = cells[i];
      EXPECT_EQ(cell["EVALUATION"], it.verdict().sustainable() ? "True" : "False") << dir;
      EXPECT_EQ(std::stod(cell["REQ_MIN"]), it.req_min()) << dir;
    }
  }
}

}  // namespace mstperf::testing
