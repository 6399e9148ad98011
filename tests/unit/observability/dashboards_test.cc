// The dashboards against the project's metric table and the README: every metric a panel reads
// is one that docs/conventions.md defines, every metric defined there is on a dashboard, and
// the README documents every panel with its query. (That each query returns data from the real
// services is checked by tests/integration/observability/prometheus_test.cc.)
#include "tests/unit/observability/dashboards.h"

#include <set>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mstperf::observability {
namespace {

using ::testing::ElementsAre;

const std::string kDashboards = std::string(MSTPERF_SOURCE_DIR) + "/grafana/dashboards";
const std::string kConventions = std::string(MSTPERF_SOURCE_DIR) + "/docs/conventions.md";

TEST(DashboardsTest, LoadsEveryPanelQuery) {
  auto queries = LoadDashboardQueries(kDashboards);
  ASSERT_TRUE(queries.ok()) << queries.status();
  std::set<std::string> uids;
  for (const PanelQuery& q : *queries) {
    uids.insert(q.dashboard_uid);
    EXPECT_FALSE(q.expr.empty()) << q.dashboard_file << " / " << q.panel_title;
    EXPECT_FALSE(q.unit.empty()) << q.dashboard_file << " / " << q.panel_title;
  }
  EXPECT_EQ(uids, (std::set<std::string>{"mstperf-experiment", "mstperf-load"}));
  EXPECT_GE(queries->size(), 30u);
}

TEST(DashboardsTest, ReadOnlyMetricsTheConventionsDefineAndShowThemAll) {
  auto queries = LoadDashboardQueries(kDashboards);
  ASSERT_TRUE(queries.ok()) << queries.status();
  auto conventions = LoadConventionMetrics(kConventions);
  ASSERT_TRUE(conventions.ok()) << conventions.status();
  std::set<std::string> shown;
  for (const PanelQuery& q : *queries) {
    for (const std::string& name : MetricNamesIn(q.expr)) {
      EXPECT_TRUE(conventions->count(name))
          << q.dashboard_file << " / " << q.panel_title << " reads " << name
          << ", which docs/conventions.md does not define";
      shown.insert(name);
    }
  }
  for (const auto& [name, metric] : *conventions) {
    EXPECT_TRUE(shown.count(name)) << name << " (" << metric.service << ") is on no dashboard";
  }
}

TEST(DashboardsTest, ReadmeDocumentsEveryPanelAndQuery) {
  auto queries = LoadDashboardQueries(kDashboards);
  ASSERT_TRUE(queries.ok()) << queries.status();
  auto readme = ReadFile(std::string(MSTPERF_SOURCE_DIR) + "/README.md");
  ASSERT_TRUE(readme.ok()) << readme.status();
  for (const PanelQuery& q : *queries) {
    EXPECT_NE(readme->find(q.panel_title), std::string::npos)
        << "README lacks panel " << q.panel_title;
    EXPECT_NE(readme->find("`" + q.expr + "`"), std::string::npos)
        << "README lacks the query of " << q.panel_title << ": " << q.expr;
  }
}

TEST(DashboardHelpersTest, SubstitutesGrafanaVariables) {
  EXPECT_EQ(SubstituteVariables("sum(rate(a_total[$__rate_interval])) + increase(b_total[$__range])"
                                " + rate(c_total[${__rate_interval}])",
                                "10s", "1h"),
            "sum(rate(a_total[10s])) + increase(b_total[1h]) + rate(c_total[10s])");
}

TEST(DashboardHelpersTest, FindsMetricNames) {
  EXPECT_THAT(MetricNamesIn("histogram_quantile(0.9, sum by (le) (rate(mstperf_loadgen_ttft_"
                            "seconds_bucket[1m]))) / sum(vllm:num_requests_running) + "
                            "mstperf_loadgen_ttft_seconds_count"),
              ElementsAre("mstperf_loadgen_ttft_seconds", "vllm:num_requests_running"));
}

TEST(DashboardHelpersTest, ReadsTheConventionsTable) {
  auto conventions = LoadConventionMetrics(kConventions);
  ASSERT_TRUE(conventions.ok()) << conventions.status();
  EXPECT_EQ(conventions->at("mstperf_loadgen_ttft_seconds").type, "histogram");
  EXPECT_EQ(conventions->at("mstperf_controller_stage").service, "controller");
  EXPECT_EQ(conventions->at("vllm:gpu_cache_usage_perc").service, "simulator");
  EXPECT_EQ(conventions->at("mstperf_evaluator_verdicts_total").type, "counter");
}

}  // namespace
}  // namespace mstperf::observability
