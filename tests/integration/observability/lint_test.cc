// scripts/dashboard-lint.sh on the shipped dashboards (must pass) and on broken copies (must
// fail, naming the rule): the lint can tell a good dashboard from a bad one.
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "services/common/testing/process.h"
#include "tests/unit/observability/dashboards.h"

namespace mstperf::observability {
namespace {

using ::testing::HasSubstr;

const std::string kRoot = MSTPERF_SOURCE_DIR;

// Runs a shell command; returns its exit code and fills `output` with stdout + stderr.
int RunShell(const std::string& command, std::string* output) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) output->append(buffer, n);
  int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(DashboardLintTest, ShippedDashboardsPass) {
  std::string output;
  int rc = RunShell(kRoot + "/scripts/dashboard-lint.sh", &output);
  EXPECT_EQ(rc, 0) << output;
  EXPECT_THAT(output, HasSubstr("mstperf-experiment.json: ok"));
  EXPECT_THAT(output, HasSubstr("mstperf-load.json: ok"));
}

TEST(DashboardLintTest, BrokenDashboardsFailNamingTheRule) {
  auto text = ReadFile(kRoot + "/grafana/dashboards/mstperf-load.json");
  ASSERT_TRUE(text.ok()) << text.status();
  const nlohmann::json good = nlohmann::json::parse(*text);
  // panels[1] is "Offered vs achieved rate" (panels[0] is a row).
  ASSERT_EQ(good["panels"][1]["title"], "Offered vs achieved rate");
  struct Case {
    std::string rule;
    std::function<void(nlohmann::json&)> breakit;
  };
  using Json = nlohmann::json;
  const std::vector<Case> cases = {
      {"panel-units-rule",
       [](Json& d) { d["panels"][1]["fieldConfig"]["defaults"].erase("unit"); }},
      {"target-rate-interval-rule",
       [](Json& d) {
         d["panels"][1]["targets"][1]["expr"] =
             "sum(rate(mstperf_loadgen_requests_sent_total[5m])) * 60";
       }},
      {"target-counter-agg-rule",
       [](Json& d) {
         d["panels"][1]["targets"][1]["expr"] = "sum(mstperf_loadgen_requests_sent_total)";
       }},
      {"target-promql-rule", [](Json& d) { d["panels"][1]["targets"][0]["expr"] = "sum(("; }},
      {"panel-datasource-rule",
       [](Json& d) { d["panels"][1]["datasource"] = {{"type", "prometheus"}, {"uid", "abc"}}; }},
      {"template-datasource-rule", [](Json& d) { d["templating"]["list"] = Json::array(); }},
      {"no-inputs-rule", [](Json& d) { d["__inputs"] = Json::array({{{"name", "DS"}}}); }},
      {"dashboard-uid-rule", [](Json& d) { d.erase("uid"); }},
      {"panel-title-description-rule", [](Json& d) { d["panels"][1]["description"] = ""; }},
      {"dashboard-schema-rule", [](Json& d) { d["panels"][1]["options"]["legend"]["bogus"] = 1; }},
      {"dashboard-schema-rule", [](Json& d) { d["panels"][1]["options"]["tooltip"]["mode"] = 3; }},
  };
  std::string dir = testing::MakeTempDir("lint");
  for (const Case& c : cases) {
    nlohmann::json bad = good;
    c.breakit(bad);
    std::string path = absl::StrCat(dir, "/", &c - cases.data(), "-", c.rule, ".json");
    std::ofstream(path) << bad.dump(2);
    std::string output;
    int rc = RunShell(kRoot + "/scripts/dashboard-lint.sh " + path, &output);
    EXPECT_EQ(rc, 1) << c.rule << ": " << output;
    EXPECT_THAT(output, HasSubstr(c.rule + ":")) << output;
  }
}

}  // namespace
}  // namespace mstperf::observability
