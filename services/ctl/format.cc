#include "services/ctl/format.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"

namespace mstperf::ctl {
namespace {

using mstperf::v1::Experiment;
using mstperf::v1::IterationProgress;
using mstperf::v1::IterationResult;
using mstperf::v1::PairResult;
using mstperf::v1::Verdict;

std::string RangeText(const mstperf::v1::TokenRange& r) {
  return r.min() == r.max() ? absl::StrCat(r.min()) : absl::StrCat(r.min(), "-", r.max());
}

std::string Bound(double v) { return v > 0 ? FormatRate(v) : "-"; }

// The reason that decided, or the first failing one, as "rule: detail".
std::string DecidingReason(const Verdict& v) {
  for (const auto& r : v.reasons()) {
    if (r.rule() == v.deciding_rule()) return absl::StrCat(r.rule(), ": ", r.detail());
  }
  for (const auto& r : v.reasons()) {
    if (!r.passed()) return absl::StrCat(r.rule(), ": ", r.detail());
  }
  return v.deciding_rule();
}

// The folder holding a pair's iterations: the parent of its iterations' folders.
std::string PairFolder(const PairResult& pair) {
  for (const auto& it : pair.iterations()) {
    const std::string& d = it.directory();
    if (d.empty()) continue;
    size_t slash = d.find_last_of('/');
    return slash == std::string::npos ? d : d.substr(0, slash);
  }
  return pair.tokens().label().empty() ? "-" : absl::StrCat("requests/", pair.tokens().label());
}

}  // namespace

std::string StageName(mstperf::v1::SearchStage stage) {
  switch (stage) {
    case mstperf::v1::SEARCH_STAGE_FIND_UNSUSTAINABLE: return "stage 1 (find unsustainable)";
    case mstperf::v1::SEARCH_STAGE_BISECT: return "stage 2 (bisect)";
    case mstperf::v1::SEARCH_STAGE_DONE: return "done";
    default: return "not started";
  }
}

std::string VerdictWord(mstperf::v1::VerdictState state) {
  switch (state) {
    case mstperf::v1::VERDICT_STATE_SUSTAINABLE: return "SUSTAINABLE";
    case mstperf::v1::VERDICT_STATE_UNSUSTAINABLE: return "UNSUSTAINABLE";
    case mstperf::v1::VERDICT_STATE_CLIENT_LIMITED: return "CLIENT-LIMITED";
    default: return "UNDECIDED";
  }
}

std::string StateName(mstperf::v1::ExperimentState state) {
  switch (state) {
    case mstperf::v1::EXPERIMENT_STATE_PENDING: return "pending";
    case mstperf::v1::EXPERIMENT_STATE_RUNNING: return "running";
    case mstperf::v1::EXPERIMENT_STATE_SUCCEEDED: return "succeeded";
    case mstperf::v1::EXPERIMENT_STATE_FAILED: return "failed";
    case mstperf::v1::EXPERIMENT_STATE_CANCELLED: return "cancelled";
    default: return "unknown";
  }
}

std::string PairText(const mstperf::v1::TokenPair& pair) {
  return absl::StrCat(RangeText(pair.input()), ":", RangeText(pair.output()));
}

std::string FormatRate(double req_min) {
  if (std::fabs(req_min - std::round(req_min)) < 1e-9) {
    return absl::StrCat(static_cast<long long>(std::llround(req_min)));
  }
  std::string s = absl::StrFormat("%.2f", req_min);
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

std::string ProgressBar(double fraction, int width) {
  if (!(fraction >= 0)) fraction = 0;  // also NaN
  fraction = std::min(fraction, 1.0);
  width = std::max(width, 1);
  int filled = static_cast<int>(std::floor(fraction * width + 1e-9));
  return absl::StrFormat("[%s%s] %3d%%", std::string(filled, '#'),
                         std::string(width - filled, '.'),
                         static_cast<int>(std::floor(fraction * 100 + 1e-9)));
}

std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows,
                        const std::vector<bool>& right_aligned) {
  std::vector<size_t> width(header.size());
  for (size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t i = 0; i < width.size(); ++i) {
      const std::string cell = i < cells.size() ? cells[i] : "";
      const bool right = i < right_aligned.size() && right_aligned[i];
      std::string pad(width[i] - std::min(width[i], cell.size()), ' ');
      if (i > 0) out += "  ";
      out += right ? pad + cell : (i + 1 == width.size() ? cell : cell + pad);
    }
    return out + "\n";
  };
  std::string out = line(header);
  std::vector<std::string> rule;
  for (size_t w : width) rule.push_back(std::string(w, '-'));
  out += line(rule);
  for (const auto& row : rows) out += line(row);
  return out;
}

