// `most` mode against the original's verdicts on recorded output.csv files: the verdict,
// deciding rule, p-value, split and bootstrap that make_reference.py's re-implementation of the
// original (pandas / SciPy / NumPy) gives for each file in tests/data/evaluator/.
#include "services/evaluator/most_rules.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace mstperf::evaluator {
namespace {

const std::string kDataDir = std::string(MSTPERF_TEST_DATA_DIR) + "/evaluator";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string CsvOf(const nlohmann::json& c) {
  return ReadFile(kDataDir + "/" + c["name"].get<std::string>() + "/output.csv");
}

const mstperf::v1::Reason* FindReason(const mstperf::v1::Verdict& v, const std::string& rule) {
  for (const auto& r : v.reasons()) {
    if (r.rule() == rule) return &r;
  }
  return nullptr;
}

class MostReferenceTest : public ::testing::TestWithParam<int> {
 protected:
  static nlohmann::json& Reference() {
    static nlohmann::json ref = nlohmann::json::parse(ReadFile(kDataDir + "/most_reference.json"));
    return ref;
  }
};

MostConfig ConfigOf(const nlohmann::json& c) {
  MostConfig config;
  config.req_min = c["req_min"].get<double>();
  config.filter_buffer_s = c["filter_buffer_s"].get<double>();
  config.success_rate_pct = c["success_rate_threshold"].get<double>();
  return config;
}

void CheckAgainstReference(const nlohmann::json& c, const mstperf::v1::Verdict& v, double rel) {
  const std::string name = c["name"];
  SCOPED_TRACE(name);
  EXPECT_EQ(v.sustainable(), c["verdict"].get<bool>());
  EXPECT_EQ(v.deciding_rule(), c["deciding_rule"].get<std::string>());
  const auto* gate = FindReason(v, "median_completions_per_min");
  ASSERT_NE(gate, nullptr);
  EXPECT_DOUBLE_EQ(gate->values().at("median_per_min"), c["median_per_min"].get<double>());
  EXPECT_EQ(gate->passed(), c["gate_ok"].get<bool>());
  EXPECT_EQ(v.first_half().count(), c["first_count"].get<uint64_t>());
  EXPECT_EQ(v.second_half().count(), c["second_count"].get<uint64_t>());
  if (c.contains("first_request_idx")) {
    std::vector<uint64_t> first(v.first_half_request_idx().begin(),
                                v.first_half_request_idx().end());
    std::vector<uint64_t> second(v.second_half_request_idx().begin(),
                                 v.second_half_request_idx().end());
    std::sort(first.begin(), first.end());
    std::sort(second.begin(), second.end());
    EXPECT_EQ(first, c["first_request_idx"].get<std::vector<uint64_t>>());
    EXPECT_EQ(second, c["second_request_idx"].get<std::vector<uint64_t>>());
  }
  if (c.contains("p_value")) {
    const auto* welch = FindReason(v, "welch_t_test");
    ASSERT_NE(welch, nullptr);
    const double p = welch->values().at("p_value");
    if (c["p_value"].is_null()) {
      EXPECT_TRUE(std::isnan(p));
      EXPECT_EQ(welch->values().at("p_is_nan"), 1.0);
    } else {
      const double expected = c["p_value"].get<double>();
      EXPECT_NEAR(p, expected, rel * expected) << "p-value";
      EXPECT_NEAR(welch->values().at("t"), c["t"].get<double>(),
                  rel * std::fabs(c["t"].get<double>()));
    }
  }
  if (c.contains("boot_diff")) {
    const auto* boot = FindReason(v, "bootstrap_mean_diff");
    ASSERT_NE(boot, nullptr);
    const double expected = c["boot_diff"].get<double>();
    EXPECT_NEAR(boot->values().at("boot_diff_ms"), expected,
                std::max(1e-9, rel * std::fabs(expected)));
    EXPECT_NEAR(boot->values().at("boot_ci_low_ms"), c["boot_ci_low"].get<double>(),
                std::max(1e-9, rel * std::fabs(c["boot_ci_low"].get<double>())));
  }
}

TEST_P(MostReferenceTest, AgreesWithTheOriginalOnItsOutputCsv) {
  const auto& c = Reference()["cases"][static_cast<size_t>(GetParam())];
  auto rows = ParseOutputCsv(CsvOf(c));
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), c["rows"].get<size_t>());
  CheckAgainstReference(c, EvaluateMost(*rows, ConfigOf(c)), 1e-9);
}

