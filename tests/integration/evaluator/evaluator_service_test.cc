// The real mstperf-evaluator process on port 0, over gRPC: both RPCs agree with the original's
// verdicts on the recorded output.csv files, the stream gives an early verdict then the final
// one, bad input is INVALID_ARGUMENT naming the field, and /metrics counts the verdicts.
#include <grpcpp/grpcpp.h>

#include <fstream>
#include <functional>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "mstperf/v1/evaluator.grpc.pb.h"
#include "services/common/prom_scrape.h"
#include "services/common/testing/process.h"
#include "services/evaluator/output_csv.h"

namespace mstperf {
namespace {

using mstperf::v1::EvaluateRequest;
using mstperf::v1::EvaluateStreamRequest;
using mstperf::v1::RequestRecord;
using mstperf::v1::Verdict;

const std::string kDataDir = std::string(MSTPERF_TEST_DATA_DIR) + "/evaluator";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class EvaluatorServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto p = testing::ServiceProcess::Start(std::string(MSTPERF_BIN_DIR) + "/mstperf-evaluator",
                                            {"--host=127.0.0.1", "--port=0", "--metrics_port=0"});
    ASSERT_TRUE(p.ok()) << p.status();
    process_ = p->release();
    auto channel =
        grpc::CreateChannel(process_->grpc_address(), grpc::InsecureChannelCredentials());
    stub_ = mstperf::v1::Evaluator::NewStub(channel).release();
    reference_ =
        new nlohmann::json(nlohmann::json::parse(ReadFile(kDataDir + "/most_reference.json")));
  }
  static void TearDownTestSuite() {
    delete stub_;
    delete process_;
    delete reference_;
  }

  static std::vector<RequestRecord> RecordsOf(const std::string& name) {
    auto rows = evaluator::ParseOutputCsv(ReadFile(kDataDir + "/" + name + "/output.csv"));
    EXPECT_TRUE(rows.ok()) << rows.status();
    std::vector<RequestRecord> records;
    for (size_t i = 0; i < rows->size(); ++i) {
      records.push_back(evaluator::RecordFromRow((*rows)[i], i));
    }
    return records;
  }

  static mstperf::v1::EvaluationConfig MostConfigOf(const nlohmann::json& c) {
    mstperf::v1::EvaluationConfig config;
    config.set_mode(mstperf::v1::EVALUATOR_MODE_MOST);
    config.set_req_min(c["req_min"].get<double>());
    config.set_filter_buffer_s(c["filter_buffer_s"].get<double>());
    config.set_success_rate_pct(c["success_rate_threshold"].get<double>());
    return config;
  }

  // Sends config, records in batches of 100, ticks, half-closes; returns every verdict.
  static grpc::Status Stream(const mstperf::v1::EvaluationConfig& config,
                            const std::vector<RequestRecord>& records,
                            std::vector<Verdict>* verdicts, double tick_every_s = 0,
                            int64_t t0_us = 0) {
    grpc::ClientContext ctx;
    auto stream = stub_->EvaluateStream(&ctx);
    EvaluateStreamRequest msg;
    *msg.mutable_config() = config;
    stream->Write(msg);
    double next_tick = tick_every_s;
    for (size_t i = 0; i < records.size(); i += 100) {
      EvaluateStreamRequest batch;
      for (size_t j = i; j < std::min(records.size(), i + 100); ++j) {
        *batch.mutable_records()->add_records() = records[j];
      }
      if (!stream->Write(batch)) break;
      if (tick_every_s > 0) {
        const RequestRecord& last = records[std::min(records.size(), i + 100) - 1];
        const double now_s = (last.end_unix_us() - t0_us) / 1e6;
        while (next_tick <= now_s) {
          EvaluateStreamRequest tick;
          tick.mutable_tick()->set_elapsed_s(next_tick);
          stream->Write(tick);
          next_tick += tick_every_s;
        }
      }
    }
    stream->WritesDone();
    Verdict v;
    while (stream->Read(&v)) verdicts->push_back(v);
    return stream->Finish();
  }

  static testing::ServiceProcess* process_;
  static mstperf::v1::Evaluator::Stub* stub_;
  static nlohmann::json* reference_;
};

testing::ServiceProcess* EvaluatorServiceTest::process_ = nullptr;
mstperf::v1::Evaluator::Stub* EvaluatorServiceTest::stub_ = nullptr;
nlohmann::json* EvaluatorServiceTest::reference_ = nullptr;