std::string FormatIterationStarted(const PairResult& pair, const IterationResult& iteration) {
  return absl::StrCat("pair ", PairText(pair.tokens()), " | ", StageName(iteration.stage()),
                      " | iteration ", iteration.index() + 1, " | REQ_MIN ",
                      FormatRate(iteration.req_min()), " | m ",
                      Bound(pair.largest_sustainable_req_min()), " M ",
                      Bound(pair.smallest_unsustainable_req_min()),
                      iteration.confirmation() ? " | retry to confirm a FALSE" : "");
}

std::string FormatIterationFinished(const PairResult& pair, const IterationResult& iteration) {
  const Verdict& v = iteration.verdict();
  std::string took;
  if (iteration.ended_unix_us() > iteration.started_unix_us() && iteration.started_unix_us() > 0) {
    took = absl::StrFormat(" | %.1f s",
                           (iteration.ended_unix_us() - iteration.started_unix_us()) / 1e6);
  }
  return absl::StrCat("pair ", PairText(pair.tokens()), " | iteration ", iteration.index() + 1,
                      " | REQ_MIN ", FormatRate(iteration.req_min()), " | ",
                      VerdictWord(v.state()),
                      v.deciding_rule().empty() ? "" : absl::StrCat(" (", DecidingReason(v), ")"),
                      iteration.stopped_early() ? " | stopped early" : "", took, " | m ",
                      Bound(pair.largest_sustainable_req_min()), " M ",
                      Bound(pair.smallest_unsustainable_req_min()));
}

std::string FormatProgress(const IterationProgress& p, double req_min, bool bar, int bar_width) {
  const double fraction = p.duration_s() > 0 ? p.elapsed_s() / p.duration_s() : 0;
  std::string head = bar ? ProgressBar(fraction, bar_width) + " "
                         : absl::StrFormat("%5.1f/%.0f s ", p.elapsed_s(), p.duration_s());
  std::string out = absl::StrCat(
      head, "REQ_MIN ", FormatRate(req_min), " | sent ", p.sent(), " done ", p.completed(),
      " failed ", p.failed(), " in flight ", p.in_flight(), " |");
  if (p.offered_rate_per_min() > 0) {
    absl::StrAppend(&out, absl::StrFormat(" offered %.0f", p.offered_rate_per_min()));
  }
  absl::StrAppend(&out, absl::StrFormat(" achieved %.0f /min", p.achieved_rate_per_min()));
  if (p.dropped() > 0) absl::StrAppend(&out, " | DROPPED ", p.dropped());
  if (p.send_lag_us().count() > 0) {
    absl::StrAppend(&out, absl::StrFormat(" | lag p99 %.1f ms", p.send_lag_us().p99() / 1000));
  }
  return out;
}

std::string FormatPairFinished(const PairResult& pair) {
  const std::string reason =
      pair.termination_reason().empty() ? "finished" : pair.termination_reason();
  if (pair.mst_req_min() > 0) {
    return absl::StrCat("pair ", PairText(pair.tokens()), " finished: MST ",
                        FormatRate(pair.mst_req_min()), " req/min (", reason, " after ",
                        pair.iterations_size(), " iterations)");
  }
  return absl::StrCat("pair ", PairText(pair.tokens()), " finished without an MST (", reason,
                      " after ", pair.iterations_size(), " iterations)");
}