// The path the service takes (mstperfctl evaluate DIR): rows -> RequestRecords -> rows. Records
// keep microseconds, the original's file nanoseconds: the same verdict, p within 1e-4.
TEST_P(MostReferenceTest, AgreesThroughRequestRecords) {
  const auto& c = Reference()["cases"][static_cast<size_t>(GetParam())];
  auto rows = ParseOutputCsv(CsvOf(c));
  ASSERT_TRUE(rows.ok()) << rows.status();
  std::vector<mstperf::v1::RequestRecord> records;
  for (size_t i = 0; i < rows->size(); ++i) records.push_back(RecordFromRow((*rows)[i], i));
  CheckAgainstReference(c, EvaluateMost(RowsFromRecords(records), ConfigOf(c)), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Cases, MostReferenceTest, ::testing::Range(0, 8));

TEST(MostRulesTest, EveryCaseOfTheReferenceIsCovered) {
  const auto ref = nlohmann::json::parse(ReadFile(kDataDir + "/most_reference.json"));
  EXPECT_EQ(ref["cases"].size(), 8u);
  std::set<std::string> rules;
  for (const auto& c : ref["cases"]) rules.insert(c["deciding_rule"].get<std::string>());
  // Every way the original decides is exercised by some file.
  EXPECT_EQ(rules, (std::set<std::string>{"median_completions_per_min", "filter_split",
                                          "success_rate", "welch_t_test",
                                          "bootstrap_mean_diff"}));
}

TEST(MostRulesTest, IdenticalLatenciesAreFalseButFlagged) {
  std::vector<OutputRow> rows;
  for (int i = 0; i < 600; ++i) {
    OutputRow r;
    r.received_unix_s = 1773482400 + i;
    r.latency_ms = 1000;
    r.success = true;
    r.success_rate_pct = 100;
    r.request_idx = i;
    rows.push_back(r);
  }
  MostConfig config;
  config.req_min = 60;
  config.filter_buffer_s = 60;
  const auto v = EvaluateMost(rows, config);
  EXPECT_FALSE(v.sustainable());
  EXPECT_EQ(v.deciding_rule(), "bootstrap_mean_diff");
  const auto* boot = FindReason(v, "bootstrap_mean_diff");
  ASSERT_NE(boot, nullptr);
  EXPECT_NE(boot->detail().find("identical latencies"), std::string::npos) << boot->detail();
  EXPECT_NE(FindReason(v, "welch_t_test")->detail().find("NaN"), std::string::npos);
}

// Above bootstrap_max_draws the observed difference stands in for the resample mean: the same
// verdict on every reference file, and the reason says the bootstrap was not run.
TEST(MostRulesTest, LargeSampleShortcutGivesTheSameVerdicts) {
  const auto ref = nlohmann::json::parse(ReadFile(kDataDir + "/most_reference.json"));
  int shortcuts = 0;
  for (const auto& c : ref["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    auto rows = ParseOutputCsv(CsvOf(c));
    ASSERT_TRUE(rows.ok());
    MostConfig config = ConfigOf(c);
    config.bootstrap_max_draws = 0;
    const auto v = EvaluateMost(*rows, config);
    EXPECT_EQ(v.sustainable(), c["verdict"].get<bool>());
    EXPECT_EQ(v.deciding_rule(), c["deciding_rule"].get<std::string>());
    if (const auto* boot = FindReason(v, "bootstrap_mean_diff"); boot && c.contains("boot_diff")) {
      ++shortcuts;
      EXPECT_NE(boot->detail().find("was not run"), std::string::npos) << boot->detail();
      EXPECT_EQ(boot->values().at("resamples"), 0.0);
      // The exact bootstrap's mean is within a few SE/100 of the observed difference.
      const double exact = c["boot_diff"].get<double>();
      const double half_width =
          (c["boot_ci_high"].get<double>() - c["boot_ci_low"].get<double>()) / 2;
      EXPECT_NEAR(boot->values().at("boot_diff_ms"), exact, half_width / 1.96 / 100 * 5);
    }
  }
  EXPECT_EQ(shortcuts, 4);  // drifting, improving, identical, legacy_slight_drift
}

TEST(MostRulesTest, StableIterationSkipsTheBootstrap) {
  std::vector<OutputRow> rows;
  for (int i = 0; i < 600; ++i) {
    OutputRow r;
    r.received_unix_s = 1773482400 + i;
    r.latency_ms = 1000 + (i * 37 % 101);
    r.success = true;
    r.success_rate_pct = 100;
    r.request_idx = i;
    rows.push_back(r);
  }
  MostConfig config;
  config.req_min = 60;
  config.filter_buffer_s = 60;
  const auto v = EvaluateMost(rows, config);
  EXPECT_TRUE(v.sustainable());
  EXPECT_EQ(v.deciding_rule(), "welch_t_test");
  EXPECT_EQ(FindReason(v, "bootstrap_mean_diff"), nullptr);
  EXPECT_EQ(v.state(), mstperf::v1::VERDICT_STATE_SUSTAINABLE);
  EXPECT_EQ(v.first_half().count() + v.second_half().count(), 480u);  // 60..539 s inclusive
}

}  // namespace
}  // namespace mstperf::evaluator
