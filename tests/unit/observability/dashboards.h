#ifndef MSTPERF_TESTS_UNIT_OBSERVABILITY_DASHBOARDS_H_
#define MSTPERF_TESTS_UNIT_OBSERVABILITY_DASHBOARDS_H_

// Test helpers: read the Grafana dashboards of grafana/dashboards/ and the metric table of
// docs/conventions.md, so tests check the files users get rather than a copy of them.

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace mstperf::observability {

// One query of one panel.
struct PanelQuery {
  std::string dashboard_file;  // base name, e.g. "mstperf-load.json"
  std::string dashboard_uid;
  std::string panel_title;
  std::string panel_type;
  std::string unit;  // fieldConfig.defaults.unit
  std::string ref_id;
  std::string expr;
};

// Every query of every panel (rows included) of every *.json in `dir`, sorted by file name.
absl::StatusOr<std::vector<PanelQuery>> LoadDashboardQueries(const std::string& dir);

// Replaces Grafana's variables as a panel would before sending the query to Prometheus:
// $__rate_interval, $__interval, $__range (also in the ${...} form) and $datasource.
std::string SubstituteVariables(const std::string& expr, const std::string& rate_interval,
                                const std::string& range);

// The metric names an expression reads (`mstperf_*` and `vllm:*` identifiers), with histogram
// suffixes (_bucket, _sum, _count) removed.
std::vector<std::string> MetricNamesIn(const std::string& expr);

// docs/conventions.md's metric table: metric name -> {service, type}.
struct ConventionMetric {
  std::string service;
  std::string type;
};
absl::StatusOr<std::map<std::string, ConventionMetric>> LoadConventionMetrics(
    const std::string& conventions_md_path);

// The whole file, or NOT_FOUND.
absl::StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace mstperf::observability

#endif  // MSTPERF_TESTS_UNIT_OBSERVABILITY_DASHBOARDS_H_
