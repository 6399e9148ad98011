// The engine model on a simulated clock: its throughput, queue and latency agree with the
// closed form (engine.h) below and above capacity, with slots or the KV budget binding.
#include "services/simulator/engine.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "services/simulator/simulation.h"

namespace mstperf::simulator {
namespace {

EngineParams Params() {
  EngineParams p;
  p.max_num_seqs = 16;
  p.step_base_ms = 4.0;
  p.step_per_seq_ms = 0.25;
  p.prefill_per_token_ms = 0.02;
  p.kv_cache_tokens = 0;
  return p;
}

TEST(CapacityTest, ClosedFormByHand) {
  // N = 16: 60000 * 16 / (8 * (4 + 4) + 0.02 * 16 * 16) = 960000 / 69.12.
  auto c = ComputeCapacity(Params(), 16, 8);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_concurrency, 16);
  EXPECT_STREQ(c->bound_by, "max_num_seqs");
  EXPECT_NEAR(c->capacity_req_per_min, 960000.0 / 69.12, 1e-6);
  EXPECT_NEAR(c->capacity_tokens_per_s, 960000.0 / 69.12 / 60 * 8, 1e-6);
  EXPECT_NEAR(c->unloaded_ttft_ms, 4.25 + 0.32, 1e-9);
  EXPECT_NEAR(c->unloaded_e2e_ms, 4.25 + 0.32 + 7 * 4.25, 1e-9);

  EngineParams kv = Params();
  kv.kv_cache_tokens = 2000;  // 2000 / 160 = 12 < 16
  c = ComputeCapacity(kv, 128, 32);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->max_concurrency, 12);
  EXPECT_STREQ(c->bound_by, "kv_cache_tokens");
  EXPECT_NEAR(c->capacity_req_per_min, 60000.0 * 12 / (32 * 7.0 + 0.02 * 128 * 12), 1e-6);
}

TEST(CapacityTest, RejectsImpossiblePairs) {
  EngineParams kv = Params();
  kv.kv_cache_tokens = 100;
  EXPECT_FALSE(ComputeCapacity(kv, 90, 20).ok());
  EXPECT_FALSE(ComputeCapacity(Params(), 10, 0).ok());
  EXPECT_FALSE(ComputeCapacity(Params(), -1, 10).ok());
}

TEST(ParamsTest, Validation) {
  EXPECT_TRUE(ValidateEngineParams(Params()).ok());
  EngineParams p = Params();
  p.max_num_seqs = 0;
  EXPECT_FALSE(ValidateEngineParams(p).ok());
  p = Params();
  p.jitter = 1.0;
  EXPECT_FALSE(ValidateEngineParams(p).ok());
  p = Params();
  p.step_base_ms = 0;
  p.step_per_seq_ms = 0;
  EXPECT_FALSE(ValidateEngineParams(p).ok());
}

TEST(EngineTest, OneRequestAloneFollowsTheStepTimes) {
  Engine e(Params());
  ASSERT_TRUE(e.Submit(7, 100, 3).ok());
  std::vector<TokenEvent> ev;
  double t = 0;
  // Step 1 admits and prefills: a + b + c * in.
  double d = e.StartStep(t);
  EXPECT_DOUBLE_EQ(d, 4.0 + 0.25 + 2.0);
  EXPECT_EQ(e.step_batch(), 1);
  EXPECT_EQ(e.step_prefill_tokens(), 100);
  e.FinishStep(&ev);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].id, 7u);
  EXPECT_EQ(ev[0].generated, 1);
  EXPECT_FALSE(ev[0].finished);
  // Decode steps: a + b.
  EXPECT_DOUBLE_EQ(e.StartStep(t += d), 4.25);
  e.FinishStep(&ev);
  EXPECT_DOUBLE_EQ(e.StartStep(t += 4.25), 4.25);
  e.FinishStep(&ev);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[2].generated, 3);
  EXPECT_TRUE(ev[2].finished);
  EXPECT_FALSE(e.HasWork());
  EXPECT_EQ(e.kv_tokens_used(), 0);
}

