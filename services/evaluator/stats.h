// Statistics for the evaluator: pure functions, no I/O.
//
// The functions that the `most` compatibility mode relies on reproduce SciPy/NumPy exactly
// (same formulas, same special cases), because a verdict must not flip between the original
// Python tool and mstperf on the same output.csv:
//   WelchTTest        == scipy.stats.ttest_ind(x, y, equal_var=False)
//   CohensD           == the original's pooled-variance Cohen's d
//   BootstrapMeanDiff == the original's loop over numpy.random.default_rng(seed).choice(...)
//   Percentile        == numpy.percentile (linear interpolation)
#ifndef MSTPERF_SERVICES_EVALUATOR_STATS_H_
#define MSTPERF_SERVICES_EVALUATOR_STATS_H_

#include <cstdint>
#include <span>
#include <vector>

namespace mstperf::evaluator {

// Arithmetic mean; NaN for an empty sample.
double Mean(std::span<const double> x);

// Sample variance with ddof = 1 (two-pass); NaN when fewer than two values.
double SampleVariance(std::span<const double> x);

// numpy.percentile(x, q) with the default linear interpolation; q in [0, 100]. `sorted` must
// be sorted ascending; NaN when empty.
double PercentileSorted(std::span<const double> sorted, double q);

// Two-sided Welch t-test, as scipy.stats.ttest_ind(x, y, equal_var=False):
//   t = (mean x - mean y) / sqrt(vx/nx + vy/ny), Welch-Satterthwaite df, p = 2 * sf(|t|, df).
// Special cases follow SciPy: an undefined df (both variances 0) is replaced by 1, so two
// constant but different samples give t = +-inf and p = 0, and two identical constant samples
// give t = NaN and p = NaN; a sample of size < 2 gives NaN.
struct WelchResult {
  double t = 0;
  double df = 0;
  double p = 0;
};
WelchResult WelchTTest(std::span<const double> x, std::span<const double> y);

// (mean x - mean y) / pooled standard deviation (ddof = 1), as the original computes it.
double CohensD(std::span<const double> x, std::span<const double> y);

// numpy's default bit generator: PCG64 (XSL-RR 128/64) seeded through SeedSequence, as
// numpy.random.default_rng(seed). Next32() keeps the unused upper half of a 64-bit draw for
// the next call, as NumPy does; BoundedInclusive() is NumPy's Lemire rejection for a range
// that fits in 32 bits (what Generator.integers / choice use for such ranges).
class NumpyPcg64 {
 public:
  explicit NumpyPcg64(uint32_t seed);
  uint64_t Next64();
  uint32_t Next32();
  // Uniform integer in [0, max_inclusive].
  uint32_t BoundedInclusive(uint32_t max_inclusive);

 private:
  unsigned __int128 state_ = 0;
  unsigned __int128 inc_ = 0;
  bool has_uint32_ = false;
  uint32_t uinteger_ = 0;
};

// The original's bootstrap of the difference of means: n_boot times, resample x then y with
// replacement (Generator.choice), record mean(xb) - mean(yb); returns the mean of those
// differences and their 2.5 / 97.5 percentiles. Costs n_boot * (nx + ny) draws.
struct BootstrapResult {
  double mean_diff = 0;
  double ci_low = 0;
  double ci_high = 0;
};
BootstrapResult BootstrapMeanDiff(std::span<const double> x, std::span<const double> y,
                                  int n_boot = 10000, uint32_t seed = 42);

// Two-sided quantile of Student's t: the t with P(|T| <= t) = confidence.
double StudentTCritical(double df, double confidence);

// Difference of means (y - x) with a Welch confidence interval; robust to zero variance
// (the interval collapses to the point, never NaN when both samples have >= 1 value).
struct MeanDiffCi {
  double diff = 0;
  double ci_low = 0;
  double ci_high = 0;
  double df = 0;
};
MeanDiffCi WelchMeanDiffCi(std::span<const double> x, std::span<const double> y,
                           double confidence);

// Ordinary least squares y = a + b x with a t-based confidence interval on the slope b
// (n - 2 degrees of freedom). Needs n >= 3 and x not constant; otherwise ok == false.
struct SlopeResult {
  bool ok = false;
  double slope = 0;
  double intercept = 0;
  double ci_low = 0;
  double ci_high = 0;
  double se = 0;            // standard error of the slope
  double t_critical = 0;    // the t quantile the interval used
};
SlopeResult OlsSlope(std::span<const double> x, std::span<const double> y, double confidence);

// count, mean, min, p50, p90, p99, max of a sample (sorts a copy).
struct Summary {
  uint64_t count = 0;
  double mean = 0;
  double min = 0;
  double p50 = 0;
  double p90 = 0;
  double p99 = 0;
  double max = 0;
};
Summary Summarize(std::vector<double> values);

}  // namespace mstperf::evaluator

#endif  // MSTPERF_SERVICES_EVALUATOR_STATS_H_
