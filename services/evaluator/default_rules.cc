#include "services/evaluator/default_rules.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/str_format.h"
#include "services/evaluator/distribution.h"
#include "services/evaluator/stats.h"

namespace mstperf::evaluator {
namespace {

using mstperf::v1::Reason;
using mstperf::v1::Verdict;
using mstperf::v1::VerdictState;

constexpr int kBacklogBlocks = 10;
constexpr size_t kDriftBlocks = 5;  // per half

void AddReason(Verdict& v, const std::string& rule, bool passed, std::string detail,
               std::initializer_list<std::pair<const char*, double>> values) {
  Reason* r = v.add_reasons();
  r->set_rule(rule);
  r->set_passed(passed);
  r->set_detail(std::move(detail));
  for (const auto& [k, val] : values) (*r->mutable_values())[k] = val;
}

void SetState(Verdict& v, VerdictState state, const std::string& rule) {
  v.set_state(state);
  v.set_sustainable(state == mstperf::v1::VERDICT_STATE_SUSTAINABLE);
  v.set_deciding_rule(rule);
}

// In-flight requests sampled on a grid, averaged in blocks, and the OLS trend of the block
// means. Block averaging tames the strong autocorrelation of a queue length, which would make
// a per-sample regression's interval far too narrow.
struct BacklogResult {
  bool judged = false;
  SlopeResult slope;
  double threshold_per_s = 0;
  double start_in_flight = 0;
  double end_in_flight = 0;
};

BacklogResult BacklogTest(const std::vector<double>& t_s, const std::vector<double>& in_flight,
                          double rate_per_s, double threshold_fraction, double confidence) {
  BacklogResult r;
  r.threshold_per_s = threshold_fraction * rate_per_s;
  const size_t n = t_s.size();
  if (n < static_cast<size_t>(kBacklogBlocks)) return r;
  std::vector<double> bx, by;
  for (int b = 0; b < kBacklogBlocks; ++b) {
    const size_t lo = n * static_cast<size_t>(b) / kBacklogBlocks;
    const size_t hi = n * static_cast<size_t>(b + 1) / kBacklogBlocks;
    if (hi <= lo) continue;
    double st = 0, sy = 0;
    for (size_t i = lo; i < hi; ++i) {
      st += t_s[i];
      sy += in_flight[i];
    }
    bx.push_back(st / static_cast<double>(hi - lo));
    by.push_back(sy / static_cast<double>(hi - lo));
  }
  r.slope = OlsSlope(bx, by, confidence);
  r.judged = r.slope.ok;
  r.start_in_flight = by.front();
  r.end_in_flight = by.back();
  return r;
}

// Sorted send and end times -> in-flight count on a grid over [start, end] (microseconds).
void InFlightOnGrid(std::vector<int64_t> sends, std::vector<int64_t> ends, int64_t start,
                    int64_t end, int points, int64_t t0, std::vector<double>* t_s,
                    std::vector<double>* in_flight) {
  std::sort(sends.begin(), sends.end());
  std::sort(ends.begin(), ends.end());
  size_t si = 0, ei = 0;
  for (int k = 0; k < points; ++k) {
    const int64_t t = start + (end - start) * k / std::max(1, points - 1);
    while (si < sends.size() && sends[si] <= t) ++si;
    while (ei < ends.size() && ends[ei] <= t) ++ei;
    t_s->push_back(static_cast<double>(t - t0) / 1e6);
    in_flight->push_back(static_cast<double>(si) - static_cast<double>(ei));
  }
}

double LatencyPercentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return PercentileSorted(v, q);
}

}  // namespace

DefaultJudge::DefaultJudge(DefaultConfig config) : config_(std::move(config)) {}

