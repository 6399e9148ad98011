// Default mode on simulated iterations: a deterministic multi-slot server model driven on a
// simulated clock (no sleeping), so each rule can be made to fire, or not, on purpose.
#include "services/evaluator/default_rules.h"

#include <algorithm>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include <gtest/gtest.h>

#include "services/evaluator/most_rules.h"
#include "services/evaluator/output_csv.h"

namespace mstperf::evaluator {
namespace {

using mstperf::v1::RequestRecord;

constexpr int64_t kT0 = 1773482400'000000;  // 2026-03-14T10:00:00Z, microseconds

struct Sim {
  double req_min = 120;
  double duration_s = 120;
  int slots = 8;
  double service_s = 2.0;          // decode time per request
  double service_growth = 0.0;     // service time grows by this fraction over the iteration
  double service_jitter = 0.1;     // relative
  double prefill_s = 0.05;
  double lag_us = 200;             // send lag of every request
  double slow_client_fraction = 0; // fraction of requests sent 20 ms late
  double fail_fraction = 0;
  unsigned seed = 1;
  // > 0: every request takes exactly this long (whole microseconds), no queueing.
  int64_t exact_latency_us = 0;
  bool poisson = false;  // exponential gaps instead of evenly spaced sends
  // > 0: the service time of the first `ramp_requests` requests rises linearly to
  // (1 + service_ramp) x service_s and stays there: a server that slows as its batch fills.
  double service_ramp = 0;
  int ramp_requests = 0;
};

// Open-loop arrivals at exactly req_min; FIFO over `slots` servers.
std::vector<RequestRecord> Simulate(const Sim& s) {
  std::mt19937_64 rng(s.seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<RequestRecord> out;
  std::vector<double> free_at(static_cast<size_t>(s.slots), 0.0);
  const double gap = 60.0 / s.req_min;
  std::exponential_distribution<double> exp_gap(s.req_min / 60.0);
  double next = 0;
  for (int i = 0;; ++i) {
    const double sched = s.poisson ? next : i * gap;
    next += exp_gap(rng);
    if (sched >= s.duration_s) break;
    double lag = s.lag_us / 1e6;
    if (u(rng) < s.slow_client_fraction) lag = 0.02;
    const double sent = sched + lag;
    auto slot = std::min_element(free_at.begin(), free_at.end());
    const double start = std::max(sent, *slot);
    const double ramp =
        s.ramp_requests > 0
            ? 1 + s.service_ramp * std::min(1.0, static_cast<double>(i) / s.ramp_requests)
            : 1.0;
    const double service = s.service_s * ramp * (1 + s.service_growth * sched / s.duration_s) *
                           (1 + s.service_jitter * (u(rng) - 0.5));
    const double end = start + s.prefill_s + service;
    *slot = end;
    RequestRecord r;
    r.set_request_idx(static_cast<uint64_t>(i));
    r.set_scheduled_unix_us(kT0 + static_cast<int64_t>(sched * 1e6));
    r.set_sent_unix_us(kT0 + static_cast<int64_t>(sent * 1e6));
    r.set_first_token_unix_us(kT0 + static_cast<int64_t>((start + s.prefill_s) * 1e6));
    r.set_end_unix_us(kT0 + static_cast<int64_t>(end * 1e6));
    if (s.exact_latency_us > 0) {
      r.set_first_token_unix_us(r.sent_unix_us() + static_cast<int64_t>(s.prefill_s * 1e6));
      r.set_end_unix_us(r.sent_unix_us() + s.exact_latency_us);
    }
    r.set_completion_tokens(100);
    const bool ok = u(rng) >= s.fail_fraction;
    r.set_success(ok);
    if (!ok) r.set_error_kind(mstperf::v1::ERROR_KIND_HTTP_STATUS);
    out.push_back(r);
  }
  return out;
}

DefaultConfig ConfigFor(const Sim& s) {
  DefaultConfig c;
  c.req_min = s.req_min;
  c.duration_s = s.duration_s;
  return c;
}

mstperf::v1::Verdict Judge(const Sim& s, DefaultConfig c) {
  DefaultJudge judge(std::move(c));
  for (const auto& r : Simulate(s)) judge.Add(r);
  return judge.Final();
}

const mstperf::v1::Reason& ReasonOf(const mstperf::v1::Verdict& v, const std::string& rule) {
  for (const auto& r : v.reasons()) {
    if (r.rule() == rule) return r;
  }
  ADD_FAILURE() << "no reason " << rule;
  static mstperf::v1::Reason none;
  return none;
}

std::string Explain(const mstperf::v1::Verdict& v) {
  std::string s = v.deciding_rule() + ":";
  for (const auto& r : v.reasons()) {
    s += "\n  " + r.rule() + (r.passed() ? " ok: " : " FAIL: ") + r.detail();
  }
  return s;
}

TEST(DefaultRulesTest, StableLoadIsSustainable) {
  Sim s;  // capacity 8 / 2.05 s = 234 req/min, offered 120
  const auto v = Judge(s, ConfigFor(s));
  EXPECT_EQ(v.state(), mstperf::v1::VERDICT_STATE_SUSTAINABLE) << Explain(v);
  EXPECT_TRUE(v.sustainable());
  EXPECT_EQ(v.deciding_rule(), "backlog_trend");
  for (const auto& r : v.reasons()) EXPECT_TRUE(r.passed()) << r.detail();
  EXPECT_GT(v.first_half().count(), 40u);
  EXPECT_GT(v.second_half().count(), 40u);
  EXPECT_EQ(v.first_half_request_idx_size(), static_cast<int>(v.first_half().count()));
  EXPECT_NEAR(v.first_half().ttft_ms().p50(), 50, 1);
}

TEST(DefaultRulesTest, OverloadIsABacklog) {
  Sim s;
  s.req_min = 300;  // 5/s offered, 3.9/s served
  const auto v = Judge(s, ConfigFor(s));
  EXPECT_EQ(v.state(), mstperf::v1::VERDICT_STATE_UNSUSTAINABLE) << Explain(v);
  EXPECT_EQ(v.deciding_rule(), "backlog_trend");
  const auto& b = ReasonOf(v, "backlog_trend");
  EXPECT_NEAR(b.values().at("slope_per_s"), 5.0 - 8 / 2.05, 0.3);
  EXPECT_NE(b.detail().find("grow by"), std::string::npos);
}

TEST(DefaultRulesTest, JustBelowCapacityIsSustainable) {
  Sim s;
  s.req_min = 220;  // 94% of capacity
  s.duration_s = 300;
  const auto v = Judge(s, ConfigFor(s));
  EXPECT_TRUE(v.sustainable()) << Explain(v);
}

TEST(DefaultRulesTest, ASlowClientIsNeverBlamedOnTheServer) {
  Sim s;
  s.req_min = 300;  // the server is overloaded too, but the client cannot be trusted
  s.slow_client_fraction = 0.05;
  const auto v = Judge(s, ConfigFor(s));
  EXPECT_EQ(v.state(), mstperf::v1::VERDICT_STATE_CLIENT_LIMITED) << Explain(v);
  EXPECT_FALSE(v.sustainable());
  EXPECT_EQ(v.deciding_rule(), "send_lag");
  EXPECT_GT(ReasonOf(v, "send_lag").values().at("send_lag_p99_us"), 5000);
}

TEST(DefaultRulesTest, IdenticalLatenciesAreSustainable) {
  Sim s;
  s.exact_latency_us = 2'050'000;  // a deterministic server
  const auto v = Judge(s, ConfigFor(s));
  EXPECT_TRUE(v.sustainable()) << Explain(v);
  EXPECT_EQ(ReasonOf(v, "drift_e2e").values().at("ci_low"), 0.0);
  // The original's rules on the same records: FALSE, flagged.
  std::vector<RequestRecord> records = Simulate(s);
  MostConfig most;
  most.req_min = s.req_min;
  most.filter_buffer_s = 10;
  const auto m = EvaluateMost(RowsFromRecords(records), most);
  EXPECT_FALSE(m.sustainable()) << Explain(m);
}

TEST(DefaultRulesTest, ATrivialDriftPassesAMaterialOneFails) {
  Sim s;
  s.slots = 64;
  s.service_growth = 0.03;
  s.duration_s = 300;
  auto v = Judge(s, ConfigFor(s));
  EXPECT_TRUE(v.sustainable()) << Explain(v);
  s.service_growth = 0.6;  // +60% over the iteration: about +30% half to half
  v = Judge(s, ConfigFor(s));
  EXPECT_FALSE(v.sustainable()) << Explain(v);
  EXPECT_EQ(v.deciding_rule(), "drift_e2e") << Explain(v);
  EXPECT_GT(ReasonOf(v, "drift_e2e").values().at("ci_low"), 0.10);
}

TEST(DefaultRulesTest, SlosAndErrorRate) {
  Sim s;
  DefaultConfig c = ConfigFor(s);
  c.slo.set_ttft_ms(20);  // prefill alone is 50 ms
  auto v = Judge(s, c);
  EXPECT_FALSE(v.sustainable());
  EXPECT_EQ(v.deciding_rule(), "slo_ttft") << Explain(v);
  c.slo.set_ttft_ms(80);
  c.slo.set_e2e_ms(5000);
  c.slo.set_tpot_ms(30);  // 2 s / 99 tokens = 20 ms
  v = Judge(s, c);
  EXPECT_TRUE(v.sustainable()) << Explain(v);
  EXPECT_TRUE(ReasonOf(v, "slo_tpot").passed());

  s.fail_fraction = 0.10;
  v = Judge(s, ConfigFor(s));
  EXPECT_EQ(v.deciding_rule(), "error_rate") << Explain(v);
  EXPECT_NEAR(v.success_rate_pct(), 90, 4);
}

// Feeds records as they would arrive (at their end time) with a tick every `tick_s` seconds of
// simulated time; with `progress`, each tick also carries the live in-flight count, as the
// controller sends it.
std::optional<mstperf::v1::Verdict> FirstEarly(const Sim& s, DefaultConfig c,
                                               bool progress = false, double tick_s = 1.0) {
  c.early_stop = true;
  std::vector<RequestRecord> records = Simulate(s);
  std::sort(records.begin(), records.end(),
            [](const auto& a, const auto& b) { return a.end_unix_us() < b.end_unix_us(); });
  DefaultJudge judge(c);
  size_t next = 0;
  const int ticks = static_cast<int>(s.duration_s / tick_s);
  for (int k = 1; k <= ticks; ++k) {
    const double t = k * tick_s;
    const int64_t now = kT0 + static_cast<int64_t>(t * 1e6);
    while (next < records.size() && records[next].end_unix_us() <= now) {
      judge.Add(records[next++]);
    }
    if (progress) {
      mstperf::v1::IterationProgress p;
      uint64_t in_flight = 0;
      for (const auto& r : records) in_flight += r.sent_unix_us() <= now && r.end_unix_us() > now;
      p.set_in_flight(in_flight);
      judge.ObserveProgress(t, p);
    }
    if (auto v = judge.Early(t)) return v;
  }
  return std::nullopt;
}

// The integration tests' simulator: 4 slots of about 0.3 s, capacity 4 / 0.3 s = 800 req/min.
Sim SmallEngine(double load, double duration_s) {
  Sim s;
  s.slots = 4;
  s.service_s = 0.28;
  s.prefill_s = 0.02;
  s.duration_s = duration_s;
  s.req_min = load * 800;
  return s;
}

// What the controller does: ticks 4 times a second with the merged live progress. An overload
// of 1.5x to 3x the capacity is stopped in the first half of a 30 s iteration.
TEST(DefaultRulesTest, EarlyStopOnAClearOverloadWithLiveProgress) {
  for (double load : {1.5, 2.0, 3.0}) {
    for (bool poisson : {false, true}) {
      Sim s = SmallEngine(load, 30);
      s.poisson = poisson;
      auto v = FirstEarly(s, ConfigFor(s), /*progress=*/true, /*tick_s=*/0.25);
      ASSERT_TRUE(v.has_value()) << "load " << load << " poisson " << poisson;
      EXPECT_EQ(v->state(), mstperf::v1::VERDICT_STATE_UNSUSTAINABLE);
      EXPECT_EQ(v->deciding_rule(), "backlog_trend");
      EXPECT_TRUE(v->early());
      EXPECT_LT(v->judged_at_elapsed_s(), 15) << Explain(*v);
      EXPECT_EQ(ReasonOf(*v, "backlog_trend").values().at("live_counts"), 1.0);
      std::cout << "load " << load << (poisson ? " poisson" : " constant") << ": early FALSE at "
                << v->judged_at_elapsed_s() << " s of 30\n";
      // From the records alone (no progress ticks) it comes too, later.
      auto r = FirstEarly(s, ConfigFor(s), /*progress=*/false, /*tick_s=*/0.25);
      ASSERT_TRUE(r.has_value()) << "load " << load << " poisson " << poisson;
      EXPECT_LT(r->judged_at_elapsed_s(), 25) << Explain(*r);
      EXPECT_EQ(ReasonOf(*r, "backlog_trend").values().at("live_counts"), 0.0);
    }
  }
}

// No early FALSE at a sustainable rate, whatever the seed, the arrival process, the tick rate,
// the length of the iteration, or whether live counts are sent.
TEST(DefaultRulesTest, NoEarlyStopAtASustainableRate) {
  int judged = 0;
  for (double load : {0.7, 0.85}) {
    for (double duration : {30.0, 120.0}) {
      for (bool poisson : {false, true}) {
        for (bool progress : {false, true}) {
          for (unsigned seed = 1; seed <= 10; ++seed) {
            Sim s = SmallEngine(load, duration);
            s.poisson = poisson;
            s.seed = seed;
            auto v = FirstEarly(s, ConfigFor(s), progress, /*tick_s=*/0.25);
            EXPECT_FALSE(v.has_value())
                << "load " << load << " duration " << duration << " poisson " << poisson
                << " progress " << progress << " seed " << seed << "\n"
                << (v ? Explain(*v) : "");
            ++judged;
          }
        }
      }
    }
  }
  EXPECT_EQ(judged, 160);
}

// A server that slows as its batch fills (loaded latency 5x the first requests') at a stable
// rate: its in-flight count rises for a while after the warm-up, then levels off. Filling up is
// not a backlog: no early FALSE, and the final verdict is TRUE.
TEST(DefaultRulesTest, NoEarlyStopWhileAStableServerFillsUp) {
  for (bool progress : {false, true}) {
    for (unsigned seed = 1; seed <= 5; ++seed) {
      Sim s;
      s.slots = 64;
      s.service_s = 1.0;
      s.service_ramp = 4.0;  // 1 s for the first request, 5 s from the 100th on
      s.ramp_requests = 100;
      s.req_min = 300;  // 5/s x 5 s = 25 in flight of 64 slots
      s.duration_s = 120;
      s.seed = seed;
      s.poisson = true;
      auto v = FirstEarly(s, ConfigFor(s), progress, /*tick_s=*/0.25);
      EXPECT_FALSE(v.has_value()) << "seed " << seed << " progress " << progress << "\n"
                                  << (v ? Explain(*v) : "");
    }
  }
}

TEST(DefaultRulesTest, EarlyVerdictsWithLiveProgress) {
  Sim s;
  s.req_min = 300;
  s.duration_s = 300;
  s.poisson = true;
  auto v = FirstEarly(s, ConfigFor(s), /*progress=*/true);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->deciding_rule(), "backlog_trend");
  EXPECT_LT(v->judged_at_elapsed_s(), 150);
  std::cout << "early FALSE with progress at " << v->judged_at_elapsed_s() << " s of 300\n";
  for (unsigned seed = 1; seed <= 10; ++seed) {
    Sim stable;
    stable.req_min = 200;
    stable.duration_s = 300;
    stable.poisson = true;
    stable.seed = seed;
    EXPECT_FALSE(FirstEarly(stable, ConfigFor(stable), /*progress=*/true).has_value())
        << "seed " << seed;
  }
}

TEST(DefaultRulesTest, EarlyFalseForABacklogThatCannotDrain) {
  Sim s;
  s.req_min = 300;
  s.duration_s = 300;
  auto v = FirstEarly(s, ConfigFor(s));
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->state(), mstperf::v1::VERDICT_STATE_UNSUSTAINABLE);
  EXPECT_EQ(v->deciding_rule(), "backlog_trend");
  EXPECT_TRUE(v->early());
  EXPECT_LT(v->judged_at_elapsed_s(), 120);  // saves more than half of the iteration
  std::cout << "early FALSE at " << v->judged_at_elapsed_s() << " s of 300\n";
}

TEST(DefaultRulesTest, NoEarlyVerdictForAStableIteration) {
  for (bool poisson : {false, true}) {
    for (unsigned seed = 1; seed <= 10; ++seed) {
      Sim s;
      s.req_min = 200;
      s.duration_s = 300;
      s.seed = seed;
      s.poisson = poisson;
      auto v = FirstEarly(s, ConfigFor(s));
      EXPECT_FALSE(v.has_value()) << "seed " << seed << " poisson " << poisson << "\n"
                                  << (v ? Explain(*v) : "");
      const auto final_v = Judge(s, ConfigFor(s));
      EXPECT_TRUE(final_v.sustainable()) << "seed " << seed << " poisson " << poisson << "\n"
                                         << Explain(final_v);
    }
  }
}

TEST(DefaultRulesTest, EarlyFalseForABacklogWithPoissonArrivals) {
  Sim s;
  s.req_min = 300;
  s.duration_s = 300;
  s.poisson = true;
  auto v = FirstEarly(s, ConfigFor(s));
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->deciding_rule(), "backlog_trend");
  EXPECT_LT(v->judged_at_elapsed_s(), 150);
  std::cout << "early FALSE at " << v->judged_at_elapsed_s() << " s of 300\n";
}

