#include "tests/unit/observability/dashboards.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace mstperf::observability {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

namespace {

void CollectPanels(const std::string& file, const std::string& uid, const nlohmann::json& panels,
                   std::vector<PanelQuery>* out) {
  for (const nlohmann::json& panel : panels) {
    if (panel.contains("panels")) CollectPanels(file, uid, panel["panels"], out);
    if (!panel.contains("targets")) continue;
    for (const nlohmann::json& target : panel["targets"]) {
      PanelQuery q;
      q.dashboard_file = file;
      q.dashboard_uid = uid;
      q.panel_title = panel.value("title", "");
      q.panel_type = panel.value("type", "");
      q.unit = panel.value("/fieldConfig/defaults/unit"_json_pointer, "");
      q.ref_id = target.value("refId", "");
      q.expr = target.value("expr", "");
      out->push_back(std::move(q));
    }
  }
}

}  // namespace

absl::StatusOr<std::vector<PanelQuery>> LoadDashboardQueries(const std::string& dir) {
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  }
  if (ec) return absl::NotFoundError(absl::StrCat("cannot list ", dir, ": ", ec.message()));
  std::sort(files.begin(), files.end());
  std::vector<PanelQuery> queries;
  for (const auto& path : files) {
    absl::StatusOr<std::string> text = ReadFile(path.string());
    if (!text.ok()) return text.status();
    nlohmann::json dashboard = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (dashboard.is_discarded()) {
      return absl::InvalidArgumentError(absl::StrCat(path.string(), ": invalid JSON"));
    }
    CollectPanels(path.filename().string(), dashboard.value("uid", ""),
                  dashboard.value("panels", nlohmann::json::array()), &queries);
  }
  return queries;
}

std::string SubstituteVariables(const std::string& expr, const std::string& rate_interval,
                                const std::string& range) {
  // Longest names first: $__range must not eat the start of $__range_s.
  return absl::StrReplaceAll(expr, {{"${__rate_interval}", rate_interval},
                                    {"$__rate_interval", rate_interval},
                                    {"${__interval}", rate_interval},
                                    {"$__interval", rate_interval},
                                    {"${__range}", range},
                                    {"$__range", range},
                                    {"${datasource}", ""},
                                    {"$datasource", ""}});
}

std::vector<std::string> MetricNamesIn(const std::string& expr) {
  static const std::regex kName(R"((mstperf_[a-zA-Z0-9_:]+|vllm:[a-zA-Z0-9_:]+))");
  std::vector<std::string> names;
  for (std::sregex_iterator it(expr.begin(), expr.end(), kName), end; it != end; ++it) {
    std::string name = it->str();
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      if (absl::EndsWith(name, suffix)) {
        name.resize(name.size() - strlen(suffix));
        break;
      }
    }
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  return names;
}

absl::StatusOr<std::map<std::string, ConventionMetric>> LoadConventionMetrics(
    const std::string& conventions_md_path) {
  absl::StatusOr<std::string> text = ReadFile(conventions_md_path);
  if (!text.ok()) return text.status();
  // Rows of the table under "## Metric names": | service | `name`[, `name`...] | type | labels |
  std::map<std::string, ConventionMetric> metrics;
  bool in_section = false;
  static const std::regex kBackticked("`([^`]+)`");
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    if (absl::StartsWith(line, "## ")) in_section = line == "## Metric names";
    if (!in_section || !absl::StartsWith(line, "|")) continue;
    std::vector<std::string> cells = absl::StrSplit(line, '|');
    if (cells.size() < 5) continue;
    std::string service(absl::StripAsciiWhitespace(cells[1]));
    std::string type(absl::StripAsciiWhitespace(cells[3]));
    if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary") continue;
    const std::string& names = cells[2];
    for (std::sregex_iterator it(names.begin(), names.end(), kBackticked), end; it != end; ++it) {
      metrics[(*it)[1].str()] = {service, type};
    }
  }
  if (metrics.empty()) {
    return absl::NotFoundError(absl::StrCat("no metric table in ", conventions_md_path));
  }
  return metrics;
}

}  // namespace mstperf::observability