TEST(EngineTest, BatchNeverExceedsSlotsAndAdmitsFifo) {
  EngineParams p = Params();
  p.max_num_seqs = 3;
  Engine e(p);
  for (SeqId id = 0; id < 5; ++id) ASSERT_TRUE(e.Submit(id, 1, 2).ok());
  std::vector<TokenEvent> ev;
  e.StartStep(0);
  EXPECT_EQ(e.num_running(), 3);
  EXPECT_EQ(e.num_waiting(), 2);
  e.FinishStep(&ev);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[0].id, 0u);
  EXPECT_EQ(ev[2].id, 2u);
  ev.clear();
  e.StartStep(1);
  EXPECT_EQ(e.num_running(), 3);  // nobody finished yet
  e.FinishStep(&ev);              // 0, 1, 2 finish
  ev.clear();
  e.StartStep(2);
  EXPECT_EQ(e.num_running(), 2);  // 3 and 4, in order
  EXPECT_EQ(e.step_prefill_tokens(), 2);
  e.FinishStep(&ev);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].id, 3u);
  EXPECT_EQ(ev[1].id, 4u);
}

TEST(EngineTest, KvBudgetLimitsAdmissionWithoutSkippingTheHead) {
  EngineParams p = Params();
  p.kv_cache_tokens = 100;
  Engine e(p);
  ASSERT_TRUE(e.Submit(1, 50, 10).ok());  // 60
  ASSERT_TRUE(e.Submit(2, 40, 10).ok());  // 50: does not fit next to 60
  ASSERT_TRUE(e.Submit(3, 10, 10).ok());  // 20: would fit, but FIFO does not skip 2
  EXPECT_FALSE(e.Submit(4, 95, 10).ok());  // can never fit
  std::vector<TokenEvent> ev;
  e.StartStep(0);
  EXPECT_EQ(e.num_running(), 1);
  EXPECT_EQ(e.kv_tokens_used(), 60);
  EXPECT_NEAR(e.kv_usage(), 0.6, 1e-12);
  EXPECT_EQ(e.num_waiting(), 2);
}

TEST(EngineTest, CancelFreesSlotAndDropsEvents) {
  EngineParams p = Params();
  p.max_num_seqs = 1;
  Engine e(p);
  ASSERT_TRUE(e.Submit(1, 5, 10).ok());
  ASSERT_TRUE(e.Submit(2, 5, 10).ok());
  ASSERT_TRUE(e.Submit(3, 5, 10).ok());
  e.Cancel(3);  // waiting: leaves at once
  EXPECT_EQ(e.num_waiting(), 2);
  std::vector<TokenEvent> ev;
  e.StartStep(0);
  e.Cancel(1);  // running: leaves at the end of the step, silently
  e.FinishStep(&ev);
  EXPECT_TRUE(ev.empty());
  EXPECT_EQ(e.num_running(), 0);
  e.StartStep(1);
  EXPECT_EQ(e.num_running(), 1);
  e.FinishStep(&ev);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].id, 2u);
}

struct Pair {
  int in, out;
  int64_t kv;
};

class OpenLoopTest : public ::testing::TestWithParam<Pair> {};