void DefaultJudge::Add(const mstperf::v1::RequestRecord& record) {
  Rec r;
  r.scheduled_us = record.scheduled_unix_us();
  r.sent_us = record.sent_unix_us();
  r.first_token_us = record.first_token_unix_us();
  r.end_us = record.end_unix_us();
  r.completion_tokens = record.completion_tokens();
  r.dropped = record.error_kind() == mstperf::v1::ERROR_KIND_DROPPED || r.sent_us == 0;
  r.success = record.success() && !r.dropped && r.end_us != 0;
  r.request_idx = record.request_idx();
  const int64_t sched = r.scheduled_us != 0 ? r.scheduled_us : r.sent_us;
  if (sched != 0 && (min_scheduled_us_ == 0 || sched < min_scheduled_us_)) {
    min_scheduled_us_ = sched;
  }
  if (config_.slo.itl_ms() > 0 && r.success) {
    const int n = std::min(record.chunk_offset_us_size(), record.chunk_tokens_size());
    for (int i = 1; i < n; ++i) {
      const double gap_ms =
          (static_cast<double>(record.chunk_offset_us(i)) - record.chunk_offset_us(i - 1)) / 1e3;
      const uint32_t tokens = std::max<uint32_t>(1, record.chunk_tokens(i));
      for (uint32_t k = 0; k < tokens; ++k) itl_ms_.push_back(static_cast<float>(gap_ms / tokens));
    }
  }
  if (r.dropped || (r.scheduled_us != 0 && static_cast<double>(r.sent_us - r.scheduled_us) >
                                                config_.max_send_lag_p99_us)) {
    ++late_or_dropped_;
  }
  if (!r.dropped && !r.success) ++failed_;
  if (r.end_us != 0) ++ends_per_bin_[r.end_us / kEndBinUs];
  if (r.success) {
    if (e2e_sample_s_.size() < 201) e2e_sample_s_.push_back((r.end_us - r.sent_us) / 1e6);
    if (config_.slo.ttft_ms() > 0 && r.first_token_us != 0 &&
        (r.first_token_us - r.sent_us) / 1e3 > config_.slo.ttft_ms()) {
      ttft_violation_sent_us_.push_back(r.sent_us);
    }
    if (config_.slo.e2e_ms() > 0 && (r.end_us - r.sent_us) / 1e3 > config_.slo.e2e_ms()) {
      e2e_violation_sent_us_.push_back(r.sent_us);
    }
  }
  records_.push_back(r);
}

void DefaultJudge::ObserveProgress(double elapsed_s, const mstperf::v1::IterationProgress& p) {
  // A tick that repeats the last progress (no newer report from the generators) adds nothing.
  if (!progress_in_flight_.empty() && elapsed_s <= progress_in_flight_.back().first) return;
  progress_in_flight_.emplace_back(elapsed_s, static_cast<double>(p.in_flight()));
}

double DefaultJudge::PlannedRequests() const {
  return config_.req_min * config_.duration_s / 60.0;
}

DefaultJudge::Window DefaultJudge::ComputeWindow(bool estimate) const {
  Window w;
  w.t0_us = min_scheduled_us_;
  w.duration_s = config_.duration_s;
  if (w.duration_s <= 0) {
    int64_t last = w.t0_us;
    for (const Rec& r : records_) {
      last = std::max(last, r.scheduled_us ? r.scheduled_us : r.sent_us);
    }
    w.duration_s = static_cast<double>(last - w.t0_us) / 1e6;
  }
  double warmup = config_.filter_buffer_s;
  if (warmup < 0) {
    std::vector<double> e2e;
    if (estimate) {
      e2e = e2e_sample_s_;
    } else {
      for (const Rec& r : records_) {
        if (r.success) e2e.push_back(static_cast<double>(r.end_us - r.sent_us) / 1e6);
      }
    }
    warmup = std::max(1.0, 3.0 * (e2e.empty() ? 0.0 : LatencyPercentile(e2e, 50)));
  }
  w.warmup_s = std::min(warmup, 0.25 * w.duration_s);
  w.start_us = w.t0_us + static_cast<int64_t>(w.warmup_s * 1e6);
  w.end_us = w.t0_us + static_cast<int64_t>(w.duration_s * 1e6);
  return w;
}