TEST_F(EvaluatorServiceTest, BothRpcsAgreeWithTheOriginalOnRecordedFiles) {
  for (const auto& c : (*reference_)["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const std::vector<RequestRecord> records = RecordsOf(name);
    EvaluateRequest request;
    *request.mutable_config() = MostConfigOf(c);
    for (const auto& r : records) *request.add_records() = r;
    grpc::ClientContext ctx;
    Verdict unary;
    grpc::Status status = stub_->Evaluate(&ctx, request, &unary);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(unary.sustainable(), c["verdict"].get<bool>());
    EXPECT_EQ(unary.deciding_rule(), c["deciding_rule"].get<std::string>());
    EXPECT_EQ(unary.first_half_request_idx_size(), c["first_count"].get<int>());
    EXPECT_EQ(unary.second_half_request_idx_size(), c["second_count"].get<int>());
    bool has_p = false;
    for (const auto& r : unary.reasons()) {
      if (r.rule() == "welch_t_test" && c.contains("p_value") && !c["p_value"].is_null()) {
        has_p = true;
        EXPECT_NEAR(r.values().at("p_value"), c["p_value"].get<double>(),
                    1e-4 * c["p_value"].get<double>());
      }
    }
    EXPECT_EQ(has_p, c.contains("p_value") && !c["p_value"].is_null());

    std::vector<Verdict> streamed;
    status = Stream(MostConfigOf(c), records, &streamed);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(streamed.size(), 1u);
    EXPECT_EQ(streamed[0].sustainable(), unary.sustainable());
    EXPECT_EQ(streamed[0].deciding_rule(), unary.deciding_rule());
    EXPECT_FALSE(streamed[0].early());
  }
}

// An overloaded server on a simulated timeline: arrivals at 5/s, 4 slots of 1 s each.
std::vector<RequestRecord> Overload(int64_t t0_us, double duration_s) {
  std::vector<RequestRecord> records;
  std::vector<double> free_at(4, 0.0);
  for (int i = 0; i * 0.2 < duration_s; ++i) {
    const double sent = i * 0.2;
    auto slot = std::min_element(free_at.begin(), free_at.end());
    const double start = std::max(sent, *slot);
    const double end = start + 1.0 + 0.05 * (i % 7);
    *slot = end;
    RequestRecord r;
    r.set_request_idx(i);
    r.set_scheduled_unix_us(t0_us + static_cast<int64_t>(sent * 1e6));
    r.set_sent_unix_us(r.scheduled_unix_us() + 100);
    r.set_first_token_unix_us(t0_us + static_cast<int64_t>((start + 0.05) * 1e6));
    r.set_end_unix_us(t0_us + static_cast<int64_t>(end * 1e6));
    r.set_completion_tokens(50);
    r.set_success(true);
    records.push_back(r);
  }
  std::sort(records.begin(), records.end(),
            [](const auto& a, const auto& b) { return a.end_unix_us() < b.end_unix_us(); });
  return records;
}

TEST_F(EvaluatorServiceTest, StreamGivesAnEarlyVerdictThenTheFinalOne) {
  const int64_t t0 = 1773482400'000000;
  mstperf::v1::EvaluationConfig config;
  config.set_mode(mstperf::v1::EVALUATOR_MODE_DEFAULT);
  config.set_req_min(300);
  config.set_duration_s(240);
  config.set_early_stop(true);
  std::vector<Verdict> verdicts;
  grpc::Status status = Stream(config, Overload(t0, 240), &verdicts, 1.0, t0);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(verdicts.size(), 2u);
  EXPECT_TRUE(verdicts[0].early());
  EXPECT_EQ(verdicts[0].state(), mstperf::v1::VERDICT_STATE_UNSUSTAINABLE);
  EXPECT_EQ(verdicts[0].deciding_rule(), "backlog_trend");
  EXPECT_LT(verdicts[0].judged_at_elapsed_s(), 120);
  EXPECT_FALSE(verdicts[1].early());
  EXPECT_EQ(verdicts[1].state(), mstperf::v1::VERDICT_STATE_UNSUSTAINABLE);
  EXPECT_FALSE(verdicts[1].reasons().empty());
}

TEST_F(EvaluatorServiceTest, BadInputIsInvalidArgumentNamingTheField) {
  struct Case {
    std::string field;
    std::function<void(EvaluateRequest&)> mutate;
  };
  using Config = mstperf::v1::EvaluationConfig;
  auto on_config = [](std::function<void(Config*)> f) {
    return [f](EvaluateRequest& r) { f(r.mutable_config()); };
  };
  const std::vector<Case> cases = {
      {"config.mode",
       on_config([](Config* c) { c->set_mode(static_cast<mstperf::v1::EvaluatorMode>(42)); })},
      {"config.req_min", on_config([](Config* c) { c->set_req_min(-5); })},
      {"config.req_min", on_config([](Config* c) { c->set_req_min(0); })},
      {"config.duration_s", on_config([](Config* c) { c->set_duration_s(-1); })},
      {"config.success_rate_pct", on_config([](Config* c) { c->set_success_rate_pct(150); })},
      {"config.slo.ttft_ms", on_config([](Config* c) { c->mutable_slo()->set_ttft_ms(-1); })},
      {"config.slo.percentile",
       on_config([](Config* c) { c->mutable_slo()->set_percentile(101); })},
      {"config.max_send_lag_p99_us",
       on_config([](Config* c) { c->set_max_send_lag_p99_us(-3); })},
      {"records[1] (request_idx 7).end_unix_us", [](EvaluateRequest& r) {
         auto* rec = r.add_records();
         rec->set_request_idx(7);
         rec->set_sent_unix_us(2'000'000);
         rec->set_end_unix_us(1'000'000);
       }},
  };
  for (const Case& c : cases) {
    EvaluateRequest request;
    request.mutable_config()->set_req_min(60);
    auto* ok = request.add_records();
    ok->set_sent_unix_us(1'000'000);
    ok->set_end_unix_us(2'000'000);
    c.mutate(request);
    grpc::ClientContext ctx;
    Verdict v;
    grpc::Status status = stub_->Evaluate(&ctx, request, &v);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_NE(status.error_message().find(c.field), std::string::npos)
        << c.field << " not in: " << status.error_message();
  }

  // Stream: records before the config, and a config sent twice.
  {
    grpc::ClientContext ctx;
    auto stream = stub_->EvaluateStream(&ctx);
    EvaluateStreamRequest msg;
    msg.mutable_records()->add_records()->set_sent_unix_us(1);
    stream->Write(msg);
    stream->WritesDone();
    Verdict v;
    while (stream->Read(&v)) {
    }
    grpc::Status status = stream->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("config"), std::string::npos) << status.error_message();
  }
  {
    grpc::ClientContext ctx;
    auto stream = stub_->EvaluateStream(&ctx);
    EvaluateStreamRequest msg;
    msg.mutable_config()->set_req_min(60);
    stream->Write(msg);
    stream->Write(msg);
    stream->WritesDone();
    Verdict v;
    while (stream->Read(&v)) {
    }
    grpc::Status status = stream->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("config sent twice"), std::string::npos);
  }
  {
    grpc::ClientContext ctx;
    auto stream = stub_->EvaluateStream(&ctx);
    EvaluateStreamRequest msg;
    msg.mutable_config()->set_req_min(60);
    stream->Write(msg);
    EvaluateStreamRequest tick;
    tick.mutable_tick()->set_elapsed_s(-4);
    stream->Write(tick);
    stream->WritesDone();
    Verdict v;
    while (stream->Read(&v)) {
    }
    grpc::Status status = stream->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("tick.elapsed_s"), std::string::npos);
  }
}

TEST_F(EvaluatorServiceTest, MetricsCountVerdicts) {
  const auto& c = (*reference_)["cases"][0];  // stable: TRUE by welch_t_test
  EvaluateRequest request;
  *request.mutable_config() = MostConfigOf(c);
  for (const auto& r : RecordsOf(c["name"])) *request.add_records() = r;
  grpc::ClientContext ctx;
  Verdict v;
  ASSERT_TRUE(stub_->Evaluate(&ctx, request, &v).ok());
  const absl::StatusOr<std::string> got = prom::HttpGetText(
      "http://127.0.0.1:" + std::to_string(process_->port("metrics_port")) + "/metrics",
      absl::Seconds(10));
  ASSERT_TRUE(got.ok()) << got.status();
  const std::string& metrics = *got;
  EXPECT_NE(metrics.find("mstperf_evaluator_verdicts_total{result=\"sustainable\","
                         "rule=\"welch_t_test\"}"),
            std::string::npos)
      << metrics.substr(0, 2000);
  EXPECT_NE(metrics.find("mstperf_evaluator_evaluation_duration_seconds_count"), std::string::npos);
}

}  // namespace
}  // namespace mstperf