// Below capacity: throughput = offered rate, the queue stays bounded. Above: throughput =
// capacity (within 1%), the queue grows at offered - capacity.
TEST_P(OpenLoopTest, ThroughputAndQueueAgreeWithClosedForm) {
  EngineParams p = Params();
  p.kv_cache_tokens = GetParam().kv;
  const int in = GetParam().in, out = GetParam().out;
  const double cap = ComputeCapacity(p, in, out)->capacity_req_per_min;
  const double duration_s = 120;
  for (double load : {0.3, 0.7, 0.95}) {
    OpenLoopSpec spec{in, out, load * cap, duration_s};
    OpenLoopResult r = SimulateOpenLoop(p, spec);
    SCOPED_TRACE(testing::Message() << "load " << load);
    EXPECT_NEAR(r.second_half_throughput_req_per_min, load * cap, 0.01 * load * cap);
    EXPECT_LE(r.max_waiting, p.max_num_seqs);
    EXPECT_LE(r.waiting_at_end, p.max_num_seqs);
    EXPECT_LE(r.max_running, p.max_num_seqs);
  }
  for (double load : {1.05, 1.3, 2.0}) {
    OpenLoopSpec spec{in, out, load * cap, duration_s};
    OpenLoopResult r = SimulateOpenLoop(p, spec);
    SCOPED_TRACE(testing::Message() << "load " << load);
    EXPECT_NEAR(r.second_half_throughput_req_per_min, cap, 0.01 * cap);
    const double expected_backlog = (load - 1) * cap * duration_s / 60;
    EXPECT_NEAR(r.waiting_at_end, expected_backlog, 0.05 * expected_backlog + p.max_num_seqs);
    // Growing: each second's queue is at least the one 10 s before it, once saturated.
    for (size_t s = 20; s < r.waiting_per_second.size(); ++s) {
      EXPECT_GT(r.waiting_per_second[s], r.waiting_per_second[s - 10]) << "second " << s;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Pairs, OpenLoopTest,
                         ::testing::Values(Pair{16, 8, 0}, Pair{64, 16, 0}, Pair{128, 32, 0},
                                           Pair{128, 32, 2000}, Pair{1000, 100, 0}));

TEST(LatencyTest, LowLoadLatencyIsTheUnloadedClosedForm) {
  EngineParams p = Params();
  const int in = 200, out = 20;
  auto c = ComputeCapacity(p, in, out);
  // One request every 2 s, far apart: every request runs alone, and arrives at an idle engine.
  OpenLoopResult r = SimulateOpenLoop(p, OpenLoopSpec{in, out, 30, 60});
  ASSERT_GT(r.completed, 20);
  EXPECT_NEAR(r.mean_ttft_ms, c->unloaded_ttft_ms, 1e-6);
  EXPECT_NEAR(r.mean_e2e_ms, c->unloaded_e2e_ms, 1e-6);
}

TEST(LatencyTest, LatencyGrowsWithLoadAndExplodesAboveCapacity) {
  EngineParams p = Params();
  const double cap = ComputeCapacity(p, 64, 16)->capacity_req_per_min;
  double last = 0;
  for (double load : {0.2, 0.6, 0.9}) {
    OpenLoopResult r = SimulateOpenLoop(p, OpenLoopSpec{64, 16, load * cap, 60});
    EXPECT_GT(r.mean_e2e_ms, last) << load;
    last = r.mean_e2e_ms;
  }
  OpenLoopResult over = SimulateOpenLoop(p, OpenLoopSpec{64, 16, 1.2 * cap, 60});
  EXPECT_GT(over.mean_e2e_ms, 10 * last);
}

TEST(JitterTest, SeededAndMeanPreserving) {
  EngineParams p = Params();
  p.jitter = 0.3;
  p.seed = 42;
  const double cap = ComputeCapacity(p, 64, 16)->capacity_req_per_min;
  OpenLoopResult a = SimulateOpenLoop(p, OpenLoopSpec{64, 16, 1.2 * cap, 60});
  OpenLoopResult b = SimulateOpenLoop(p, OpenLoopSpec{64, 16, 1.2 * cap, 60});
  EXPECT_EQ(a.step_durations_ms, b.step_durations_ms);  // same seed, same run
  p.seed = 43;
  OpenLoopResult c = SimulateOpenLoop(p, OpenLoopSpec{64, 16, 1.2 * cap, 60});
  EXPECT_NE(a.step_durations_ms, c.step_durations_ms);
  // The noise is there, within +-30%, and the capacity holds in expectation.
  const double full = 4.0 + 0.25 * 16;
  double lo = 1e9, hi = 0;
  for (double d : a.step_durations_ms) {
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  EXPECT_LT(lo, full * 0.9);
  EXPECT_GT(hi, full * 1.1);
  EXPECT_NEAR(a.second_half_throughput_req_per_min, cap, 0.02 * cap);
  EXPECT_NEAR(c.second_half_throughput_req_per_min, cap, 0.02 * cap);
}

}  // namespace
}  // namespace mstperf::simulator
