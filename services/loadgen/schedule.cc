#include "services/loadgen/schedule.h"

#include <cmath>

#include <boost/random/exponential_distribution.hpp>
#include <boost/random/gamma_distribution.hpp>

#include "absl/strings/str_cat.h"

namespace mstperf::loadgen {

uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint32_t DrawLength(uint64_t seed, uint64_t index, uint32_t salt, uint32_t min, uint32_t max) {
  if (max <= min) return min;
  const uint64_t span = static_cast<uint64_t>(max) - min + 1;
  // The modulo bias is below span / 2^64: irrelevant for token ranges.
  return min + static_cast<uint32_t>(Mix64(Mix64(seed ^ (0x5851f42d4c957f2dULL * salt)) + index) %
                                     span);
}

absl::StatusOr<Schedule> Schedule::Create(const ScheduleSpec& spec) {
  if (!(spec.rate_per_s > 0) || !std::isfinite(spec.rate_per_s)) {
    return absl::InvalidArgumentError(absl::StrCat("req_min must be > 0 (got ",
                                                   spec.rate_per_s * 60, ")"));
  }
  if (!(spec.duration_s > 0) || !std::isfinite(spec.duration_s)) {
    return absl::InvalidArgumentError(
        absl::StrCat("duration_s must be > 0 (got ", spec.duration_s, ")"));
  }
  if (spec.kind == ArrivalKind::kGamma && !(spec.gamma_shape > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("gamma_shape must be > 0 (got ", spec.gamma_shape, ")"));
  }
  if (spec.replica_count == 0 || spec.replica_idx >= spec.replica_count) {
    return absl::InvalidArgumentError(absl::StrCat("replica_idx (", spec.replica_idx,
                                                   ") must be < replica_count (",
                                                   spec.replica_count, ")"));
  }
  if (spec.input_min == 0 || spec.input_min > spec.input_max) {
    return absl::InvalidArgumentError("tokens.input: need 1 <= min <= max");
  }
  if (spec.output_min == 0 || spec.output_min > spec.output_max) {
    return absl::InvalidArgumentError("tokens.output: need 1 <= min <= max");
  }
  return Schedule(spec);
}

Schedule::Schedule(const ScheduleSpec& spec) : spec_(spec), rng_(spec.seed) {}

bool Schedule::NextGlobal(uint64_t* index, int64_t* offset_ns) {
  double t;
  if (spec_.kind == ArrivalKind::kConstant) {
    // Computed from the index, not accumulated: no drift over long iterations.
    t = static_cast<double>(next_index_) / spec_.rate_per_s;
  } else {
    if (started_) {
      double gap;
      if (spec_.kind == ArrivalKind::kPoisson) {
        gap = boost::random::exponential_distribution<double>(spec_.rate_per_s)(rng_);
      } else {
        const double k = spec_.gamma_shape;
        gap = boost::random::gamma_distribution<double>(k, 1.0 / (k * spec_.rate_per_s))(rng_);
      }
      next_time_s_ += gap;
    }
    t = next_time_s_;
  }
  started_ = true;
  if (t >= spec_.duration_s) return false;
  *index = next_index_++;
  *offset_ns = static_cast<int64_t>(std::llround(t * 1e9));
  return true;
}

bool Schedule::Next(ScheduledRequest* out) {
  uint64_t index;
  int64_t offset_ns;
  while (NextGlobal(&index, &offset_ns)) {
    if (index % spec_.replica_count != spec_.replica_idx) continue;
    out->index = index;
    out->offset_ns = offset_ns;
    out->input_tokens = DrawLength(spec_.seed, index, 1, spec_.input_min, spec_.input_max);
    out->output_tokens = DrawLength(spec_.seed, index, 2, spec_.output_min, spec_.output_max);
    return true;
  }
  return false;
}

uint64_t Schedule::CountRemaining() const {
  // Walks a copy: the same arithmetic as Next(), so the count can never disagree with it.
  Schedule copy = *this;
  ScheduledRequest r;
  uint64_t n = 0;
  while (copy.Next(&r)) ++n;
  return n;
}

}  // namespace mstperf::loadgen
