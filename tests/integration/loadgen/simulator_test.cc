// mstperf-loadgen against mstperf-simulator, both as processes: exact prompts through the
// simulator's /tokenize, completion tokens and per-chunk counts from usage, both APIs.
#include <grpcpp/grpcpp.h>

#include <gtest/gtest.h>

#include "mstperf/v1/loadgen.grpc.pb.h"
#include "services/common/testing/process.h"

namespace mstperf::loadgen {
namespace {

using mstperf::testing::ServiceProcess;

TEST(LoadgenSimulatorTest, BothApisGetExactPromptsAndEveryToken) {
  auto sim = ServiceProcess::Start(MSTPERF_BIN_DIR "/mstperf-simulator",
                                   {"--port=0", "--host=127.0.0.1", "--max_num_seqs=64",
                                    "--step_base_ms=2", "--step_per_seq_ms=0.05"});
  ASSERT_TRUE(sim.ok()) << sim.status();
  auto lg = ServiceProcess::Start(MSTPERF_BIN_DIR "/mstperf-loadgen",
                                  {"--port=0", "--metrics_port=-1", "--host=127.0.0.1"});
  ASSERT_TRUE(lg.ok()) << lg.status();
  auto stub = v1::LoadGenerator::NewStub(
      grpc::CreateChannel((*lg)->grpc_address(), grpc::InsecureChannelCredentials()));

  for (v1::Api api : {v1::API_COMPLETIONS, v1::API_CHAT}) {
    SCOPED_TRACE(v1::Api_Name(api));
    v1::IterationSpec spec;
    spec.set_iteration_id("sim");
    spec.mutable_target()->set_url("127.0.0.1:" + std::to_string((*sim)->port("http_port")));
    spec.mutable_target()->set_api(api);
    spec.mutable_tokens()->mutable_input()->set_min(30);
    spec.mutable_tokens()->mutable_input()->set_max(200);
    spec.mutable_tokens()->mutable_output()->set_min(20);
    spec.mutable_tokens()->mutable_output()->set_max(20);
    spec.set_req_min(1200);
    spec.set_duration_s(2);
    spec.set_arrival(v1::ARRIVAL_POISSON);
    spec.set_seed(11);
    spec.mutable_prompt()->set_use_tokenize_endpoint(true);

    grpc::ClientContext ctx;
    auto reader = stub->RunIteration(&ctx, spec);
    v1::IterationEvent ev;
    std::vector<v1::RequestRecord> records;
    v1::IterationStarted started;
    v1::IterationSummary summary;
    while (reader->Read(&ev)) {
      if (ev.has_started()) started = ev.started();
      if (ev.has_summary()) summary = ev.summary();
      for (const auto& r : ev.records().records()) records.push_back(r);
    }
    grpc::Status st = reader->Finish();
    ASSERT_TRUE(st.ok()) << st.error_message() << "\n" << (*lg)->LogTail();
    EXPECT_EQ(started.model(), "mstperf-sim");
    EXPECT_TRUE(started.prompt_tokens_exact());
    ASSERT_EQ(records.size(), started.planned_requests());
    ASSERT_GT(records.size(), 20u);
    for (const auto& r : records) {
      ASSERT_TRUE(r.success()) << r.error();
      EXPECT_EQ(r.prompt_tokens(), r.requested_input_tokens());
      EXPECT_EQ(r.completion_tokens(), 20u);
      uint32_t sum = 0;
      for (uint32_t t : r.chunk_tokens()) sum += t;
      EXPECT_EQ(sum, 20u);
      EXPECT_GT(r.first_token_unix_us(), r.sent_unix_us());
    }
    EXPECT_EQ(summary.totals().completed(), records.size());
    EXPECT_EQ(summary.end_reason(), "completed");
  }
}

}  // namespace
}  // namespace mstperf::loadgen
