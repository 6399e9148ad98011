#ifndef MSTPERF_SERVICES_LOADGEN_SCHEDULE_H_
#define MSTPERF_SERVICES_LOADGEN_SCHEDULE_H_

#include <cstdint>

#include <boost/random/mersenne_twister.hpp>

#include "absl/status/statusor.h"

namespace mstperf::loadgen {

// The open-loop arrival process of one iteration, fixed by its seed before anything is sent.
enum class ArrivalKind { kConstant, kPoisson, kGamma };

struct ScheduleSpec {
  double rate_per_s = 0;     // whole iteration (all replicas), requests per second, > 0
  double duration_s = 0;     // sending window, > 0; arrivals at offsets < duration_s
  ArrivalKind kind = ArrivalKind::kPoisson;
  double gamma_shape = 1;    // kGamma only, > 0; 1 is Poisson, < 1 burstier
  uint64_t seed = 0;
  uint32_t replica_idx = 0;  // this replica's slice: indices i with i % replica_count == idx
  uint32_t replica_count = 1;
  // Token lengths, drawn per request index (independent of the replica that sends it).
  uint32_t input_min = 1, input_max = 1;
  uint32_t output_min = 1, output_max = 1;
};

struct ScheduledRequest {
  uint64_t index = 0;       // position in the whole iteration's schedule
  int64_t offset_ns = 0;    // scheduled send time, from the schedule start
  uint32_t input_tokens = 0;
  uint32_t output_tokens = 0;
};

// A deterministic generator of the whole iteration's arrivals, yielding only this replica's
// slice. Every replica walks the same sequence (same seed, same draws), so the union of the
// slices is exactly the requested process; each replica holds O(1) state however long the
// iteration. Portable: Boost.Random's engines and distributions give the same numbers on
// every platform, unlike std::*_distribution.
class Schedule {
 public:
  // INVALID_ARGUMENT naming the field for a bad spec.
  static absl::StatusOr<Schedule> Create(const ScheduleSpec& spec);

  // The next request of this replica's slice, in time order; false when the window is over.
  bool Next(ScheduledRequest* out);

  // How many requests this replica will send (walks a copy of the generator).
  uint64_t CountRemaining() const;

  const ScheduleSpec& spec() const { return spec_; }

 private:
  explicit Schedule(const ScheduleSpec& spec);
  // The next arrival of the whole process; false past the window.
  bool NextGlobal(uint64_t* index, int64_t* offset_ns);

  ScheduleSpec spec_;
  boost::random::mt19937_64 rng_;
  uint64_t next_index_ = 0;
  double next_time_s_ = 0;
  bool started_ = false;
};

// Per-request token length, deterministic in (seed, index): uniform in [min, max].
uint32_t DrawLength(uint64_t seed, uint64_t index, uint32_t salt, uint32_t min, uint32_t max);

// SplitMix64: a cheap, well-mixed hash used to derive per-request randomness from the seed.
uint64_t Mix64(uint64_t x);

}  // namespace mstperf::loadgen

#endif  // MSTPERF_SERVICES_LOADGEN_SCHEDULE_H_