std::string FormatMstTable(const Experiment& experiment,
                           const std::map<std::string, double>& capacity) {
  bool any_capacity = false;
  for (const auto& pair : experiment.pairs()) {
    if (capacity.count(PairText(pair.tokens()))) any_capacity = true;
  }
  std::vector<std::string> header = {"pair", "MST req/min"};
  std::vector<bool> right = {false, true};
  if (any_capacity) {
    header.insert(header.end(), {"capacity req/min", "MST/capacity"});
    right.insert(right.end(), {true, true});
  }
  header.insert(header.end(), {"iterations", "reason", "folder"});
  right.insert(right.end(), {true, false, false});
  std::vector<std::vector<std::string>> rows;
  for (const auto& pair : experiment.pairs()) {
    std::vector<std::string> row = {PairText(pair.tokens()),
                                    pair.mst_req_min() > 0 ? FormatRate(pair.mst_req_min())
                                    : pair.finished()      ? "none"
                                                           : "-"};
    if (any_capacity) {
      auto it = capacity.find(PairText(pair.tokens()));
      if (it == capacity.end() || it->second <= 0) {
        row.insert(row.end(), {"-", "-"});
      } else {
        row.push_back(absl::StrFormat("%.1f", it->second));
        row.push_back(pair.mst_req_min() > 0
                          ? absl::StrFormat("%.0f%%", 100 * pair.mst_req_min() / it->second)
                          : "-");
      }
    }
    std::string reason = pair.termination_reason();
    if (reason.empty()) reason = pair.finished() ? "finished" : StageName(pair.stage());
    row.insert(row.end(), {absl::StrCat(pair.iterations_size()), reason, PairFolder(pair)});
    rows.push_back(std::move(row));
  }
  return FormatTable(header, rows, right);
}

std::string FormatVerdict(const Verdict& v) {
  std::string out = absl::StrCat("verdict: ", VerdictWord(v.state()), " (EVALUATION=",
                                 v.sustainable() ? "True" : "False", ")");
  if (!v.deciding_rule().empty()) absl::StrAppend(&out, ", decided by ", v.deciding_rule());
  absl::StrAppend(&out, absl::StrFormat("\nsuccess rate: %.2f%%\n", v.success_rate_pct()));
  for (const auto& r : v.reasons()) {
    absl::StrAppend(&out, r.rule() == v.deciding_rule() ? " * " : "   ",
                    r.passed() ? "pass " : "FAIL ", r.rule(), ": ", r.detail(), "\n");
  }
  auto half = [](const char* name, const mstperf::v1::HalfSummary& h) {
    if (h.count() == 0) return std::string();
    return absl::StrFormat("%s: %d requests, e2e mean %.1f ms p50 %.1f ms p99 %.1f ms\n", name,
                           h.count(), h.e2e_ms().mean(), h.e2e_ms().p50(), h.e2e_ms().p99());
  };
  absl::StrAppend(&out, half("first half", v.first_half()), half("second half", v.second_half()));
  return out;
}

std::string FormatExperimentList(const std::vector<Experiment>& experiments) {
  if (experiments.empty()) return "no experiments\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : experiments) {
    std::vector<std::string> msts;
    for (const auto& p : e.pairs()) {
      msts.push_back(absl::StrCat(PairText(p.tokens()), "=",
                                  p.mst_req_min() > 0 ? FormatRate(p.mst_req_min()) : "-"));
    }
    rows.push_back({e.id(), StateName(e.state()),
                    e.created_unix_us() > 0
                        ? absl::FormatTime("%Y-%m-%d %H:%M:%S",
                                           absl::FromUnixMicros(e.created_unix_us()),
                                           absl::UTCTimeZone())
                        : "-",
                    e.spec().name().empty() ? "-" : e.spec().name(), absl::StrJoin(msts, " ")});
  }
  return FormatTable({"id", "state", "created (UTC)", "name", "MST req/min per pair"}, rows);
}

std::string FormatExperimentStatus(const Experiment& e,
                                   const std::map<std::string, double>& capacity) {
  std::string out = absl::StrCat("experiment ", e.id(), ": ", StateName(e.state()));
  if (!e.spec().name().empty()) absl::StrAppend(&out, " (", e.spec().name(), ")");
  absl::StrAppend(&out, "\ntarget: ", e.spec().target().url(), "\n");
  if (!e.error().empty()) absl::StrAppend(&out, "error: ", e.error(), "\n");
  if (e.state() == mstperf::v1::EXPERIMENT_STATE_RUNNING &&
      static_cast<int>(e.current_pair()) < e.pairs_size()) {
    const PairResult& p = e.pairs(e.current_pair());
    absl::StrAppend(&out, "now: pair ", PairText(p.tokens()), " | ", StageName(p.stage()),
                    " | REQ_MIN ", FormatRate(p.current_req_min()), " | m ",
                    Bound(p.largest_sustainable_req_min()), " M ",
                    Bound(p.smallest_unsustainable_req_min()), "\n");
  }
  if (!e.results_dir().empty()) absl::StrAppend(&out, "results: ", e.results_dir(), "\n");
  absl::StrAppend(&out, "\n", FormatMstTable(e, capacity));
  return out;
}

}  // namespace mstperf::ctl
