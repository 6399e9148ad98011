#include "services/controller/search.h"

#include <algorithm>
#include <cmath>

namespace mstperf::controller {

double RoundHalfEven(double x) {
  // std::nearbyint honours the current rounding mode, which is round-to-nearest-even unless
  // someone changed it; do it explicitly so the result never depends on global state.
  double floor = std::floor(x);
  double diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return std::fmod(floor, 2.0) == 0 ? floor : floor + 1;
}

Search::Search(const SearchConfig& config) : config_(config), next_(config.start) {
  if (config_.max_iterations == 0) config_.max_iterations = 100;
}

Search Search::Replay(const SearchConfig& config, const std::vector<Observation>& history) {
  Search search(config);
  for (const Observation& o : history) search.Record(o);
  return search;
}

void Search::Record(const Observation& o) {
  if (done()) return;
  ++iterations_;
  const double req = next_;
  switch (o.outcome) {
    case Outcome::kInconclusive:
      // No information about the server: rerun the same rate. A pending FALSE stays pending
      // (the retry that confirms it has not happened yet).
      if (++inconclusive_streak_ > config_.max_inconclusive_retries) {
        Finish(kInconclusive);
        return;
      }
      break;
    case Outcome::kSustainable:
      inconclusive_streak_ = 0;
      pending_false_ = false;
      last_sustainable_ = true;
      OnSustainable(req, o);
      break;
    case Outcome::kUnsustainable:
      inconclusive_streak_ = 0;
      last_sustainable_ = false;
      if (pending_false_ || (config_.mode == SearchMode::kDefault && o.certain)) {
        pending_false_ = false;
        OnConfirmedFalse(req, o);
      } else {
        pending_false_ = true;  // rerun the same REQ_MIN: a second FALSE confirms it
      }
      break;
  }
  if (!done() && iterations_ >= config_.max_iterations) Finish(kMaxIterations);
}

void Search::OnSustainable(double req, const Observation& o) {
  m_ = std::max(m_, req);
  if (stage_ == Stage::kBisect) {
    NextBisectProbe();
    return;
  }
  if (M_ > 0) {
    // Divide-down found its first TRUE: the previous (confirmed FALSE) rate is M.
    EnterBisect();
    return;
  }
  double next = RoundHalfEven(req * config_.multiplier);
  // The original would rerun the same REQ_MIN forever when rounding cancels the growth
  // (REQ_MIN 2, multiplier 1.2); step by at least one request per minute instead.
  if (next <= req) next = std::floor(req) + 1;
  next_ = next;
}

void Search::OnConfirmedFalse(double req, const Observation& o) {
  if (config_.mode == SearchMode::kDefault && o.achieved_req_min > 0) {
    estimate_ = o.achieved_req_min;
  }
  if (stage_ == Stage::kBisect) {
    M_ = M_ > 0 ? std::min(M_, req) : req;
    NextBisectProbe();
    return;
  }
  M_ = req;
  if (m_ > 0) {
    EnterBisect();
    return;
  }
  // No TRUE yet: divide down until something is sustainable.
  double next = RoundHalfEven(req / config_.multiplier);
  if (next >= req) next = std::ceil(req) - 1;
  if (next < 1) {
    Finish(kNoSustainableRate);
    return;
  }
  next_ = next;
}

void Search::EnterBisect() {
  stage_ = Stage::kBisect;
  last_probe_ = Probe::kMidpoint;
  NextBisectProbe();
}

bool Search::BracketClosed() const {
  if (M_ <= 0) return false;
  const double limit = config_.relative ? M_ * config_.stop_threshold : config_.stop_threshold;
  // A relative tolerance on the comparison: M * T is rarely exact in binary.
  return M_ - m_ <= limit + 1e-9 * std::max(1.0, M_);
}

void Search::NextBisectProbe() {
  if (BracketClosed()) {
    Finish(kConverged);
    return;
  }
  if (config_.mode == SearchMode::kDefault && guided_probes_ < kMaxGuidedProbes) {
    const double t = config_.stop_threshold;
    double probe = 0;
    Probe kind = Probe::kMidpoint;
    if (last_probe_ == Probe::kBelowEstimate && last_sustainable_) {
      // Just below the estimate was sustainable: probe the highest rate that still closes the
      // bracket if it fails (M - m <= T, or M <= m / (1 - T) for a relative threshold).
      probe = std::floor(config_.relative ? m_ / (1 - t) : m_ + t);
      kind = Probe::kAboveEstimate;
    } else if (last_probe_ == Probe::kAboveEstimate && last_sustainable_) {
      estimate_ = 0;  // the estimate was too low; trust plain bisection from here
    } else if (estimate_ > m_ && estimate_ < M_) {
      // Half a threshold width below the estimate, so that the probe above (half a width over
      // it) closes the bracket: an accurate estimate ends stage 2 in two iterations.
      probe = std::floor(estimate_ - (config_.relative ? estimate_ * t : t) / 2);
      kind = Probe::kBelowEstimate;
    }
    if (kind != Probe::kMidpoint && probe > m_ && probe < M_) {
      ++guided_probes_;
      last_probe_ = kind;
      next_ = probe;
      return;
    }
  }
  last_probe_ = Probe::kMidpoint;
  // floor((m + M) / 2): REQ_MIN stays an integer like the original's stage-1 values.
  const double mid = std::floor((m_ + M_) / 2);
  if (mid <= m_ || mid >= M_) {
    Finish(kConverged);  // no integer rate left strictly between m and M
    return;
  }
  next_ = mid;
}

void Search::Finish(const char* reason) {
  stage_ = Stage::kDone;
  reason_ = reason;
  pending_false_ = false;
}

}  // namespace mstperf::controller
