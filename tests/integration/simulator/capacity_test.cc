// The capacity check over real sockets: for several in/out pairs, an open loop just
// under the closed-form capacity keeps the waiting queue bounded and completes at the offered
// rate, and one just over it makes the queue grow while completions stay at the capacity. So
// the capacity measured through HTTP agrees with /sim/capacity within the margin.
//
// Built twice: the default (integration) version runs short loops at 0.95x / 1.05x; the e2e
// version (MSTPERF_CAPACITY_LONG) runs longer loops at 0.97x / 1.03x on more pairs.
#include <algorithm>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "services/common/testing/process.h"
#include "tests/integration/simulator/client.h"

namespace mstperf::simulator {
namespace {

using nlohmann::json;

#ifdef MSTPERF_CAPACITY_LONG
constexpr double kMargin = 0.03;
constexpr double kDurationS = 20;
#else
constexpr double kMargin = 0.05;
constexpr double kDurationS = 6;
#endif
constexpr double kWarmupS = 2;

struct Pair {
  int in, out;
};

class CapacityTest : public ::testing::TestWithParam<Pair> {
 protected:
  static void SetUpTestSuite() {
    // Short steps and small batches: capacities of 50..250 requests/s, reached in well under
    // a second. The KV budget binds for 128:32 (2000 / 160 = 12 < 16 slots).
    auto p = mstperf::testing::ServiceProcess::Start(
        std::string(MSTPERF_BIN_DIR) + "/mstperf-simulator",
        {"--host=127.0.0.1", "--port=0", "--max_num_seqs=16", "--step_base_ms=4",
         "--step_per_seq_ms=0.25", "--prefill_per_token_ms=0.02", "--kv_cache_tokens=2000",
         "--max_model_len=2048"});
    ASSERT_TRUE(p.ok()) << p.status();
    process_ = p->release();
  }
  static void TearDownTestSuite() {
    delete process_;
    process_ = nullptr;
  }
  static std::string Url(const std::string& path) {
    return "http://127.0.0.1:" + std::to_string(process_->port("http_port")) + path;
  }
  static mstperf::testing::ServiceProcess* process_;
};
mstperf::testing::ServiceProcess* CapacityTest::process_ = nullptr;

std::string Prompt(int tokens) {
  std::string s;
  for (int i = 0; i < tokens; ++i) s += "tok ";
  return s;
}

// Waits until the engine is idle, so runs do not overlap.
void WaitIdle(const std::string& metrics_url) {
  for (int i = 0; i < 500; ++i) {
    std::string m = testing::Request("GET", metrics_url).body;
    if (testing::MetricValue(m, "vllm:num_requests_running") == 0 &&
        testing::MetricValue(m, "vllm:num_requests_waiting") == 0) {
      return;
    }
    usleep(20000);
  }
  FAIL() << "the simulator did not become idle";
}

TEST_P(CapacityTest, OpenLoopJustUnderAndJustOverTheClosedForm) {
  const Pair pair = GetParam();
  testing::HttpResult c = testing::Request(
      "GET", Url("/sim/capacity?input_tokens=" + std::to_string(pair.in) +
                 "&output_tokens=" + std::to_string(pair.out)));
  ASSERT_EQ(c.status, 200) << c.body;
  const double cap_per_s = json::parse(c.body)["capacity_req_min"].get<double>() / 60;

  testing::OpenLoopOptions o;
  o.url = Url("/v1/completions");
  o.body = json{{"prompt", Prompt(pair.in)}, {"max_tokens", pair.out}, {"ignore_eos", true}}
               .dump();
  o.duration_s = kDurationS;
  o.metrics_url = Url("/metrics");
  o.sample_every_s = 0.25;

  // Just under: everything offered completes, the queue stays short.
  WaitIdle(o.metrics_url);
  o.rate_per_s = (1 - kMargin) * cap_per_s;
  testing::OpenLoopResult under = RunOpenLoop(o);
  const double under_rate = under.CompletionRate(kWarmupS, kDurationS - 0.5);
  double under_max_waiting = 0, under_sum_waiting = 0;
  int under_samples = 0;
  for (const auto& s : under.samples) {
    if (s.t_s < kWarmupS) continue;
    under_max_waiting = std::max(under_max_waiting, s.waiting);
    under_sum_waiting += s.waiting;
    ++under_samples;
  }
  ASSERT_GT(under_samples, 4);
  EXPECT_EQ(under.failed, 0);
  EXPECT_NEAR(under_rate, o.rate_per_s, 0.03 * o.rate_per_s)
      << "under capacity, completions should follow the offered rate";
  // Short and not growing: a stall of the (shared, noisy) machine may leave a few requests
  // waiting for a moment, never more than a batch, and they drain.
  EXPECT_LE(under_sum_waiting / under_samples, 3) << "under capacity the queue must stay short";
  EXPECT_LE(under_max_waiting, 16) << "under capacity the queue must stay short";

  // Just over: completions saturate at the capacity and the queue grows.
  WaitIdle(o.metrics_url);
  o.rate_per_s = (1 + kMargin) * cap_per_s;
  testing::OpenLoopResult over = RunOpenLoop(o);
  const double measured_cap = over.CompletionRate(kWarmupS, kDurationS);
  EXPECT_EQ(over.failed, 0);
  EXPECT_NEAR(measured_cap, cap_per_s, kMargin * cap_per_s)
      << "the capacity measured over HTTP should be the closed form";
  EXPECT_LT(measured_cap, o.rate_per_s * (1 - kMargin / 3));
  // The backlog grows by (offered - capacity) per second.
  double waiting_at_warmup = -1, waiting_at_end = -1;
  for (const auto& s : over.samples) {
    if (waiting_at_warmup < 0 && s.t_s >= kWarmupS) waiting_at_warmup = s.waiting;
    waiting_at_end = s.waiting;
  }
  const double expected_growth = (o.rate_per_s - cap_per_s) * (kDurationS - 0.25 - kWarmupS);
  EXPECT_GT(waiting_at_end - waiting_at_warmup, 0.5 * expected_growth)
      << "over capacity the queue must grow (" << waiting_at_warmup << " -> " << waiting_at_end
      << ")";
  EXPECT_GT(waiting_at_end, under_sum_waiting / under_samples + 3);

  RecordProperty("capacity_req_min", std::to_string(cap_per_s * 60));
  RecordProperty("measured_req_min", std::to_string(measured_cap * 60));
  std::printf("pair %d:%d closed form %.1f req/min, measured %.1f req/min (%.2f%%); under: "
              "%.1f/%.1f req/s, max waiting %.0f; over: waiting %.0f -> %.0f\n",
              pair.in, pair.out, cap_per_s * 60, measured_cap * 60,
              100 * (measured_cap / cap_per_s - 1), under_rate, (1 - kMargin) * cap_per_s,
              under_max_waiting, waiting_at_warmup, waiting_at_end);
}

#ifdef MSTPERF_CAPACITY_LONG
INSTANTIATE_TEST_SUITE_P(Pairs, CapacityTest,
                         ::testing::Values(Pair{16, 8}, Pair{64, 16}, Pair{128, 32},
                                           Pair{256, 64}, Pair{32, 128}));
#else
INSTANTIATE_TEST_SUITE_P(Pairs, CapacityTest,
                         ::testing::Values(Pair{16, 8}, Pair{64, 16}, Pair{128, 32}));
#endif

}  // namespace
}  // namespace mstperf::simulator