mstperf::v1::Verdict DefaultJudge::Final() const {
  Verdict v;
  const Window w = ComputeWindow(/*estimate=*/false);
  const double rate_per_s = config_.req_min / 60.0;
  std::string decided;
  VerdictState state = mstperf::v1::VERDICT_STATE_SUSTAINABLE;
  auto fail = [&](const std::string& rule, VerdictState s) {
    if (decided.empty()) {
      decided = rule;
      state = s;
    }
  };

  // send_lag
  std::vector<double> lags;
  size_t dropped = 0, completed = 0, failed = 0;
  for (const Rec& r : records_) {
    if (r.dropped) {
      ++dropped;
      continue;
    }
    if (r.scheduled_us != 0) lags.push_back(static_cast<double>(r.sent_us - r.scheduled_us));
    (r.success ? completed : failed) += 1;
  }
  const double lag_p99 = lags.empty() ? 0.0 : LatencyPercentile(lags, 99);
  const double dropped_pct =
      records_.empty() ? 0.0 : 100.0 * static_cast<double>(dropped) / records_.size();
  const bool client_ok =
      lag_p99 <= config_.max_send_lag_p99_us && dropped_pct <= config_.max_dropped_pct;
  AddReason(v, "send_lag", client_ok,
            absl::StrFormat("send lag p99 %.0f us %s %.0f us, %d dropped (%.2f%% %s %.2f%%)%s",
                            lag_p99, lag_p99 <= config_.max_send_lag_p99_us ? "<=" : ">",
                            config_.max_send_lag_p99_us, dropped, dropped_pct,
                            dropped_pct <= config_.max_dropped_pct ? "<=" : ">",
                            config_.max_dropped_pct,
                            client_ok ? ""
                                      : ": the client was the limit, no verdict on the server"),
            {{"send_lag_p99_us", lag_p99}, {"max_send_lag_p99_us", config_.max_send_lag_p99_us},
             {"dropped", static_cast<double>(dropped)}, {"dropped_pct", dropped_pct}});
  if (!client_ok) fail("send_lag", mstperf::v1::VERDICT_STATE_CLIENT_LIMITED);

  // error_rate
  const double answered = static_cast<double>(completed + failed);
  const double error_pct = answered > 0 ? 100.0 * static_cast<double>(failed) / answered : 0.0;
  const double error_limit = config_.slo.max_error_rate_pct() > 0
                                 ? config_.slo.max_error_rate_pct()
                                 : 100.0 - config_.success_rate_pct;
  v.set_success_rate_pct(records_.empty() ? 0.0 : 100.0 * completed / records_.size());
  const bool error_ok = error_pct <= error_limit && completed > 0;
  AddReason(v, "error_rate", error_ok,
            completed == 0 ? std::string("no request completed successfully")
                           : absl::StrFormat("error rate %.2f%% %s %.2f%% (%d failed of %d)",
                                             error_pct, error_ok ? "<=" : ">", error_limit,
                                             failed, completed + failed),
            {{"error_rate_pct", error_pct}, {"max_error_rate_pct", error_limit},
             {"failed", static_cast<double>(failed)},
             {"completed", static_cast<double>(completed)}});
  if (!error_ok) fail("error_rate", mstperf::v1::VERDICT_STATE_UNSUSTAINABLE);

  // The window's successful requests, by send time, split at the window's midpoint.
  const int64_t mid_us = w.start_us + (w.end_us - w.start_us) / 2;
  std::vector<double> e2e[2], ttft[2], tpot;
  std::vector<const Rec*> halves[2];
  for (const Rec& r : records_) {
    if (!r.success || r.sent_us < w.start_us || r.sent_us > w.end_us) continue;
    halves[r.sent_us < mid_us ? 0 : 1].push_back(&r);
  }
  for (int h = 0; h < 2; ++h) {
    // In send order, so that the drift test can average consecutive requests in blocks.
    std::sort(halves[h].begin(), halves[h].end(),
              [](const Rec* a, const Rec* b) { return a->sent_us < b->sent_us; });
    for (const Rec* r : halves[h]) {
      e2e[h].push_back(static_cast<double>(r->end_us - r->sent_us) / 1e3);
      if (r->first_token_us != 0) {
        ttft[h].push_back(static_cast<double>(r->first_token_us - r->sent_us) / 1e3);
        if (r->completion_tokens > 1) {
          tpot.push_back(static_cast<double>(r->end_us - r->first_token_us) / 1e3 /
                         (r->completion_tokens - 1));
        }
      }
    }
  }
  for (int h = 0; h < 2; ++h) {
    auto* half = h == 0 ? v.mutable_first_half() : v.mutable_second_half();
    half->set_count(halves[h].size());
    half->set_start_unix_s(static_cast<double>(h == 0 ? w.start_us : mid_us) / 1e6);
    half->set_end_unix_s(static_cast<double>(h == 0 ? mid_us : w.end_us) / 1e6);
    FillDistribution(e2e[h], half->mutable_e2e_ms());
    FillDistribution(ttft[h], half->mutable_ttft_ms());
    for (const Rec* r : halves[h]) {
      (h == 0 ? v.add_first_half_request_idx(r->request_idx)
              : v.add_second_half_request_idx(r->request_idx));
    }
  }

  // SLOs
  const double q = config_.slo.percentile() > 0 ? config_.slo.percentile() : 99.0;
  auto check_slo = [&](const char* rule, const char* what, double limit,
                       std::vector<double> values) {
    if (limit <= 0) return;
    if (values.empty()) {
      AddReason(v, rule, true, absl::StrFormat("%s SLO not judged: no samples", what),
                {{"limit_ms", limit}});
      return;
    }
    const double value = LatencyPercentile(std::move(values), q);
    const bool ok = value <= limit;
    AddReason(v, rule, ok,
              absl::StrFormat("%s p%g %.2f ms %s SLO %.2f ms", what, q, value, ok ? "<=" : ">",
                              limit),
              {{"value_ms", value}, {"limit_ms", limit}, {"percentile", q}});
    if (!ok) fail(rule, mstperf::v1::VERDICT_STATE_UNSUSTAINABLE);
  };
  auto joined = [](const std::vector<double>* halves2) {
    std::vector<double> all(halves2[0]);
    all.insert(all.end(), halves2[1].begin(), halves2[1].end());
    return all;
  };
  check_slo("slo_ttft", "TTFT", config_.slo.ttft_ms(), joined(ttft));
  check_slo("slo_itl", "inter-token latency", config_.slo.itl_ms(),
            std::vector<double>(itl_ms_.begin(), itl_ms_.end()));
  check_slo("slo_tpot", "TPOT", config_.slo.tpot_ms(), tpot);
  check_slo("slo_e2e", "end-to-end latency", config_.slo.e2e_ms(), joined(e2e));

  // backlog_trend
  {
    std::vector<int64_t> sends, ends;
    size_t sent_in_window = 0, ended_in_window = 0;
    for (const Rec& r : records_) {
      if (r.dropped) continue;
      sends.push_back(r.sent_us);
      ends.push_back(r.end_us != 0 ? r.end_us : INT64_MAX);
      sent_in_window += r.sent_us >= w.start_us && r.sent_us <= w.end_us;
      ended_in_window += r.end_us >= w.start_us && r.end_us <= w.end_us;
    }
    std::vector<double> t_s, in_flight;
    const double window_s = static_cast<double>(w.end_us - w.start_us) / 1e6;
    const int points = static_cast<int>(std::clamp(window_s * 4.0, 0.0, 2000.0));
    if (points >= kBacklogBlocks) {
      InFlightOnGrid(std::move(sends), std::move(ends), w.start_us, w.end_us, points, w.t0_us,
                     &t_s, &in_flight);
    }
    const BacklogResult b = BacklogTest(t_s, in_flight, rate_per_s, config_.backlog_threshold,
                                        config_.confidence);
    const double completion_ratio =
        sent_in_window ? static_cast<double>(ended_in_window) / sent_in_window : 0.0;
    if (!b.judged) {
      AddReason(v, "backlog_trend", true,
                absl::StrFormat("backlog not judged: window of %.1f s too short", window_s),
                {{"window_s", window_s}});
    } else {
      const bool ok = !(b.slope.ci_low > b.threshold_per_s);
      AddReason(
          v, "backlog_trend", ok,
          absl::StrFormat("in-flight requests %s %.2f/s (%.0f%% CI %.2f .. %.2f; from %.1f to "
                          "%.1f over %.0f s), threshold %.2f/s = %.0f%% of the offered %.2f/s; "
                          "%d of %d requests sent in the window ended in it",
                          ok ? "trend" : "grow by", b.slope.slope, config_.confidence * 100,
                          b.slope.ci_low, b.slope.ci_high, b.start_in_flight, b.end_in_flight,
                          window_s, b.threshold_per_s, config_.backlog_threshold * 100, rate_per_s,
                          ended_in_window, sent_in_window),
          {{"slope_per_s", b.slope.slope}, {"slope_ci_low", b.slope.ci_low},
           {"slope_ci_high", b.slope.ci_high}, {"threshold_per_s", b.threshold_per_s},
           {"in_flight_start", b.start_in_flight}, {"in_flight_end", b.end_in_flight},
           {"completion_ratio", completion_ratio}, {"window_s", window_s}});
      if (!ok) fail("backlog_trend", mstperf::v1::VERDICT_STATE_UNSUSTAINABLE);
    }
  }

  // drift_e2e, drift_ttft
  auto check_drift = [&](const char* rule, const char* what, const std::vector<double>& first,
                         const std::vector<double>& second) {
    if (first.size() < 2 || second.size() < 2) {
      AddReason(v, rule, true,
                absl::StrFormat("%s drift not judged: %d + %d samples", what, first.size(),
                                second.size()),
                {{"first_count", static_cast<double>(first.size())},
                 {"second_count", static_cast<double>(second.size())}});
      return;
    }
    // Batch means: latencies of neighbouring requests are strongly correlated (they share a
    // queue), so per-request samples overstate the evidence. Each half's requests, in send
    // order, are averaged in kDriftBlocks consecutive blocks and the interval is computed on the
    // block means; with too few requests, on the requests themselves.
    auto blocks = [](const std::vector<double>& v) {
      if (v.size() < 2 * kDriftBlocks) return v;
      std::vector<double> means;
      for (size_t b = 0; b < kDriftBlocks; ++b) {
        const size_t lo = v.size() * b / kDriftBlocks, hi = v.size() * (b + 1) / kDriftBlocks;
        double sum = 0;
        for (size_t i = lo; i < hi; ++i) sum += v[i];
        means.push_back(sum / static_cast<double>(hi - lo));
      }
      return means;
    };
    const MeanDiffCi ci = WelchMeanDiffCi(blocks(first), blocks(second), config_.confidence);
    const double base = Mean(first);
    const double rel = base > 0 ? ci.diff / base : 0.0;
    const double lo = base > 0 ? ci.ci_low / base : 0.0;
    const double hi = base > 0 ? ci.ci_high / base : 0.0;
    const bool ok = !(lo > config_.drift_threshold);
    AddReason(v, rule, ok,
              absl::StrFormat("%s mean %.2f -> %.2f ms: %+.1f%% (%.0f%% CI %+.1f%% .. %+.1f%%), "
                              "%s the %.0f%% drift limit",
                              what, base, Mean(second), rel * 100, config_.confidence * 100,
                              lo * 100, hi * 100, ok ? "not wholly above" : "wholly above",
                              config_.drift_threshold * 100),
              {{"relative_change", rel}, {"ci_low", lo}, {"ci_high", hi},
               {"mean_first_ms", base}, {"mean_second_ms", Mean(second)},
               {"cohens_d", CohensD(second, first)}, {"threshold", config_.drift_threshold}});
    if (!ok) fail(rule, mstperf::v1::VERDICT_STATE_UNSUSTAINABLE);
  };
  check_drift("drift_e2e", "end-to-end latency", e2e[0], e2e[1]);
  check_drift("drift_ttft", "TTFT", ttft[0], ttft[1]);

  if (decided.empty()) decided = "backlog_trend";
  SetState(v, state, decided);
  v.set_judged_at_elapsed_s(w.duration_s);
  return v;
}

