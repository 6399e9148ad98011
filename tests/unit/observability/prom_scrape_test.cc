// The Prometheus text-format parser on tricky input, series selection, and the sampler's
// threading with an injected fetcher (no sockets: the real-HTTP case is an integration test).
#include "services/common/prom_scrape.h"

#include <atomic>
#include <cmath>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mstperf::prom {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

TEST(ParseTextFormatTest, ReadsHelpTypeAndSamples) {
  auto parsed = ParseTextFormat(
      "# HELP mstperf_loadgen_requests_sent_total Requests sent.\n"
      "# TYPE mstperf_loadgen_requests_sent_total counter\n"
      "mstperf_loadgen_requests_sent_total 42\n"
      "# TYPE vllm:num_requests_running gauge\n"
      "vllm:num_requests_running{model_name=\"m\"} 3\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->types.at("mstperf_loadgen_requests_sent_total"), "counter");
  EXPECT_EQ(parsed->types.at("vllm:num_requests_running"), "gauge");
  EXPECT_EQ(parsed->help.at("mstperf_loadgen_requests_sent_total"), "Requests sent.");
  ASSERT_EQ(parsed->samples.size(), 2u);
  EXPECT_EQ(parsed->Value("mstperf_loadgen_requests_sent_total"), 42);
  EXPECT_EQ(parsed->Value("vllm:num_requests_running", {{"model_name", "m"}}), 3);
  EXPECT_EQ(parsed->Value("vllm:num_requests_running", {{"model_name", "other"}}), std::nullopt);
}

TEST(ParseTextFormatTest, UnescapesLabelValues) {
  auto parsed = ParseTextFormat(
      R"(m{path="C:\\dir\\file",quote="say \"hi\"",nl="a\nb",brace="}{,="} 1)" "\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const Sample& s = parsed->samples.at(0);
  EXPECT_EQ(s.Label("path"), "C:\\dir\\file");
  EXPECT_EQ(s.Label("quote"), "say \"hi\"");
  EXPECT_EQ(s.Label("nl"), "a\nb");
  EXPECT_EQ(s.Label("brace"), "}{,=");
  EXPECT_EQ(s.value, 1);
  // The key re-escapes and sorts the labels, as Prometheus prints a series.
  EXPECT_EQ(s.SeriesKey(),
            R"(m{brace="}{,=",nl="a\nb",path="C:\\dir\\file",quote="say \"hi\""})");
}

TEST(ParseTextFormatTest, ReadsSpecialValuesAndTimestamps) {
  auto parsed = ParseTextFormat(
      "a NaN\n"
      "b +Inf\n"
      "c -Inf 1700000000000\n"
      "d 1.5e-3 -12\n"
      "e inf\n"
      "f 0x10\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->samples.size(), 6u);
  EXPECT_TRUE(std::isnan(parsed->samples[0].value));
  EXPECT_EQ(parsed->samples[1].value, INFINITY);
  EXPECT_EQ(parsed->samples[2].value, -INFINITY);
  EXPECT_EQ(parsed->samples[2].timestamp_ms, 1700000000000);
  EXPECT_DOUBLE_EQ(parsed->samples[3].value, 1.5e-3);
  EXPECT_EQ(parsed->samples[3].timestamp_ms, -12);
  EXPECT_EQ(parsed->samples[4].value, INFINITY);
  EXPECT_EQ(parsed->samples[5].value, 16);
  EXPECT_FALSE(parsed->samples[0].timestamp_ms.has_value());
}

TEST(ParseTextFormatTest, ReadsAHistogram) {
  auto parsed = ParseTextFormat(
      "# HELP mstperf_loadgen_ttft_seconds Time to first token.\n"
      "# TYPE mstperf_loadgen_ttft_seconds histogram\n"
      "mstperf_loadgen_ttft_seconds_count 3\n"
      "mstperf_loadgen_ttft_seconds_sum 0.75\n"
      "mstperf_loadgen_ttft_seconds_bucket{le=\"0.1\"} 1\n"
      "mstperf_loadgen_ttft_seconds_bucket{le=\"0.5\"} 2\n"
      "mstperf_loadgen_ttft_seconds_bucket{le=\"+Inf\"} 3\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->types.at("mstperf_loadgen_ttft_seconds"), "histogram");
  EXPECT_EQ(parsed->Find("mstperf_loadgen_ttft_seconds_bucket").size(), 3u);
  EXPECT_EQ(parsed->Value("mstperf_loadgen_ttft_seconds_bucket", {{"le", "+Inf"}}), 3);
  EXPECT_EQ(parsed->Value("mstperf_loadgen_ttft_seconds_sum"), 0.75);
  // Ambiguous without the le label.
  EXPECT_EQ(parsed->Value("mstperf_loadgen_ttft_seconds_bucket"), std::nullopt);
  EXPECT_EQ(parsed->Sum("mstperf_loadgen_ttft_seconds_bucket"), 6);
  EXPECT_TRUE(parsed->Has("mstperf_loadgen_ttft_seconds_count"));
  EXPECT_FALSE(parsed->Has("mstperf_loadgen_ttft_seconds"));
}

TEST(ParseTextFormatTest, ToleratesCommentsBlanksCrlfTrailingCommaAndNoFinalNewline) {
  auto parsed = ParseTextFormat(
      "# just a comment\r\n"
      "\r\n"
      "   \n"
      "#TYPE x gauge\n"
      "# HELP x Line one\\nline two \\\\ done\n"
      "x{a=\"1\",} 2\r\n"
      "x { a = \"2\" }   3\t\n"
      "# EOF\n"
      "y 4");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->types.at("x"), "gauge");
  EXPECT_EQ(parsed->help.at("x"), "Line one\nline two \\ done");
  EXPECT_EQ(parsed->Value("x", {{"a", "1"}}), 2);
  EXPECT_EQ(parsed->Value("x", {{"a", "2"}}), 3);
  EXPECT_EQ(parsed->Value("y"), 4);
  EXPECT_EQ(parsed->Sum("x"), 5);
}

TEST(ParseTextFormatTest, EmptyInputIsEmpty) {
  auto parsed = ParseTextFormat("");
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->samples.empty());
}

