// Default mode: mstperf's own rules for "was this rate sustainable?". Pure; no clock, no I/O:
// time comes in as record timestamps and as the caller's `elapsed_s`.
//
// Rules, in the order they decide (the first that fails names the verdict):
//  send_lag        p99 of (actual - scheduled send) <= max_send_lag_p99_us (default 5 ms) and
//                  <= 1% of requests dropped; otherwise CLIENT_LIMITED: the generator, not the
//                  server, was the limit, so the server gets no verdict.
//  error_rate      failed / (completed + failed) <= Slo.max_error_rate_pct, or 100 - SUCCESS_RATE.
//  slo_ttft, slo_itl, slo_tpot, slo_e2e
//                  the chosen percentile (default p99) of each set SLO, over the analysis window.
//  backlog_trend   in-flight requests over time (sent so far - ended so far), averaged in 10
//                  blocks, OLS slope with a 90% CI: FALSE when the CI's lower bound says more than
//                  2% of the offered requests per second pile up. Also reports completions vs
//                  arrivals in the window.
//  drift_e2e, drift_ttft
//                  second vs first half of the window (split by send time): FALSE when the 90%
//                  Welch CI of the relative rise of the mean, computed on batch means (5 blocks
//                  of consecutive requests per half, against autocorrelation), lies wholly
//                  above 10%, i.e. a real and material drift; a tiny but "significant" drift
//                  passes; identical latencies give a zero-width interval at 0, never NaN.
// All pass: SUSTAINABLE, deciding rule backlog_trend.
//
// Analysis window: from the first scheduled send + warm-up, to the end of the sending window
// (duration_s). Warm-up = FILTER_BUFFER when set (>= 0), else 3 x the median end-to-end latency
// (at least 1 s), capped at 25% of the duration either way.
//
// Early verdicts (EvaluateStream, early_stop on), only when the outcome is certain or the
// evidence is overwhelming, see Early().
#ifndef MSTPERF_SERVICES_EVALUATOR_DEFAULT_RULES_H_
#define MSTPERF_SERVICES_EVALUATOR_DEFAULT_RULES_H_

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "mstperf/v1/common.pb.h"
#include "mstperf/v1/evaluator.pb.h"

namespace mstperf::evaluator {

struct DefaultConfig {
  double req_min = 0;
  double duration_s = 0;          // 0: the span of the scheduled sends
  double filter_buffer_s = -1;    // < 0: automatic warm-up
  double success_rate_pct = 95;
  mstperf::v1::Slo slo;
  bool early_stop = false;
  double max_send_lag_p99_us = 5000;
  double max_dropped_pct = 1.0;
  double drift_threshold = 0.10;      // relative rise of the mean latency that counts as drift
  double backlog_threshold = 0.02;    // piled-up fraction of the offered rate
  double confidence = 0.90;           // of the drift and backlog intervals
  double early_confidence = 0.99;     // of the early backlog test
};

// Accumulates records (all at once, or batch by batch while an iteration runs) and judges.
class DefaultJudge {
 public:
  explicit DefaultJudge(DefaultConfig config);

  void Add(const mstperf::v1::RequestRecord& record);
  // Live progress from the caller (EvaluateStream ticks); improves the early backlog test.
  void ObserveProgress(double elapsed_s, const mstperf::v1::IterationProgress& progress);

  // A verdict that can no longer change, judged at `elapsed_s` seconds into the iteration, or
  // nullopt. Certain: the error-rate limit already exceeded counting every planned request; an
  // SLO percentile already exceeded counting every planned request; more than 1% of the planned
  // requests already late or dropped (CLIENT_LIMITED). Overwhelming (backlog_trend): after a
  // warm-up of 3 x the median latency of the first successful requests (at least 1 s, at least
  // FILTER_BUFFER when set) and a watch at least as long as that warm-up (and >= 2 s, >= 10
  // in-flight samples), the in-flight count (live from progress ticks, else rate x t minus the
  // ended records) rises with a 99% CI above the backlog threshold, has more than doubled, and
  // rose by 3 x sqrt(rate x watch) more than that. Never an early TRUE: sustainability needs the
  // whole window.
  std::optional<mstperf::v1::Verdict> Early(double elapsed_s) const;

  // The verdict on everything added so far.
  mstperf::v1::Verdict Final() const;

  size_t size() const { return records_.size(); }

 private:
  struct Rec {
    int64_t scheduled_us;
    int64_t sent_us;       // 0: never sent
    int64_t first_token_us;
    int64_t end_us;        // 0: never ended
    uint32_t completion_tokens;
    bool success;
    bool dropped;
    uint64_t request_idx;
  };
  struct Window {
    int64_t t0_us = 0;
    int64_t start_us = 0;
    int64_t end_us = 0;
    double warmup_s = 0;
    double duration_s = 0;
  };
  // `estimate`: the warm-up from a sample of the first successful latencies (cheap, for Early).
  Window ComputeWindow(bool estimate) const;
  // The early backlog test's warm-up (see Early()); < 0 while too few requests have ended.
  double EarlyWarmup(const Window& w) const;
  std::optional<mstperf::v1::Verdict> EarlyBacklog(double elapsed_s, const Window& w) const;
  double PlannedRequests() const;

  DefaultConfig config_;
  std::vector<Rec> records_;
  std::vector<float> itl_ms_;  // kept only when an ITL SLO is set
  std::vector<std::pair<double, double>> progress_in_flight_;  // (elapsed_s, in_flight)
  int64_t min_scheduled_us_ = 0;

  // Kept up to date by Add() so that Early(), called on every tick, costs O(bins + violations)
  // rather than O(records).
  static constexpr int64_t kEndBinUs = 250000;
  static constexpr size_t kEarlyLatencySample = 21;    // first successes for the early warm-up
  static constexpr size_t kEarlyLatencyMinCount = 5;
  static constexpr double kEarlyMinObservedS = 2.0;
  static constexpr double kEarlyNoiseZ = 3.0;
  std::map<int64_t, uint32_t> ends_per_bin_;      // end_us / kEndBinUs -> count
  std::vector<double> e2e_sample_s_;              // first successful latencies (warm-up estimate)
  size_t late_or_dropped_ = 0;
  size_t failed_ = 0;
  std::vector<int64_t> ttft_violation_sent_us_;   // sends of requests above the TTFT SLO
  std::vector<int64_t> e2e_violation_sent_us_;    // sends of requests above the E2E SLO
};

}  // namespace mstperf::evaluator

#endif  // MSTPERF_SERVICES_EVALUATOR_DEFAULT_RULES_H_
