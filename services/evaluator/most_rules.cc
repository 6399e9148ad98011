#include "services/evaluator/most_rules.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "absl/strings/str_format.h"
#include "services/evaluator/distribution.h"
#include "services/evaluator/stats.h"

namespace mstperf::evaluator {
namespace {

using mstperf::v1::Reason;
using mstperf::v1::Verdict;

Reason* AddReason(Verdict& v, const std::string& rule, bool passed, std::string detail,
                  std::initializer_list<std::pair<const char*, double>> values) {
  Reason* r = v.add_reasons();
  r->set_rule(rule);
  r->set_passed(passed);
  r->set_detail(std::move(detail));
  for (const auto& [k, val] : values) (*r->mutable_values())[k] = val;
  return r;
}

void Decide(Verdict& v, bool sustainable, const std::string& rule) {
  v.set_state(sustainable ? mstperf::v1::VERDICT_STATE_SUSTAINABLE
                          : mstperf::v1::VERDICT_STATE_UNSUSTAINABLE);
  v.set_sustainable(sustainable);
  v.set_deciding_rule(rule);
}

void FillHalf(const std::vector<const OutputRow*>& half, mstperf::v1::HalfSummary* out) {
  out->set_count(half.size());
  if (half.empty()) return;
  out->set_start_unix_s(static_cast<double>(half.front()->received_unix_s));
  out->set_end_unix_s(static_cast<double>(half.back()->received_unix_s));
  std::vector<double> lat;
  lat.reserve(half.size());
  for (const OutputRow* r : half) lat.push_back(r->latency_ms);
  FillDistribution(std::move(lat), out->mutable_e2e_ms());
}

// Python's statistics.median of the per-minute counts.
double MedianCompletionsPerMinute(const std::vector<OutputRow>& rows, size_t* buckets) {
  std::map<int64_t, int64_t> per_minute;
  for (const OutputRow& r : rows) {
    const int64_t s = r.received_unix_s;
    const int64_t minute = (s >= 0 ? s : s - 59) / 60;  // floor
    ++per_minute[minute];
  }
  *buckets = per_minute.size();
  if (per_minute.empty()) return 0.0;
  std::vector<int64_t> counts;
  for (const auto& [m, c] : per_minute) counts.push_back(c);
  std::sort(counts.begin(), counts.end());
  const size_t n = counts.size();
  if (n % 2 == 1) return static_cast<double>(counts[n / 2]);
  return (static_cast<double>(counts[n / 2 - 1]) + static_cast<double>(counts[n / 2])) / 2.0;
}

}  // namespace

Verdict EvaluateMost(std::vector<OutputRow> rows, const MostConfig& config) {
  std::stable_sort(rows.begin(), rows.end(), [](const OutputRow& a, const OutputRow& b) {
    return a.received_unix_s < b.received_unix_s;
  });
  Verdict v;
  std::string decided;  // first failing rule, in the original's order
  bool verdict = true;

  // 1. Early gate.
  size_t buckets = 0;
  const double median = MedianCompletionsPerMinute(rows, &buckets);
  const double gate = 0.95 * config.req_min;
  const bool gate_ok = !(median < gate);
  AddReason(v, "median_completions_per_min", gate_ok,
            absl::StrFormat("median completions per minute %.3f %s 0.95 x REQ_MIN = %.3f "
                            "(%d minute buckets)",
                            median, gate_ok ? ">=" : "<", gate, buckets),
            {{"median_per_min", median}, {"threshold_per_min", gate},
             {"minute_buckets", static_cast<double>(buckets)}});
  if (!gate_ok) {
    verdict = false;
    decided = "median_completions_per_min";
  }

  // Success rate over the whole iteration (the column is the same on every row).
  double success_rate = 0;
  if (!rows.empty()) {
    success_rate = rows.front().success_rate_pct;
    for (const OutputRow& r : rows) success_rate = std::min(success_rate, r.success_rate_pct);
  }
  v.set_success_rate_pct(success_rate);

  // 2. Trim and split.
  std::vector<const OutputRow*> first, second;
  double split_s = 0, start_s = 0, end_s = 0;
  if (!rows.empty()) {
    // In microseconds, so that the midpoint of whole seconds is exact (pandas uses ns).
    const int64_t buffer_us = std::llround(config.filter_buffer_s * 1e6);
    const int64_t lo = rows.front().received_unix_s * 1000000 + buffer_us;
    const int64_t hi = rows.back().received_unix_s * 1000000 - buffer_us;
    const int64_t mid = lo + (hi - lo) / 2;
    start_s = lo / 1e6;
    end_s = hi / 1e6;
    split_s = mid / 1e6;
    for (const OutputRow& r : rows) {
      const int64_t ts = r.received_unix_s * 1000000;
      if (ts < lo || ts > hi) continue;
      (ts < mid ? first : second).push_back(&r);
    }
  }
  FillHalf(first, v.mutable_first_half());
  FillHalf(second, v.mutable_second_half());
  for (const OutputRow* r : first) {
    v.add_first_half_request_idx(static_cast<uint64_t>(r->request_idx));
  }
  for (const OutputRow* r : second) {
    v.add_second_half_request_idx(static_cast<uint64_t>(r->request_idx));
  }
  const bool split_ok = !first.empty() && !second.empty();
  AddReason(v, "filter_split", split_ok,
            split_ok ? absl::StrFormat("%d requests in the first half, %d in the second after "
                                       "trimming %gs from both ends",
                                       first.size(), second.size(), config.filter_buffer_s)
                     : absl::StrFormat("a half is empty after trimming %gs from both ends "
                                       "(%d + %d requests); the original fails here",
                                       config.filter_buffer_s, first.size(), second.size()),
            {{"first_count", static_cast<double>(first.size())},
             {"second_count", static_cast<double>(second.size())},
             {"filtered_start_unix_s", start_s}, {"filtered_end_unix_s", end_s},
             {"split_unix_s", split_s}});
  if (!split_ok && decided.empty()) {
    verdict = false;
    decided = "filter_split";
  }

  // 3. Success rate.
  const bool rate_ok = !(success_rate < config.success_rate_pct);
  AddReason(v, "success_rate", rate_ok,
            absl::StrFormat("success rate %.2f%% %s %.2f%%", success_rate, rate_ok ? ">=" : "<",
                            config.success_rate_pct),
            {{"success_rate_pct", success_rate}, {"threshold_pct", config.success_rate_pct}});
  if (!rate_ok && decided.empty()) {
    verdict = false;
    decided = "success_rate";
  }

  // 4 and 5. Welch t-test, then the bootstrap when the test alone does not say TRUE.
  if (split_ok) {
    std::vector<double> x, y;
    for (const OutputRow* r : first) x.push_back(r->latency_ms);
    for (const OutputRow* r : second) y.push_back(r->latency_ms);
    const WelchResult w = WelchTTest(x, y);
    const bool p_nan = std::isnan(w.p);
    const bool welch_ok = w.p >= config.alpha;  // false for NaN, as in Python
    const double mean_x = Mean(x), mean_y = Mean(y);
    std::string welch_detail =
        p_nan ? absl::StrFormat("Welch t-test undefined (NaN): %s; the original treats NaN as "
                                "'p < %g'",
                                SampleVariance(x) == 0 && SampleVariance(y) == 0
                                    ? "both halves have zero variance (identical latencies)"
                                    : "a half has fewer than 2 requests",
                                config.alpha)
              : absl::StrFormat("Welch t-test p = %.6g %s %g (mean %.3f ms first, %.3f ms "
                                "second, t = %.4g, df = %.4g)",
                                w.p, welch_ok ? ">=" : "<", config.alpha, mean_x, mean_y, w.t,
                                w.df);
    AddReason(v, "welch_t_test", welch_ok, welch_detail,
              {{"p_value", w.p}, {"t", w.t}, {"df", w.df}, {"alpha", config.alpha},
               {"mean_first_ms", mean_x}, {"mean_second_ms", mean_y},
               {"p_is_nan", p_nan ? 1.0 : 0.0}});
    const double d = CohensD(x, y);
    AddReason(v, "cohens_d", true,
              absl::StrFormat("Cohen's d = %.4g (informational, as in the original)", d),
              {{"cohens_d", d}});
    if (decided.empty() && welch_ok) decided = "welch_t_test";
    if (!welch_ok && decided.empty()) {
      const double draws =
          static_cast<double>(config.bootstrap_resamples) * static_cast<double>(x.size() + y.size());
      const bool constant_halves = SampleVariance(x) == 0 && SampleVariance(y) == 0;
      // The shortcut needs a real rejection (|t| finite and large) or constant halves.
      const bool shortcut =
          draws > config.bootstrap_max_draws && (constant_halves || (!p_nan && !std::isinf(w.t)));
      BootstrapResult b;
      if (shortcut) {
        b.mean_diff = mean_x - mean_y;
        const double se = std::sqrt(SampleVariance(x) / x.size() + SampleVariance(y) / y.size());
        b.ci_low = b.mean_diff - 1.959963984540054 * se;
        b.ci_high = b.mean_diff + 1.959963984540054 * se;
      } else {
        b = BootstrapMeanDiff(x, y, config.bootstrap_resamples, config.bootstrap_seed);
      }
      const bool first_slower = b.mean_diff > 0;
      std::string detail =
          shortcut
              ? absl::StrFormat(
                    "mean(first) - mean(second) = %.4g ms (normal 95%% CI %.4g .. %.4g): the "
                    "second half is %s; the %d-resample bootstrap (%.3g draws) was not run: its "
                    "mean equals this difference to within SE/100, so its sign is the same",
                    b.mean_diff, b.ci_low, b.ci_high,
                    first_slower ? "not slower" : "slower or equal", config.bootstrap_resamples,
                    draws)
              : absl::StrFormat(
                    "bootstrap mean(first) - mean(second) = %.4g ms (95%% CI %.4g .. %.4g, %d "
                    "resamples, seed %d): the second half is %s",
                    b.mean_diff, b.ci_low, b.ci_high, config.bootstrap_resamples,
                    config.bootstrap_seed, first_slower ? "not slower" : "slower or equal");
      if (p_nan && b.mean_diff == 0) {
        detail += "; NOTE: identical latencies in both halves: the original returns FALSE for "
                  "this perfectly stable iteration, compatibility mode keeps that (the default "
                  "mode does not)";
      }
      AddReason(v, "bootstrap_mean_diff", first_slower, detail,
                {{"boot_diff_ms", b.mean_diff}, {"boot_ci_low_ms", b.ci_low},
                 {"boot_ci_high_ms", b.ci_high},
                 {"resamples", shortcut ? 0.0 : static_cast<double>(config.bootstrap_resamples)},
                 {"draws", draws}});
      if (decided.empty()) {
        decided = "bootstrap_mean_diff";
        verdict = first_slower;
      }
    }
  }
  Decide(v, verdict, decided);
  return v;
}

}  // namespace mstperf::evaluator
