// mstperf-loadgen as a process, through gRPC: validation errors, a whole iteration against the
// awkward server (events, records, errors by kind, exact prompts, metrics), replicas sharing
// one schedule, and cancellation.
#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "mstperf/v1/loadgen.grpc.pb.h"
#include "services/common/prom_scrape.h"
#include "services/common/testing/process.h"
#include "tests/integration/loadgen/awkward_server.h"

namespace mstperf::loadgen {
namespace {

using testing::AwkwardServer;
using testing::Behaviour;

class LoadgenServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setenv("MSTPERF_TEST_API_KEY", "sk-test-123", 1);  // inherited by the service process
    auto p = mstperf::testing::ServiceProcess::Start(
        MSTPERF_BIN_DIR "/mstperf-loadgen",
        {"--port=0", "--metrics_port=0", "--host=127.0.0.1"});
    ASSERT_TRUE(p.ok()) << p.status();
    process_ = p->release();
  }
  static void TearDownTestSuite() {
    delete process_;
    process_ = nullptr;
  }

  std::unique_ptr<v1::LoadGenerator::Stub> Stub() {
    return v1::LoadGenerator::NewStub(
        grpc::CreateChannel(process_->grpc_address(), grpc::InsecureChannelCredentials()));
  }

  static v1::IterationSpec Spec(const std::string& url) {
    v1::IterationSpec s;
    s.set_iteration_id("it-1");
    s.mutable_target()->set_url(url);
    s.mutable_tokens()->mutable_input()->set_min(20);
    s.mutable_tokens()->mutable_input()->set_max(40);
    s.mutable_tokens()->mutable_output()->set_min(6);
    s.mutable_tokens()->mutable_output()->set_max(6);
    s.set_req_min(3000);
    s.set_duration_s(2);
    s.set_arrival(v1::ARRIVAL_CONSTANT);
    s.set_seed(7);
    s.mutable_prompt()->set_use_tokenize_endpoint(true);
    return s;
  }

  struct Run {
    grpc::Status status;
    std::vector<v1::IterationEvent> events;
    std::vector<v1::RequestRecord> records;
  };

  Run Call(const v1::IterationSpec& spec) {
    Run run;
    grpc::ClientContext ctx;
    auto stub = Stub();
    auto reader = stub->RunIteration(&ctx, spec);
    v1::IterationEvent ev;
    while (reader->Read(&ev)) {
      if (ev.has_records()) {
        for (const auto& r : ev.records().records()) run.records.push_back(r);
      }
      run.events.push_back(ev);
    }
    run.status = reader->Finish();
    return run;
  }

  static mstperf::testing::ServiceProcess* process_;
};

mstperf::testing::ServiceProcess* LoadgenServiceTest::process_ = nullptr;