TEST(ParseTextFormatTest, RejectsMalformedLinesNamingTheLine) {
  struct Case {
    const char* text;
    const char* message;
  };
  const Case cases[] = {
      {"ok 1\nbad\n", "line 2: invalid value ''"},
      {"m{a=\"x} 1\n", "unterminated label value"},
      {"m{a=\"\\t\"} 1\n", "invalid escape"},
      {"m{a=x} 1\n", "expected '\"' for label a"},
      {"m{a=\"1\" b=\"2\"} 1\n", "expected ',' or '}'"},
      {"m{a=\"1\",a=\"2\"} 1\n", "duplicate label a"},
      {"m{1a=\"1\"} 1\n", "expected a label name"},
      {"m one\n", "invalid value 'one'"},
      {"m 1 1.5\n", "invalid timestamp '1.5'"},
      {"m 1 2 3\n", "unexpected text after timestamp"},
      {"9m 1\n", "expected a metric name"},
      {"# TYPE m gauges\n", "unknown type 'gauges'"},
      {"# TYPE m gauge\n# TYPE m counter\n", "line 2: second TYPE line for m"},
      {"# HELP 1m help\n", "invalid metric name '1m'"},
  };
  for (const Case& c : cases) {
    auto parsed = ParseTextFormat(c.text);
    ASSERT_FALSE(parsed.ok()) << c.text;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr(c.message)) << c.text;
  }
}

TEST(MetricNameTest, Validates) {
  EXPECT_TRUE(IsValidMetricName("vllm:num_requests_running"));
  EXPECT_TRUE(IsValidMetricName("_x9"));
  EXPECT_FALSE(IsValidMetricName(""));
  EXPECT_FALSE(IsValidMetricName("9x"));
  EXPECT_FALSE(IsValidMetricName("a-b"));
}