double DefaultJudge::EarlyWarmup(const Window& w) const {
  // The first successful requests met an (almost) idle server: their latency is the service
  // time, not yet inflated by any queue, even when the rate is an overload.
  const size_t n = std::min(e2e_sample_s_.size(), kEarlyLatencySample);
  if (n < kEarlyLatencyMinCount) return -1;
  std::vector<double> first(e2e_sample_s_.begin(), e2e_sample_s_.begin() + n);
  double warmup = std::max(1.0, 3.0 * LatencyPercentile(std::move(first), 50));
  if (config_.filter_buffer_s >= 0) warmup = std::max(warmup, w.warmup_s);
  return warmup;
}

std::optional<mstperf::v1::Verdict> DefaultJudge::EarlyBacklog(double elapsed_s,
                                                               const Window& w) const {
  if (elapsed_s >= w.duration_s) return std::nullopt;
  const double warmup_s = EarlyWarmup(w);
  if (warmup_s < 0) return std::nullopt;
  const double rate_per_s = config_.req_min / 60.0;
  std::vector<double> t_s, in_flight;
  // Live in-flight counts from the ticks' progress, when the caller sends them.
  for (const auto& [t, n] : progress_in_flight_) {
    if (t >= warmup_s && t <= elapsed_s) {
      t_s.push_back(t);
      in_flight.push_back(n);
    }
  }
  double until_s = elapsed_s;
  const bool estimated_arrivals = t_s.size() < static_cast<size_t>(kBacklogBlocks);
  if (estimated_arrivals) {
    // Records arrive when requests end, so what is in flight now is unknown from records;
    // judge up to 2 s ago, with arrivals estimated as the offered rate times t (open loop).
    until_s = elapsed_s - 2.0;
    t_s.clear();
    in_flight.clear();
    const int points = std::clamp(static_cast<int>((until_s - warmup_s) * 4), 0, 2000);
    auto bin = ends_per_bin_.begin();
    size_t ei = 0;  // requests ended by t (to the end-time bin's resolution)
    for (int k = 0; k < points; ++k) {
      const double t = warmup_s + (until_s - warmup_s) * k / std::max(1, points - 1);
      const int64_t t_us = w.t0_us + static_cast<int64_t>(t * 1e6);
      while (bin != ends_per_bin_.end() && (bin->first + 1) * kEndBinUs <= t_us) {
        ei += bin->second;
        ++bin;
      }
      t_s.push_back(t);
      in_flight.push_back(rate_per_s * t - static_cast<double>(ei));
    }
  }
  // Watched at least as long as the warm-up: a server whose loaded latency is many times the
  // first requests' would still be filling up, and filling up is not a backlog.
  const double observed_s = until_s - warmup_s;
  if (observed_s < std::max(kEarlyMinObservedS, warmup_s)) return std::nullopt;
  BacklogResult b = BacklogTest(t_s, in_flight, rate_per_s, config_.backlog_threshold,
                                config_.early_confidence);
  if (!b.judged) return std::nullopt;
  if (estimated_arrivals) {
    // rate * t - arrivals(t) is a random walk (variance rate * t for Poisson arrivals); the
    // OLS slope of a random walk over T seconds has variance about 6 * rate / (5 T). Widen the
    // interval by it, so a stable iteration with random arrivals is not called early.
    const double span_s = t_s.back() - t_s.front();
    const double walk_var = 6.0 * rate_per_s / (5.0 * std::max(span_s, 1.0));
    const double se = std::sqrt(b.slope.se * b.slope.se + walk_var);
    b.slope.ci_low = b.slope.slope - b.slope.t_critical * se;
    b.slope.ci_high = b.slope.slope + b.slope.t_critical * se;
  }
  // A stable server's in-flight count wanders around its level; an overloaded one's keeps
  // rising. The rise must (1) be steady (the 99% interval of the trend above the threshold),
  // (2) at least double the level at the start of the watch, and (3) exceed what the arrivals'
  // own randomness could add over the watch (3 x sqrt(rate x span)).
  const double start = std::max(0.0, b.start_in_flight);
  const double growth = b.end_in_flight - b.start_in_flight;
  const double noise = kEarlyNoiseZ * std::sqrt(rate_per_s * observed_s);
  if (!(b.slope.ci_low > b.threshold_per_s) || growth < start + noise) return std::nullopt;
  const double remaining_s = w.duration_s - elapsed_s;
  Verdict v;
  v.set_early(true);
  v.set_judged_at_elapsed_s(elapsed_s);
  AddReason(v, "backlog_trend", false,
            absl::StrFormat("in-flight requests grew from %.1f to %.1f over %.1f s after a %.1f s "
                            "warm-up (%s): %.2f/s (99%% CI %.2f .. %.2f) against a threshold of "
                            "%.2f/s, more than doubled and %.1f above the %.1f the arrivals' "
                            "randomness could add; %.0f s left: the backlog cannot drain",
                            b.start_in_flight, b.end_in_flight, observed_s, warmup_s,
                            estimated_arrivals ? "from the records" : "live counts",
                            b.slope.slope, b.slope.ci_low, b.slope.ci_high, b.threshold_per_s,
                            growth - start, noise, remaining_s),
            {{"slope_per_s", b.slope.slope}, {"slope_ci_low", b.slope.ci_low},
             {"slope_ci_high", b.slope.ci_high}, {"threshold_per_s", b.threshold_per_s},
             {"in_flight_start", b.start_in_flight}, {"in_flight_end", b.end_in_flight},
             {"noise_margin", noise}, {"warmup_s", warmup_s}, {"observed_s", observed_s},
             {"remaining_s", remaining_s}, {"live_counts", estimated_arrivals ? 0.0 : 1.0}});
  SetState(v, mstperf::v1::VERDICT_STATE_UNSUSTAINABLE, "backlog_trend");
  return v;
}