TEST_F(LoadgenServiceTest, BadSpecsAreRejectedNamingTheField) {
  AwkwardServer server;
  struct Case {
    std::function<void(v1::IterationSpec*)> mutate;
    grpc::StatusCode code;
    std::string needle;
  };
  std::vector<Case> cases = {
      {[](auto* s) { s->set_req_min(-5); }, grpc::INVALID_ARGUMENT, "req_min"},
      {[](auto* s) { s->set_duration_s(0); }, grpc::INVALID_ARGUMENT, "duration_s"},
      {[](auto* s) { s->mutable_tokens()->mutable_input()->set_max(5); }, grpc::INVALID_ARGUMENT,
       "tokens.input"},
      {[](auto* s) { s->mutable_tokens()->mutable_output()->set_min(0); },
       grpc::INVALID_ARGUMENT, "tokens.output"},
      {[](auto* s) { s->set_iteration_id("bad id/../x"); }, grpc::INVALID_ARGUMENT,
       "iteration_id"},
      {[](auto* s) { s->mutable_target()->set_url("ftp://127.0.0.1:1"); },
       grpc::INVALID_ARGUMENT, "target.url"},
      {[](auto* s) { s->set_gamma_shape(-1); }, grpc::INVALID_ARGUMENT, "gamma_shape"},
      {[](auto* s) { s->set_replica_idx(3); s->set_replica_count(2); }, grpc::INVALID_ARGUMENT,
       "replica_idx"},
      {[](auto* s) { s->mutable_target()->set_api_key_env("MSTPERF_NO_SUCH_VARIABLE"); },
       grpc::INVALID_ARGUMENT, "api_key_env"},
      {[](auto* s) { s->mutable_prompt()->set_corpus_path("/nonexistent/corpus.txt"); },
       grpc::INVALID_ARGUMENT, "corpus_path"},
  };
  for (const Case& c : cases) {
    v1::IterationSpec spec = Spec(server.url());
    c.mutate(&spec);
    Run run = Call(spec);
    EXPECT_EQ(run.status.error_code(), c.code) << c.needle << ": " << run.status.error_message();
    EXPECT_NE(run.status.error_message().find(c.needle), std::string::npos)
        << run.status.error_message();
    EXPECT_TRUE(run.events.empty());
  }
  uint16_t closed_port;
  {
    AwkwardServer gone;
    closed_port = gone.port();
  }
  Run run = Call(Spec("127.0.0.1:" + std::to_string(closed_port)));
  EXPECT_EQ(run.status.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_NE(run.status.error_message().find("unreachable"), std::string::npos);
  EXPECT_EQ(server.generation_requests(), 0u);
}

TEST_F(LoadgenServiceTest, AWholeIterationStreamsEveryRecordAndCountsEveryError) {
  AwkwardServer server(3000);
  v1::IterationSpec spec = Spec(server.url());
  spec.mutable_target()->set_api_key_env("MSTPERF_TEST_API_KEY");
  spec.set_batch_size(16);
  spec.set_progress_interval_s(0.5);
  Run run = Call(spec);
  ASSERT_TRUE(run.status.ok()) << run.status.error_message() << "\n" << process_->LogTail();

  ASSERT_GE(run.events.size(), 3u);
  ASSERT_TRUE(run.events.front().has_started());
  const auto& started = run.events.front().started();
  EXPECT_EQ(started.planned_requests(), 100u);
  EXPECT_EQ(started.model(), "awkward-model");
  EXPECT_TRUE(started.prompt_tokens_exact());
  ASSERT_TRUE(run.events.back().has_summary());
  int progress = 0;
  uint64_t last_sent = 0;
  for (const auto& ev : run.events) {
    if (!ev.has_progress()) continue;
    ++progress;
    EXPECT_GE(ev.progress().sent(), last_sent);
    last_sent = ev.progress().sent();
  }
  EXPECT_GE(progress, 3);  // every 0.5 s over a 2 s run

  // Every scheduled request has exactly one record.
  ASSERT_EQ(run.records.size(), 100u);
  std::set<uint64_t> indices;
  for (const auto& r : run.records) indices.insert(r.request_idx());
  EXPECT_EQ(indices.size(), 100u);
  EXPECT_EQ(*indices.rbegin(), 99u);

  auto served = server.served();
  std::map<v1::ErrorKind, int> kinds;
  int64_t first_sent = INT64_MAX, last_sent_us = 0;
  for (const auto& r : run.records) {
    auto it = served.find(r.request_idx());
    if (it == served.end()) {
      ADD_FAILURE() << "request " << r.request_idx() << " never reached the server: "
                    << v1::ErrorKind_Name(r.error_kind()) << " " << r.error();
      continue;
    }
    const auto& s = it->second;
    ++kinds[r.error_kind()];
    first_sent = std::min(first_sent, r.sent_unix_us());
    last_sent_us = std::max(last_sent_us, r.sent_unix_us());
    // Exact prompts: the server counts what was asked for, and every prompt is different.
    EXPECT_EQ(s.prompt_tokens, r.requested_input_tokens()) << s.prompt;
    EXPECT_GE(r.requested_input_tokens(), 20u);
    EXPECT_LE(r.requested_input_tokens(), 40u);
    EXPECT_EQ(s.authorization, "Bearer sk-test-123");
    if (r.success()) {
      EXPECT_EQ(r.prompt_tokens(), r.requested_input_tokens());
      EXPECT_EQ(r.completion_tokens(), 6u);
      uint32_t sum = 0;
      for (uint32_t t : r.chunk_tokens()) sum += t;
      EXPECT_EQ(sum, 6u);
    }
  }
  std::set<std::string> prompts;
  for (const auto& [idx, s] : served) prompts.insert(s.prompt);
  EXPECT_EQ(prompts.size(), served.size());
  // 100 requests over 12 behaviours: indices with i % 12 in {5, 6} are HTTP errors, 7 and 8
  // stream errors, 10 a server error event, the rest succeed.
  auto count = [](std::initializer_list<int> mods) {
    int n = 0;
    for (int i = 0; i < 100; ++i) {
      for (int m : mods) n += (i % 12 == m);
    }
    return n;
  };
  EXPECT_EQ(kinds[v1::ERROR_KIND_NONE], count({0, 1, 2, 3, 4, 9, 11}));
  EXPECT_EQ(kinds[v1::ERROR_KIND_HTTP_STATUS], count({5, 6}));
  EXPECT_EQ(kinds[v1::ERROR_KIND_STREAM], count({7, 8}));
  EXPECT_EQ(kinds[v1::ERROR_KIND_SERVER_EVENT], count({10}));

  const auto& summary = run.events.back().summary();
  EXPECT_EQ(summary.end_reason(), "completed");
  EXPECT_EQ(summary.totals().sent(), 100u);
  EXPECT_EQ(summary.totals().completed(), static_cast<uint64_t>(kinds[v1::ERROR_KIND_NONE]));
  EXPECT_EQ(summary.totals().failed(), 100u - kinds[v1::ERROR_KIND_NONE]);
  EXPECT_EQ(summary.totals().dropped(), 0u);
  EXPECT_EQ(summary.send_lag_us().count(), 100u);
  EXPECT_TRUE(summary.prompt_tokens_exact());
  // Offered rate from the actual send times (least-squares slope of send time on index, robust
  // to one late send at either end): 50/s within 1 %.
  {
    double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (const auto& r : run.records) {
      const double x = static_cast<double>(r.request_idx());
      const double y = (r.sent_unix_us() - first_sent) / 1e6;
      n += 1;
      sx += x;
      sy += y;
      sxx += x * x;
      sxy += x * y;
    }
    EXPECT_NEAR((n * sxx - sx * sx) / (n * sxy - sx * sy), 50.0, 0.5);
    EXPECT_GT(last_sent_us, first_sent);
  }

  // Metrics count what the records say.
  const absl::StatusOr<std::string> got = prom::HttpGetText(
      "http://127.0.0.1:" + std::to_string(process_->port("metrics_port")) + "/metrics",
      absl::Seconds(10));
  ASSERT_TRUE(got.ok()) << got.status();
  const std::string& metrics = *got;
  EXPECT_NE(metrics.find("mstperf_loadgen_requests_failed_total{reason=\"http_status\"} " +
                         std::to_string(count({5, 6}))),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("mstperf_loadgen_send_lag_seconds_count"), std::string::npos);
  EXPECT_EQ(metrics.find("sk-test-123"), std::string::npos);
  EXPECT_EQ(process_->LogTail(100000).find("sk-test-123"), std::string::npos);
}

TEST_F(LoadgenServiceTest, ReplicasShareOneSchedule) {
  AwkwardServer server(2000);
  const int64_t start = absl::ToUnixMicros(absl::Now()) + 1'500'000;
  std::vector<Run> runs(2);
  std::vector<std::thread> threads;
  for (uint32_t r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      v1::IterationSpec spec = Spec(server.url());
      spec.set_req_min(2400);  // 40/s in total, 20/s each
      spec.set_duration_s(1);
      spec.set_replica_idx(r);
      spec.set_replica_count(2);
      spec.set_start_at_unix_us(start);
      runs[r] = Call(spec);
    });
  }
  for (auto& t : threads) t.join();
  std::map<uint64_t, v1::RequestRecord> merged;
  for (uint32_t r = 0; r < 2; ++r) {
    ASSERT_TRUE(runs[r].status.ok()) << runs[r].status.error_message();
    EXPECT_EQ(runs[r].events.front().started().planned_requests(), 20u);
    for (const auto& rec : runs[r].records) {
      EXPECT_EQ(rec.request_idx() % 2, r);
      EXPECT_EQ(rec.replica_idx(), r);
      merged[rec.request_idx()] = rec;
    }
  }
  ASSERT_EQ(merged.size(), 40u);
  for (const auto& [idx, rec] : merged) {
    // The merged schedule is the whole constant process: start + idx * 25 ms.
    EXPECT_EQ(rec.scheduled_unix_us(), start + static_cast<int64_t>(idx) * 25'000) << idx;
    EXPECT_LT(rec.sent_unix_us() - rec.scheduled_unix_us(), 100'000);  // on time (loaded host)
  }
}

TEST_F(LoadgenServiceTest, CancellingTheCallStopsTheIteration) {
  AwkwardServer server(20'000);
  v1::IterationSpec spec = Spec(server.url());
  spec.set_duration_s(60);
  spec.set_req_min(1200);
  grpc::ClientContext ctx;
  auto stub = Stub();
  auto reader = stub->RunIteration(&ctx, spec);
  v1::IterationEvent ev;
  while (reader->Read(&ev) && !ev.has_progress()) {
  }
  ctx.TryCancel();
  while (reader->Read(&ev)) {
  }
  const absl::Time t0 = absl::Now();
  EXPECT_EQ(reader->Finish().error_code(), grpc::CANCELLED);
  EXPECT_LT(absl::Now() - t0, absl::Seconds(5));
  absl::SleepFor(absl::Milliseconds(500));
  const uint64_t after = server.generation_requests();
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_EQ(server.generation_requests(), after);  // nothing is sent any more
  EXPECT_LT(after, 100u);
}

}  // namespace
}  // namespace mstperf::loadgen
