// TargetMetricsSampler and HttpGetText over real HTTP on loopback: a prometheus-cpp Exposer on
// port 0 plays a vLLM server whose gauges change while the sampler runs.
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <atomic>
#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "services/common/prom_scrape.h"

namespace mstperf::prom {
namespace {

using ::testing::HasSubstr;

// One Exposer for the whole binary: destroying one takes about 2 s.
class FakeVllm {
 public:
  FakeVllm() : exposer_("127.0.0.1:0"), registry_(std::make_shared<prometheus::Registry>()) {
    auto& running = prometheus::BuildGauge()
                        .Name("vllm:num_requests_running")
                        .Help("Running requests.")
                        .Register(*registry_);
    auto& waiting = prometheus::BuildGauge()
                        .Name("vllm:num_requests_waiting")
                        .Help("Waiting requests.")
                        .Register(*registry_);
    auto& cache = prometheus::BuildGauge()
                      .Name("vllm:gpu_cache_usage_perc")
                      .Help("KV-cache usage, 0-1.")
                      .Register(*registry_);
    auto& other = prometheus::BuildGauge().Name("unrelated").Help("x").Register(*registry_);
    running_ = &running.Add({{"model_name", "m \"quoted\""}});
    waiting_ = &waiting.Add({{"model_name", "m \"quoted\""}});
    cache_ = &cache.Add({{"model_name", "m \"quoted\""}});
    other.Add({}).Set(1);
    exposer_.RegisterCollectable(registry_);
  }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(exposer_.GetListeningPorts().at(0)) + "/metrics";
  }
  prometheus::Gauge* running_;
  prometheus::Gauge* waiting_;
  prometheus::Gauge* cache_;

 private:
  prometheus::Exposer exposer_;
  std::shared_ptr<prometheus::Registry> registry_;
};

FakeVllm& Server() {
  static FakeVllm* server = new FakeVllm();
  return *server;
}

const std::string kRunning = "vllm:num_requests_running{model_name=\"m \\\"quoted\\\"\"}";
const std::string kWaiting = "vllm:num_requests_waiting{model_name=\"m \\\"quoted\\\"\"}";
const std::string kCache = "vllm:gpu_cache_usage_perc{model_name=\"m \\\"quoted\\\"\"}";

TEST(HttpGetTextTest, FetchesAndParsesRealMetrics) {
  Server().running_->Set(7);
  auto body = HttpGetText(Server().url(), absl::Seconds(5));
  ASSERT_TRUE(body.ok()) << body.status();
  auto parsed = ParseTextFormat(*body);
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << *body;
  EXPECT_EQ(parsed->Value("vllm:num_requests_running", {{"model_name", "m \"quoted\""}}), 7);
  EXPECT_EQ(parsed->types.at("vllm:gpu_cache_usage_perc"), "gauge");
}

TEST(HttpGetTextTest, ReportsHttpErrorsAndRefusedConnections) {
  std::string not_found = Server().url();
  not_found.replace(not_found.rfind("/metrics"), 8, "/nothing-here");
  auto missing = HttpGetText(not_found, absl::Seconds(5));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("HTTP 404"));

  // Port 1 on loopback: nothing listens there as an unprivileged test service.
  auto refused = HttpGetText("http://127.0.0.1:1/metrics", absl::Seconds(5));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
}

TEST(TargetMetricsSamplerTest, SamplesAChangingServerUntilStopped) {
  FakeVllm& server = Server();
  server.running_->Set(1);
  server.waiting_->Set(0);
  server.cache_->Set(0.25);
  TargetMetricsSampler sampler({.url = server.url(), .interval = absl::Milliseconds(20)});
  ASSERT_TRUE(sampler.Start().ok());
  // Wait for a successful poll of the first state, then change it.
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  auto polls = [&] { return sampler.Samples().size(); };
  while (polls() < 2 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  server.running_->Set(4);
  server.waiting_->Set(9);
  server.cache_->Set(0.5);
  size_t seen = polls();
  while (polls() < seen + 2 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  std::vector<TargetSample> samples = sampler.Stop();

  ASSERT_GE(samples.size(), 4u);
  for (const TargetSample& s : samples) {
    ASSERT_EQ(s.error, "");
    EXPECT_EQ(s.values.size(), 3u);  // the three vLLM series, not "unrelated"
  }
  EXPECT_EQ(samples.front().values.at(kRunning), 1);
  EXPECT_EQ(samples.front().values.at(kCache), 0.25);
  EXPECT_EQ(samples.back().values.at(kRunning), 4);  // the closing poll sees the new state
  EXPECT_EQ(samples.back().values.at(kWaiting), 9);
  EXPECT_EQ(samples.back().values.at(kCache), 0.5);
  nlohmann::json j = TargetSamplesToJson(samples);
  EXPECT_EQ(j.back()["values"][kWaiting], 9);
}

TEST(TargetMetricsSamplerTest, KeepsSamplingThroughAnUnreachableTarget) {
  TargetMetricsSampler sampler({.url = "http://127.0.0.1:1/metrics",
                                .interval = absl::Milliseconds(10),
                                .timeout = absl::Milliseconds(500)});
  ASSERT_TRUE(sampler.Start().ok());
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (sampler.Samples().size() < 3 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  std::vector<TargetSample> samples = sampler.Stop();
  ASSERT_GE(samples.size(), 3u);
  for (const TargetSample& s : samples) {
    EXPECT_THAT(s.error, HasSubstr("127.0.0.1:1"));
    EXPECT_TRUE(s.values.empty());
  }
}

}  // namespace
}  // namespace mstperf::prom