TEST(DefaultRulesTest, EarlyFalseWhenErrorsOrSlosAreAlreadyLost) {
  Sim s;
  s.fail_fraction = 0.5;
  auto v = FirstEarly(s, ConfigFor(s));
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->deciding_rule(), "error_rate");
  EXPECT_LT(v->judged_at_elapsed_s(), 40);

  Sim t;
  DefaultConfig c = ConfigFor(t);
  c.slo.set_e2e_ms(1000);  // every request takes ~2 s
  v = FirstEarly(t, c);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->deciding_rule(), "slo_e2e");
  EXPECT_LT(v->judged_at_elapsed_s(), 20);
}

// The legacy file with a 5% drift: the original's large-sample t-test says FALSE; the default
// mode sees a drift well under its 10% limit and no backlog.
TEST(DefaultRulesTest, TrivialDriftInARecordedFileIsSustainable) {
  std::ifstream in(std::string(MSTPERF_TEST_DATA_DIR) +
                   "/evaluator/legacy_slight_drift/output.csv");
  std::stringstream ss;
  ss << in.rdbuf();
  auto rows = ParseOutputCsv(ss.str());
  ASSERT_TRUE(rows.ok()) << rows.status();
  DefaultConfig c;
  c.req_min = 90;
  c.duration_s = 600;
  c.filter_buffer_s = 30;
  DefaultJudge judge(c);
  for (size_t i = 0; i < rows->size(); ++i) judge.Add(RecordFromRow((*rows)[i], i));
  const auto v = judge.Final();
  EXPECT_TRUE(v.sustainable()) << Explain(v);
  const double rise = ReasonOf(v, "drift_e2e").values().at("relative_change");
  EXPECT_GT(rise, 0.0);
  EXPECT_LT(rise, 0.10);
}

}  // namespace
}  // namespace mstperf::evaluator