std::optional<mstperf::v1::Verdict> DefaultJudge::Early(double elapsed_s) const {
  if (!config_.early_stop || records_.empty()) return std::nullopt;
  const double planned = PlannedRequests();
  if (planned <= 0) return std::nullopt;
  const Window w = ComputeWindow(/*estimate=*/true);
  Verdict v;
  v.set_early(true);
  v.set_judged_at_elapsed_s(elapsed_s);

  // Certain: more than 1% of all planned requests already late or dropped.
  const size_t late = late_or_dropped_, failed = failed_;
  if (static_cast<double>(late) > 0.01 * planned + 1) {
    AddReason(v, "send_lag", false,
              absl::StrFormat("%d requests already sent more than %.0f us late or dropped, over "
                              "1%% of the %.0f planned: the client is the limit",
                              late, config_.max_send_lag_p99_us, planned),
              {{"late_or_dropped", static_cast<double>(late)}, {"planned", planned}});
    SetState(v, mstperf::v1::VERDICT_STATE_CLIENT_LIMITED, "send_lag");
    return v;
  }

  // Certain: the error limit is exceeded even if every remaining request succeeds.
  const double error_limit = config_.slo.max_error_rate_pct() > 0
                                 ? config_.slo.max_error_rate_pct()
                                 : 100.0 - config_.success_rate_pct;
  const double floor_pct = 100.0 * static_cast<double>(failed) / planned;
  if (floor_pct > error_limit) {
    AddReason(v, "error_rate", false,
              absl::StrFormat("%d failed requests are already %.2f%% of the %.0f planned, above "
                              "the %.2f%% limit whatever happens next",
                              failed, floor_pct, planned, error_limit),
              {{"failed", static_cast<double>(failed)}, {"planned", planned},
               {"max_error_rate_pct", error_limit}});
    SetState(v, mstperf::v1::VERDICT_STATE_UNSUSTAINABLE, "error_rate");
    return v;
  }

  // Certain: an SLO percentile is exceeded even if every remaining request is fast.
  const double q = config_.slo.percentile() > 0 ? config_.slo.percentile() : 99.0;
  const double allowed = (1.0 - q / 100.0) * planned + 1;
  struct SloCheck {
    const char* rule;
    const char* what;
    double limit;
    const std::vector<int64_t>* violation_sends;
  };
  for (const SloCheck& c :
       {SloCheck{"slo_ttft", "TTFT", config_.slo.ttft_ms(), &ttft_violation_sent_us_},
        SloCheck{"slo_e2e", "end-to-end latency", config_.slo.e2e_ms(), &e2e_violation_sent_us_}}) {
    if (c.limit <= 0) continue;
    size_t over = 0;
    for (int64_t sent : *c.violation_sends) over += sent >= w.start_us;
    if (static_cast<double>(over) > allowed) {
      AddReason(v, c.rule, false,
                absl::StrFormat("%d requests already above the %s SLO of %.2f ms: more than "
                                "%.0f%% of the %.0f planned, so p%g exceeds it whatever "
                                "happens next",
                                over, c.what, c.limit, 100 - q, planned, q),
                {{"over", static_cast<double>(over)}, {"limit_ms", c.limit},
                 {"planned", planned}, {"percentile", q}});
      SetState(v, mstperf::v1::VERDICT_STATE_UNSUSTAINABLE, c.rule);
      return v;
    }
  }

  // Overwhelming: a backlog that grows steadily, far beyond any level a stable server holds.
  if (const std::optional<Verdict> backlog = EarlyBacklog(elapsed_s, w)) return backlog;
  return std::nullopt;
}

}  // namespace mstperf::evaluator
