// The arrival process: counts, spacing and variability per kind, seeds, replica slices.
#include "services/loadgen/schedule.h"

#include <cmath>
#include <map>
#include <vector>

#include <gtest/gtest.h>

namespace mstperf::loadgen {
namespace {

std::vector<ScheduledRequest> All(const ScheduleSpec& spec) {
  auto s = Schedule::Create(spec);
  EXPECT_TRUE(s.ok()) << s.status();
  std::vector<ScheduledRequest> out;
  ScheduledRequest r;
  while (s->Next(&r)) out.push_back(r);
  EXPECT_EQ(out.size(), s->CountRemaining() + out.size());  // exhausted generator counts 0
  return out;
}

struct GapStats {
  double mean = 0, cv = 0;
};

GapStats Gaps(const std::vector<ScheduledRequest>& v) {
  std::vector<double> gaps;
  for (size_t i = 1; i < v.size(); ++i) gaps.push_back((v[i].offset_ns - v[i - 1].offset_ns) * 1e-9);
  double sum = 0, sq = 0;
  for (double g : gaps) sum += g;
  const double mean = sum / gaps.size();
  for (double g : gaps) sq += (g - mean) * (g - mean);
  return {mean, std::sqrt(sq / (gaps.size() - 1)) / mean};
}

ScheduleSpec Spec(ArrivalKind kind, double rate, double duration) {
  ScheduleSpec s;
  s.kind = kind;
  s.rate_per_s = rate;
  s.duration_s = duration;
  s.seed = 42;
  return s;
}

TEST(ScheduleTest, ConstantIsExactlySpacedAndCounted) {
  auto v = All(Spec(ArrivalKind::kConstant, 2000, 3.0));
  ASSERT_EQ(v.size(), 6000u);
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_EQ(v[i].index, i);
    ASSERT_EQ(v[i].offset_ns, static_cast<int64_t>(i) * 500'000) << i;
  }
  // A rate that does not divide the window: arrivals at i / r < D.
  EXPECT_EQ(All(Spec(ArrivalKind::kConstant, 7, 1.0)).size(), 7u);
  EXPECT_EQ(All(Spec(ArrivalKind::kConstant, 7, 1.01)).size(), 8u);
  EXPECT_EQ(All(Spec(ArrivalKind::kConstant, 1.0 / 60, 30)).size(), 1u);  // 1 req/min, 30 s
}

TEST(ScheduleTest, PoissonHasTheRateAndUnitCoefficientOfVariation) {
  auto v = All(Spec(ArrivalKind::kPoisson, 1000, 100));
  // 100,000 expected; the standard deviation of a Poisson count is ~316.
  EXPECT_NEAR(static_cast<double>(v.size()), 100000, 1300);
  GapStats g = Gaps(v);
  EXPECT_NEAR(g.mean, 1e-3, 1e-5);
  EXPECT_NEAR(g.cv, 1.0, 0.02);
  for (size_t i = 1; i < v.size(); ++i) ASSERT_GE(v[i].offset_ns, v[i - 1].offset_ns);
}

TEST(ScheduleTest, GammaShapeSetsBurstiness) {
  for (double shape : {0.25, 1.0, 4.0}) {
    ScheduleSpec spec = Spec(ArrivalKind::kGamma, 1000, 100);
    spec.gamma_shape = shape;
    auto v = All(spec);
    GapStats g = Gaps(v);
    EXPECT_NEAR(g.mean, 1e-3, 3e-5) << shape;
    EXPECT_NEAR(g.cv, 1 / std::sqrt(shape), 0.05 / std::sqrt(shape)) << shape;
  }
}

TEST(ScheduleTest, SameSeedSameScheduleOtherSeedOther) {
  ScheduleSpec spec = Spec(ArrivalKind::kPoisson, 500, 2);
  auto a = All(spec), b = All(spec);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i].offset_ns, b[i].offset_ns);
  spec.seed = 43;
  auto c = All(spec);
  EXPECT_TRUE(c.size() != a.size() || c[1].offset_ns != a[1].offset_ns);
}

TEST(ScheduleTest, ReplicaSlicesMergeIntoTheWholeProcess) {
  for (ArrivalKind kind : {ArrivalKind::kConstant, ArrivalKind::kPoisson, ArrivalKind::kGamma}) {
    ScheduleSpec whole = Spec(kind, 300, 5);
    whole.gamma_shape = 0.5;
    whole.input_min = 10;
    whole.input_max = 20;
    whole.output_min = 5;
    whole.output_max = 500;
    auto all = All(whole);
    std::map<uint64_t, ScheduledRequest> merged;
    for (uint32_t r = 0; r < 3; ++r) {
      ScheduleSpec part = whole;
      part.replica_idx = r;
      part.replica_count = 3;
      for (const auto& req : All(part)) {
        EXPECT_EQ(req.index % 3, r);
        merged[req.index] = req;
      }
    }
    ASSERT_EQ(merged.size(), all.size());
    for (const auto& req : all) {
      const auto& m = merged.at(req.index);
      EXPECT_EQ(m.offset_ns, req.offset_ns);
      EXPECT_EQ(m.input_tokens, req.input_tokens);
      EXPECT_EQ(m.output_tokens, req.output_tokens);
    }
  }
}

TEST(ScheduleTest, TokenLengthsAreDrawnInRangeAndCoverIt) {
  ScheduleSpec spec = Spec(ArrivalKind::kConstant, 1000, 10);
  spec.input_min = 100;
  spec.input_max = 103;
  spec.output_min = 7;
  spec.output_max = 7;
  std::map<uint32_t, int> seen;
  for (const auto& r : All(spec)) {
    ASSERT_GE(r.input_tokens, 100u);
    ASSERT_LE(r.input_tokens, 103u);
    ASSERT_EQ(r.output_tokens, 7u);
    ++seen[r.input_tokens];
  }
  ASSERT_EQ(seen.size(), 4u);
  for (const auto& [len, n] : seen) EXPECT_NEAR(n, 2500, 250) << len;
}

TEST(ScheduleTest, BadSpecsNameTheField) {
  auto check = [](ScheduleSpec s, const std::string& field) {
    auto r = Schedule::Create(s);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(field), std::string::npos) << r.status();
  };
  ScheduleSpec ok = Spec(ArrivalKind::kPoisson, 10, 1);
  ScheduleSpec s = ok;
  s.rate_per_s = -1;
  check(s, "req_min");
  s = ok;
  s.duration_s = 0;
  check(s, "duration_s");
  s = ok;
  s.kind = ArrivalKind::kGamma;
  s.gamma_shape = -2;
  check(s, "gamma_shape");
  s = ok;
  s.replica_idx = 2;
  s.replica_count = 2;
  check(s, "replica_idx");
  s = ok;
  s.input_min = 10;
  s.input_max = 5;
  check(s, "tokens.input");
}

}  // namespace
}  // namespace mstperf::loadgen
