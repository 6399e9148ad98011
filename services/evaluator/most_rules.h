// `most` mode: the original MoST wrapper's verdict, exactly, from the rows of output.csv.
//
// Rules, in the original's order (the first that fails decides, as the original stops there):
//  1. median_completions_per_min: completions bucketed by the UTC minute of their
//     received_timestamp (minutes without a completion are not buckets); FALSE if the median
//     count per bucket is below 0.95 * REQ_MIN.
//  2. filter_split: drop FILTER_BUFFER seconds from both ends of the received_timestamp range,
//     split the rest at its midpoint (first: ts < mid, second: ts >= mid). An empty half is
//     FALSE (the original crashes on it and a crash counts as FALSE).
//  3. success_rate: FALSE if the success_rate column is below SUCCESS_RATE.
//  4. welch_t_test: two-sided Welch t-test of complete_response_time, first vs second half;
//     TRUE if p >= alpha (0.1).
//  5. bootstrap_mean_diff: otherwise TRUE iff the mean of 10,000 bootstrap differences
//     mean(first) - mean(second) (NumPy's generator, seed 42) is > 0.
// Cohen's d is reported (cohens_d, informational), as the original prints it.
//
// The identical-latency case (both halves constant and equal, e.g. a deterministic server):
// the Welch statistic is 0/0 = NaN, `p >= 0.1` is false and the bootstrap difference is 0, so
// the original says FALSE for a perfectly stable iteration. Compatibility mode reproduces the
// FALSE (users diff verdicts) but flags it: the welch_t_test reason says "undefined (NaN)" and
// carries values["p_is_nan"] = 1, and the deciding reason's sentence names the quirk. The
// default mode does not share it. (docs/evaluator.md)
#ifndef MSTPERF_SERVICES_EVALUATOR_MOST_RULES_H_
#define MSTPERF_SERVICES_EVALUATOR_MOST_RULES_H_

#include <cstdint>
#include <vector>

#include "mstperf/v1/evaluator.pb.h"
#include "services/evaluator/output_csv.h"

namespace mstperf::evaluator {

struct MostConfig {
  double req_min = 0;             // REQ_MIN of the iteration
  double filter_buffer_s = 300;   // FILTER_BUFFER
  double success_rate_pct = 95;   // SUCCESS_RATE
  double alpha = 0.1;             // the original's fixed significance level
  int bootstrap_resamples = 10000;
  uint32_t bootstrap_seed = 42;
  // The bootstrap costs resamples x (n_first + n_second) random draws: 10^10 for a million
  // requests, minutes of CPU (the original needs an hour there). Above this many draws, and when
  // the t-test rejected (|t| >= 1.64), the resample mean is replaced by the observed difference
  // of means: the 10,000-resample mean deviates from it by about SE/100, so its sign (all the
  // verdict uses) cannot differ short of a 160-sigma event. Identical / constant halves are
  // exact either way (every resample mean equals the observed one). The reason says which.
  double bootstrap_max_draws = 1.01e9;
};

// The verdict on rows in any order (they are stably sorted by received_timestamp first, as the
// original sorts output.csv). Always SUSTAINABLE or UNSUSTAINABLE; never early.
mstperf::v1::Verdict EvaluateMost(std::vector<OutputRow> rows, const MostConfig& config);

}  // namespace mstperf::evaluator

#endif  // MSTPERF_SERVICES_EVALUATOR_MOST_RULES_H_