TEST(SelectSeriesTest, KeepsNamedFamiliesWithTheirSuffixes) {
  auto parsed = ParseTextFormat(
      "vllm:num_requests_running{model_name=\"m\"} 2\n"
      "vllm:num_requests_waiting{model_name=\"m\"} 5\n"
      "vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.25\n"
      "vllm:num_requests_running_extra 9\n"
      "lat_seconds_bucket{le=\"1\"} 1\n"
      "lat_seconds_sum 0.5\n"
      "lat_seconds_count 1\n"
      "other 7\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  std::vector<std::string> names = DefaultTargetMetricNames();
  names.push_back("lat_seconds");
  EXPECT_THAT(SelectSeries(*parsed, names),
              ElementsAre(Pair("lat_seconds_bucket{le=\"1\"}", 1), Pair("lat_seconds_count", 1),
                          Pair("lat_seconds_sum", 0.5),
                          Pair("vllm:gpu_cache_usage_perc{model_name=\"m\"}", 0.25),
                          Pair("vllm:num_requests_running{model_name=\"m\"}", 2),
                          Pair("vllm:num_requests_waiting{model_name=\"m\"}", 5)));
}

TEST(TargetSampleJsonTest, WritesValuesErrorsAndNonFiniteNumbers) {
  TargetSample ok;
  ok.time_unix_us = 10;
  ok.values = {{"a", 1.5}, {"b", NAN}, {"c", INFINITY}, {"d", -INFINITY}};
  TargetSample failed;
  failed.time_unix_us = 20;
  failed.error = "GET x: refused";
  nlohmann::json j = TargetSamplesToJson({ok, failed});
  EXPECT_EQ(j.dump(),
            R"([{"time_unix_us":10,"values":{"a":1.5,"b":"NaN","c":"+Inf","d":"-Inf"}},)"
            R"({"error":"GET x: refused","time_unix_us":20}])");
}

TEST(TargetMetricsSamplerTest, RejectsBadOptions) {
  TargetMetricsSampler no_url({});
  EXPECT_EQ(no_url.Start().code(), absl::StatusCode::kInvalidArgument);
  TargetMetricsSampler not_http({.url = "127.0.0.1:8000/metrics"});
  EXPECT_THAT(std::string(not_http.Start().message()), HasSubstr("metrics_url"));
  TargetMetricsSampler zero(
      {.url = "http://127.0.0.1:1/metrics", .interval = absl::ZeroDuration()});
  EXPECT_EQ(zero.Start().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(zero.Stop().empty());  // Stop without a successful Start is harmless
}

TEST(TargetMetricsSamplerTest, PollsUntilStoppedKeepingErrorsAndAClosingSample) {
  std::atomic<int> calls{0};
  TargetMetricsSampler sampler(
      {.url = "http://127.0.0.1:1/metrics", .interval = absl::Milliseconds(5)},
      [&](const std::string& url) -> absl::StatusOr<std::string> {
        int n = calls.fetch_add(1);
        if (n == 1) return absl::UnavailableError("connection refused");
        if (n == 2) return std::string("garbage line\n");
        return absl::StrCat("vllm:num_requests_running ", n, "\nignored 1\n");
      });
  ASSERT_TRUE(sampler.Start().ok());
  EXPECT_EQ(sampler.Start().code(), absl::StatusCode::kFailedPrecondition);
  while (calls.load() < 6) absl::SleepFor(absl::Milliseconds(1));
  std::vector<TargetSample> samples = sampler.Stop();
  ASSERT_GE(samples.size(), 6u);
  EXPECT_EQ(samples.size(), static_cast<size_t>(calls.load()));  // nothing after Stop()
  EXPECT_THAT(samples[0].values, ElementsAre(Pair("vllm:num_requests_running", 0)));
  EXPECT_THAT(samples[1].error, HasSubstr("connection refused"));
  EXPECT_TRUE(samples[1].values.empty());
  EXPECT_THAT(samples[2].error, HasSubstr("line 1"));
  EXPECT_THAT(samples[3].values, ElementsAre(Pair("vllm:num_requests_running", 3)));
  for (size_t i = 1; i < samples.size(); ++i) {
    EXPECT_GE(samples[i].time_unix_us, samples[i - 1].time_unix_us);
  }
  // Idempotent, and the same samples afterwards.
  EXPECT_EQ(sampler.Stop().size(), samples.size());
  EXPECT_EQ(sampler.Samples().size(), samples.size());
}

TEST(TargetMetricsSamplerTest, StopRightAfterStartStillHasTwoSamples) {
  std::atomic<int> calls{0};
  TargetMetricsSampler sampler({.url = "http://127.0.0.1:1/metrics", .interval = absl::Hours(1)},
                               [&](const std::string&) -> absl::StatusOr<std::string> {
                                 calls++;
                                 return std::string("vllm:num_requests_waiting 1\n");
                               });
  ASSERT_TRUE(sampler.Start().ok());
  std::vector<TargetSample> samples = sampler.Stop();  // must not wait an hour
  EXPECT_EQ(samples.size(), 2u);
  EXPECT_EQ(calls.load(), 2);
}

TEST(TargetMetricsSamplerTest, ConcurrentStopsAgree) {
  TargetMetricsSampler sampler(
      {.url = "http://127.0.0.1:1/metrics", .interval = absl::Milliseconds(1)},
      [](const std::string&) -> absl::StatusOr<std::string> {
        return std::string("vllm:num_requests_waiting 1\n");
      });
  ASSERT_TRUE(sampler.Start().ok());
  std::vector<TargetSample> a, b;
  std::thread other([&] { a = sampler.Stop(); });
  b = sampler.Stop();
  other.join();
  EXPECT_EQ(a.size(), b.size());
  EXPECT_GE(a.size(), 2u);
}

TEST(TargetMetricsSamplerTest, KeepsAtMostMaxSamples) {
  std::atomic<int> calls{0};
  TargetMetricsSampler sampler(
      {.url = "http://127.0.0.1:1/metrics", .interval = absl::Milliseconds(1), .max_samples = 3},
      [&](const std::string&) -> absl::StatusOr<std::string> {
        int n = calls.fetch_add(1);
        return absl::StrCat("vllm:num_requests_waiting ", n, "\n");
      });
  ASSERT_TRUE(sampler.Start().ok());
  while (calls.load() < 10) absl::SleepFor(absl::Milliseconds(1));
  std::vector<TargetSample> samples = sampler.Stop();
  ASSERT_EQ(samples.size(), 3u);
  // The newest ones are kept: the last is the closing poll.
  EXPECT_EQ(samples.back().values.at("vllm:num_requests_waiting"), calls.load() - 1);
}

}  // namespace
}  // namespace mstperf::prom
