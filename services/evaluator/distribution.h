#ifndef MSTPERF_SERVICES_EVALUATOR_DISTRIBUTION_H_
#define MSTPERF_SERVICES_EVALUATOR_DISTRIBUTION_H_

#include <utility>
#include <vector>

#include "mstperf/v1/common.pb.h"
#include "services/evaluator/stats.h"

namespace mstperf::evaluator {

// The API's Distribution of a sample (count, mean, min, p50, p90, p99, max), as both rule sets
// report their half summaries.
inline void FillDistribution(std::vector<double> values, mstperf::v1::Distribution* d) {
  const Summary s = Summarize(std::move(values));
  d->set_count(s.count);
  d->set_mean(s.mean);
  d->set_min(s.min);
  d->set_p50(s.p50);
  d->set_p90(s.p90);
  d->set_p99(s.p99);
  d->set_max(s.max);
}

}  // namespace mstperf::evaluator

#endif  // MSTPERF_SERVICES_EVALUATOR_DISTRIBUTION_H_
