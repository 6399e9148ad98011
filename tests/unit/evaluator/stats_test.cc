// stats.h against SciPy / NumPy values computed by tests/data/evaluator/make_reference.py.
#include "services/evaluator/stats.h"

#include <cmath>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace mstperf::evaluator {
namespace {

nlohmann::json LoadReference() {
  std::ifstream in(std::string(MSTPERF_TEST_DATA_DIR) + "/evaluator/stats_reference.json");
  EXPECT_TRUE(in.good());
  return nlohmann::json::parse(in);
}

// JSON has no NaN/inf: make_reference.py writes null for NaN and "inf"/"-inf" strings.
double Num(const nlohmann::json& v) {
  if (v.is_null()) return std::nan("");
  if (v.is_string()) return v.get<std::string>() == "inf" ? INFINITY : -INFINITY;
  return v.get<double>();
}

void ExpectSame(double expected, double actual, double rel, const std::string& what) {
  if (std::isnan(expected)) {
    EXPECT_TRUE(std::isnan(actual)) << what << ": expected NaN, got " << actual;
  } else if (std::isinf(expected)) {
    EXPECT_EQ(expected, actual) << what;
  } else {
    EXPECT_NEAR(expected, actual, rel * std::max(1e-300, std::fabs(expected))) << what;
  }
}

TEST(StatsTest, WelchMatchesScipy) {
  const nlohmann::json ref = LoadReference();
  ASSERT_GE(ref["welch"].size(), 8u);
  for (const auto& c : ref["welch"]) {
    const auto x = c["x"].get<std::vector<double>>();
    const auto y = c["y"].get<std::vector<double>>();
    const std::string name = c["name"];
    const WelchResult w = WelchTTest(x, y);
    ExpectSame(Num(c["t"]), w.t, 1e-10, name + " t");
    ExpectSame(Num(c["p"]), w.p, 1e-8, name + " p");
    if (!std::isnan(Num(c["p"]))) ExpectSame(Num(c["df"]), w.df, 1e-10, name + " df");
    ExpectSame(Num(c["cohens_d"]), CohensD(x, y), 1e-10, name + " d");
  }
}

TEST(StatsTest, IdenticalConstantSamplesGiveNanLikeScipy) {
  const std::vector<double> x = {5, 5, 5}, y = {5, 5, 5};
  const WelchResult w = WelchTTest(x, y);
  EXPECT_TRUE(std::isnan(w.p));
  EXPECT_FALSE(w.p >= 0.1);  // what the original's comparison sees
}

TEST(StatsTest, Pcg64ReproducesNumpyDefaultRng) {
  const nlohmann::json ref = LoadReference();
  NumpyPcg64 rng(42);
  for (const auto& v : ref["pcg64_seed42_raw"]) {
    EXPECT_EQ(std::stoull(v.get<std::string>()), rng.Next64());
  }
  NumpyPcg64 choice(42);
  for (const auto& v : ref["choice_seed42_1000"]) {
    EXPECT_EQ(v.get<uint32_t>(), choice.BoundedInclusive(999));
  }
}

TEST(StatsTest, BootstrapMatchesTheOriginalLoop) {
  const nlohmann::json b = LoadReference()["bootstrap"];
  const auto x = b["x"].get<std::vector<double>>();
  const auto y = b["y"].get<std::vector<double>>();
  const BootstrapResult r =
      BootstrapMeanDiff(x, y, b["n_boot"].get<int>(), b["seed"].get<uint32_t>());
  // Same draws; only the summation order of the means differs from NumPy (pairwise).
  ExpectSame(b["mean_diff"].get<double>(), r.mean_diff, 1e-9, "mean_diff");
  ExpectSame(b["ci_low"].get<double>(), r.ci_low, 1e-9, "ci_low");
  ExpectSame(b["ci_high"].get<double>(), r.ci_high, 1e-9, "ci_high");
}

TEST(StatsTest, PercentileMatchesNumpy) {
  const nlohmann::json p = LoadReference()["percentile"];
  auto data = p["data"].get<std::vector<double>>();
  std::sort(data.begin(), data.end());
  for (size_t i = 0; i < p["q"].size(); ++i) {
    ExpectSame(p["values"][i].get<double>(), PercentileSorted(data, p["q"][i].get<double>()),
               1e-12, "q=" + p["q"][i].dump());
  }
}

TEST(StatsTest, StudentTQuantileMatchesScipy) {
  for (const auto& c : LoadReference()["t_quantile"]) {
    ExpectSame(c["t"].get<double>(),
               StudentTCritical(c["df"].get<double>(), c["confidence"].get<double>()), 1e-9,
               c.dump());
  }
}

TEST(StatsTest, OlsSlopeRecoversALineAndItsUncertainty) {
  std::vector<double> x, y;
  for (int i = 0; i < 10; ++i) {
    x.push_back(i);
    y.push_back(3.0 + 2.0 * i + ((i % 2) ? 0.5 : -0.5));
  }
  const SlopeResult s = OlsSlope(x, y, 0.9);
  ASSERT_TRUE(s.ok);
  EXPECT_NEAR(s.slope, 2.0, 0.05);
  EXPECT_LT(s.ci_low, s.slope);
  EXPECT_GT(s.ci_high, s.slope);
  EXPECT_GT(s.ci_low, 1.8);
  EXPECT_FALSE(OlsSlope(std::vector<double>{1, 1, 1}, std::vector<double>{1, 2, 3}, 0.9).ok);
}

TEST(StatsTest, WelchMeanDiffCiIsFiniteForIdenticalSamples) {
  const std::vector<double> x = {7, 7, 7, 7}, y = {7, 7, 7};
  const MeanDiffCi ci = WelchMeanDiffCi(x, y, 0.9);
  EXPECT_EQ(ci.diff, 0);
  EXPECT_EQ(ci.ci_low, 0);
  EXPECT_EQ(ci.ci_high, 0);
}

TEST(StatsTest, SummarizeGivesPercentiles) {
  std::vector<double> v;
  for (int i = 1; i <= 101; ++i) v.push_back(i);
  const Summary s = Summarize(v);
  EXPECT_EQ(s.count, 101u);
  EXPECT_DOUBLE_EQ(s.p50, 51);
  EXPECT_DOUBLE_EQ(s.p90, 91);
  EXPECT_DOUBLE_EQ(s.p99, 100);
  EXPECT_DOUBLE_EQ(s.mean, 51);
}

}  // namespace
}  // namespace mstperf::evaluator
