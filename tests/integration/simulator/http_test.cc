// mstperf-simulator over real sockets on port 0: the OpenAI protocol (token counts, usage,
// [DONE], chat shape), timing at low load, queueing under overload, every error body,
// disconnects, and draining on SIGTERM.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "services/common/testing/process.h"
#include "services/simulator/openai.h"
#include "services/simulator/tokenizer.h"
#include "tests/integration/simulator/client.h"

namespace mstperf::simulator {
namespace {

using nlohmann::json;
using testing::HttpResult;
using testing::Request;
using testing::Stream;
using testing::StreamResult;

constexpr double kA = 4.0, kB = 0.25, kC = 0.02;  // step_base, per_seq, prefill_per_token (ms)

std::vector<std::string> SimArgs(std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"--host=127.0.0.1",
                                   "--port=0",
                                   "--model=test-model",
                                   "--max_model_len=2048",
                                   "--max_num_seqs=16",
                                   "--step_base_ms=4",
                                   "--step_per_seq_ms=0.25",
                                   "--prefill_per_token_ms=0.02",
                                   "--kv_cache_tokens=0",
                                   "--max_body_bytes=65536",
                                   "--shutdown_grace_s=10"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

class SimulatorHttpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto p = mstperf::testing::ServiceProcess::Start(
        std::string(MSTPERF_BIN_DIR) + "/mstperf-simulator", SimArgs());
    ASSERT_TRUE(p.ok()) << p.status();
    process_ = p->release();
  }
  static void TearDownTestSuite() {
    delete process_;
    process_ = nullptr;
  }
  static std::string Url(const std::string& path) {
    return "http://127.0.0.1:" + std::to_string(process_->port("http_port")) + path;
  }
  static std::string Words(int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += "word" + std::to_string(i % 7) + " ";
    return s;
  }
  static double Metric(const std::string& name) {
    return testing::MetricValue(Request("GET", Url("/metrics")).body, name);
  }
  static mstperf::testing::ServiceProcess* process_;
};
mstperf::testing::ServiceProcess* SimulatorHttpTest::process_ = nullptr;

TEST_F(SimulatorHttpTest, StreamedCompletionWithContinuousUsage) {
  const std::string prompt = Words(50);
  json req = {{"model", "test-model"},
              {"prompt", prompt},
              {"max_tokens", 12},
              {"ignore_eos", true},
              {"stream", true},
              {"stream_options", {{"include_usage", true}, {"continuous_usage_stats", true}}}};
  StreamResult r = Stream(Url("/v1/completions"), req.dump());
  ASSERT_EQ(r.status, 200) << r.error;
  ASSERT_EQ(r.events.size(), 12u + 2u) << r.raw;  // 12 tokens, usage, [DONE]
  std::string text;
  for (int k = 0; k < 12; ++k) {
    json c = json::parse(r.events[k].data);
    EXPECT_EQ(c["object"], "text_completion");
    EXPECT_EQ(c["model"], "test-model");
    ASSERT_EQ(c["choices"].size(), 1u);
    text += c["choices"][0]["text"].get<std::string>();
    EXPECT_EQ(c["usage"]["prompt_tokens"], 50);
    EXPECT_EQ(c["usage"]["completion_tokens"], k + 1);
    EXPECT_EQ(c["usage"]["total_tokens"], 51 + k);
    if (k == 11) {
      EXPECT_EQ(c["choices"][0]["finish_reason"], "length");
    } else {
      EXPECT_TRUE(c["choices"][0]["finish_reason"].is_null());
    }
  }
  EXPECT_EQ(CountTokens(text), 12);
  json usage = json::parse(r.events[12].data);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["completion_tokens"], 12);
  EXPECT_EQ(usage["usage"]["prompt_tokens"], 50);
  EXPECT_EQ(r.events[13].data, "[DONE]");
}

TEST_F(SimulatorHttpTest, StreamWithoutUsageUnlessAsked) {
  json req = {{"prompt", "a b c"}, {"max_tokens", 3}, {"stream", true}};
  StreamResult r = Stream(Url("/v1/completions"), req.dump());
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(r.events.size(), 4u) << r.raw;
  for (int k = 0; k < 3; ++k) EXPECT_FALSE(json::parse(r.events[k].data).contains("usage"));
  EXPECT_EQ(r.events[3].data, "[DONE]");

  // include_usage alone: usage only in the final chunk.
  req["stream_options"] = {{"include_usage", true}};
  r = Stream(Url("/v1/completions"), req.dump());
  ASSERT_EQ(r.events.size(), 5u) << r.raw;
  EXPECT_FALSE(json::parse(r.events[2].data).contains("usage"));
  EXPECT_EQ(json::parse(r.events[3].data)["usage"]["completion_tokens"], 3);
}

TEST_F(SimulatorHttpTest, NonStreamedCompletionAndChat) {
  HttpResult r = Request("POST", Url("/v1/completions"),
                         json{{"prompt", Words(10)}, {"max_tokens", 7}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  json c = json::parse(r.body);
  EXPECT_EQ(c["object"], "text_completion");
  EXPECT_EQ(c["usage"]["prompt_tokens"], 10);
  EXPECT_EQ(c["usage"]["completion_tokens"], 7);
  EXPECT_EQ(c["usage"]["total_tokens"], 17);
  EXPECT_EQ(CountTokens(c["choices"][0]["text"].get<std::string>()), 7);

  json chat_req = {{"model", "test-model"},
                   {"messages", {{{"role", "user"}, {"content", "hello there"}}}},
                   {"max_completion_tokens", 4}};
  r = Request("POST", Url("/v1/chat/completions"), chat_req.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  json chat = json::parse(r.body);
  EXPECT_EQ(chat["object"], "chat.completion");
  EXPECT_EQ(chat["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(chat["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(chat["usage"]["completion_tokens"], 4);
  EXPECT_EQ(chat["usage"]["prompt_tokens"], 3);  // "user" + 2 words
}

TEST_F(SimulatorHttpTest, StreamedChatShape) {
  json req = {{"messages", {{{"role", "user"}, {"content", "hi"}}}},
              {"max_tokens", 3},
              {"stream", true},
              {"stream_options", {{"include_usage", true}}}};
  StreamResult r = Stream(Url("/v1/chat/completions"), req.dump());
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(r.events.size(), 1u + 3u + 2u) << r.raw;  // role, 3 tokens, usage, [DONE]
  json role = json::parse(r.events[0].data);
  EXPECT_EQ(role["object"], "chat.completion.chunk");
  EXPECT_EQ(role["choices"][0]["delta"]["role"], "assistant");
  for (int k = 1; k <= 3; ++k) {
    json c = json::parse(r.events[k].data);
    EXPECT_TRUE(c["choices"][0]["delta"]["content"].is_string());
  }
  EXPECT_EQ(json::parse(r.events[3].data)["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(json::parse(r.events[4].data)["usage"]["total_tokens"], 2 + 3);
  EXPECT_EQ(r.events[5].data, "[DONE]");
}

TEST_F(SimulatorHttpTest, TokenizeAgreesWithUsage) {
  const std::string prompt = Words(123) + " a-very-long-token-without-spaces-here";
  HttpResult t = Request("POST", Url("/tokenize"),
                         json{{"model", "test-model"}, {"prompt", prompt}}.dump());
  ASSERT_EQ(t.status, 200) << t.body;
  json tj = json::parse(t.body);
  EXPECT_EQ(tj["max_model_len"], 2048);
  EXPECT_EQ(tj["tokens"].size(), tj["count"].get<size_t>());
  HttpResult c = Request("POST", Url("/v1/completions"),
                         json{{"prompt", prompt}, {"max_tokens", 1}}.dump());
  ASSERT_EQ(c.status, 200);
  EXPECT_EQ(json::parse(c.body)["usage"]["prompt_tokens"], tj["count"]);
}

TEST_F(SimulatorHttpTest, ModelsHealthMetrics) {
  HttpResult m = Request("GET", Url("/v1/models"));
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(json::parse(m.body)["data"][0]["id"], "test-model");
  EXPECT_EQ(Request("GET", Url("/health")).status, 200);
  HttpResult metrics = Request("GET", Url("/metrics"));
  ASSERT_EQ(metrics.status, 200);
  for (const char* name :
       {"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:gpu_cache_usage_perc",
        "mstperf_simulator_running_sequences", "mstperf_simulator_waiting_sequences",
        "mstperf_simulator_generated_tokens_total"}) {
    EXPECT_GE(testing::MetricValue(metrics.body, name), 0) << name;
  }
  EXPECT_NE(metrics.body.find("mstperf_simulator_step_duration_seconds_bucket"),
            std::string::npos);
  EXPECT_NE(metrics.body.find("mstperf_simulator_requests_total{status=\"ok\"}"),
            std::string::npos);
  HttpResult cap = Request("GET", Url("/sim/capacity?input_tokens=64&output_tokens=16"));
  ASSERT_EQ(cap.status, 200) << cap.body;
  json cj = json::parse(cap.body);
  EXPECT_NEAR(cj["capacity_req_min"].get<double>(),
              60000.0 * 16 / (16 * (kA + kB * 16) + kC * 64 * 16), 1e-6);
  EXPECT_EQ(cj["params"]["max_num_seqs"], 16);
}

// At low load a request runs alone: the first token comes after a + b + c * in, then one
// token every a + b.
TEST_F(SimulatorHttpTest, TokenGapsMatchTheStepTimeAtLowLoad) {
  const int in = 200, out = 60;
  json req = {{"prompt", Words(in)}, {"max_tokens", out}, {"ignore_eos", true},
              {"stream", true}};
  StreamResult r = Stream(Url("/v1/completions"), req.dump());
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(r.events.size(), static_cast<size_t>(out + 1));
  std::vector<double> gaps;
  for (int k = 1; k < out; ++k) gaps.push_back(r.events[k].t_s - r.events[k - 1].t_s);
  const double mean_gap_ms = (r.events[out - 1].t_s - r.events[0].t_s) / (out - 1) * 1000;
  std::nth_element(gaps.begin(), gaps.begin() + gaps.size() / 2, gaps.end());
  const double median_gap_ms = gaps[gaps.size() / 2] * 1000;
  const double step_ms = kA + kB;
  // Steps are scheduled on the model's timeline, so the mean is exact up to the noise of the
  // last arrival; single gaps carry scheduling noise of a loaded machine.
  EXPECT_NEAR(mean_gap_ms, step_ms, 0.1 * step_ms);
  EXPECT_NEAR(median_gap_ms, step_ms, 0.3 * step_ms);
  const double ttft_ms = r.events[0].t_s * 1000;
  EXPECT_GT(ttft_ms, 0.9 * (kA + kB + kC * in));
  EXPECT_LT(ttft_ms, kA + kB + kC * in + 50);  // + connection set-up on a loaded machine
}

// More requests than slots: 16 run, the rest wait; later requests start later.
TEST_F(SimulatorHttpTest, QueueingUnderOverload) {
  testing::OpenLoopOptions o;
  o.url = Url("/v1/completions");
  o.body = json{{"prompt", "x"}, {"max_tokens", 100}, {"ignore_eos", true}}.dump();
  o.rate_per_s = 2000;
  o.max_requests = 40;
  o.duration_s = 2.5;  // 40 requests take 3 rounds of 100 steps of ~8 ms
  o.metrics_url = Url("/metrics");
  o.sample_every_s = 0.1;
  testing::OpenLoopResult r = RunOpenLoop(o);
  EXPECT_EQ(r.sent, 40);
  EXPECT_EQ(r.failed, 0);
  double max_running = 0, max_waiting = 0;
  for (const auto& s : r.samples) {
    max_running = std::max(max_running, s.running);
    max_waiting = std::max(max_waiting, s.waiting);
  }
  EXPECT_EQ(max_running, 16);
  EXPECT_GE(max_waiting, 20);  // 24 waiting once the first 16 are admitted
  ASSERT_EQ(r.ok, 40);
  // Three waves: the 16 first finish together, then the next 16, then 8.
  std::vector<double> done = r.completion_s;
  std::sort(done.begin(), done.end());
  EXPECT_GT(done[16] - done[15], 0.5 * 100 * (kA + kB * 16) / 1000);
  EXPECT_GT(done[32] - done[31], 0.5 * 100 * (kA + kB * 8) / 1000);
  EXPECT_EQ(Metric("vllm:num_requests_waiting"), 0);
}

TEST_F(SimulatorHttpTest, ClientDisconnectFreesTheSlot) {
  json req = {{"prompt", "x"}, {"max_tokens", 2000}, {"ignore_eos", true}, {"stream", true}};
  StreamResult r = Stream(Url("/v1/completions"), req.dump(), /*stop_after_events=*/3);
  EXPECT_EQ(r.events.size(), 3u);
  // The server notices at its next write and cancels the sequence.
  double running = -1;
  for (int i = 0; i < 100 && running != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    running = Metric("vllm:num_requests_running");
  }
  EXPECT_EQ(running, 0);
}

void ExpectError(const HttpResult& r, long status, const char* param) {
  SCOPED_TRACE(r.body);
  EXPECT_EQ(r.status, status);
  json j = json::parse(r.body, nullptr, false);
  ASSERT_FALSE(j.is_discarded());
  ASSERT_TRUE(j.contains("error"));
  const json& e = j["error"];
  EXPECT_TRUE(e["message"].is_string());
  EXPECT_FALSE(e["message"].get<std::string>().empty());
  EXPECT_TRUE(e["type"].is_string());
  EXPECT_EQ(e["code"], status);
  ASSERT_TRUE(e.contains("param"));
  if (param == nullptr) {
    EXPECT_TRUE(e["param"].is_null());
  } else {
    EXPECT_EQ(e["param"], param);
  }
}

TEST_F(SimulatorHttpTest, ErrorBodies) {
  const std::string c = Url("/v1/completions");
  ExpectError(Request("POST", c, "{\"prompt\": "), 400, nullptr);
  ExpectError(Request("POST", c, "[]"), 400, nullptr);
  ExpectError(Request("POST", c, json{{"max_tokens", 5}}.dump()), 400, "prompt");
  ExpectError(Request("POST", c, json{{"prompt", 12}}.dump()), 400, "prompt");
  ExpectError(Request("POST", c, json{{"prompt", "a"}, {"max_tokens", "3"}}.dump()), 400,
              "max_tokens");
  ExpectError(Request("POST", c, json{{"prompt", "a"}, {"max_tokens", 0}}.dump()), 400,
              "max_tokens");
  ExpectError(Request("POST", c, json{{"prompt", "a"}, {"max_tokens", -1}}.dump()), 400,
              "max_tokens");
  ExpectError(Request("POST", c, json{{"prompt", "a"}, {"stream", "yes"}}.dump()), 400,
              "stream");
  ExpectError(Request("POST", c, json{{"prompt", Words(2048)}}.dump()), 400, "prompt");
  ExpectError(Request("POST", c, json{{"prompt", Words(2000)}, {"max_tokens", 100}}.dump()),
              400, "max_tokens");
  ExpectError(Request("POST", c, json{{"prompt", "a"}, {"model", "gpt-9"}}.dump()), 404,
              "model");
  ExpectError(Request("POST", Url("/v1/chat/completions"), json{{"prompt", "a"}}.dump()), 400,
              "messages");
  ExpectError(Request("POST", Url("/tokenize"), "nope"), 400, nullptr);
  ExpectError(Request("POST", Url("/v1/nothing"), "{}"), 404, nullptr);
  ExpectError(Request("GET", c), 405, nullptr);
  ExpectError(Request("DELETE", Url("/v1/models")), 405, nullptr);
  ExpectError(Request("GET", Url("/sim/capacity?input_tokens=1")), 400, "output_tokens");
  ExpectError(Request("POST", c, std::string(100 * 1024, ' ')), 413, nullptr);
  // Every refused generation is counted, and the server is still fine.
  EXPECT_GE(Metric("mstperf_simulator_requests_total{status=\"error\"}"), 10);
  EXPECT_EQ(Request("GET", Url("/health")).status, 200);
}

TEST_F(SimulatorHttpTest, MalformedHttpGets400AndTheServerLivesOn) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(process_->port("http_port"));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const std::string garbage = "THIS IS NOT HTTP\r\n\r\n";
  ASSERT_EQ(write(fd, garbage.data(), garbage.size()), static_cast<ssize_t>(garbage.size()));
  std::string response;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) response.append(buf, n);
  close(fd);
  EXPECT_EQ(response.rfind("HTTP/1.1 400", 0), 0u) << response;
  EXPECT_NE(response.find("\"error\""), std::string::npos);
  EXPECT_EQ(Request("GET", Url("/health")).status, 200);
}

// With --threads > 1 each connection and the engine get strands: same protocol, no races.
TEST(SimulatorThreadsTest, TwoThreadsServeManyConcurrentStreams) {
  auto p = mstperf::testing::ServiceProcess::Start(
      std::string(MSTPERF_BIN_DIR) + "/mstperf-simulator", SimArgs({"--threads=2"}));
  ASSERT_TRUE(p.ok()) << p.status();
  const std::string base = "http://127.0.0.1:" + std::to_string((*p)->port("http_port"));
  testing::OpenLoopOptions o;
  o.url = base + "/v1/completions";
  o.body = json{{"prompt", "a b c"},
                {"max_tokens", 30},
                {"ignore_eos", true},
                {"stream", true},
                {"stream_options", {{"include_usage", true}, {"continuous_usage_stats", true}}}}
               .dump();
  o.rate_per_s = 400;
  o.max_requests = 100;
  o.duration_s = 2;
  testing::OpenLoopResult r = RunOpenLoop(o);
  EXPECT_EQ(r.ok, 100);
  EXPECT_EQ(r.failed, 0);
  StreamResult one = Stream(o.url, o.body);
  ASSERT_EQ(one.events.size(), 32u) << one.raw;
  EXPECT_EQ(json::parse(one.events[29].data)["usage"]["completion_tokens"], 30);
  EXPECT_EQ(one.events[31].data, "[DONE]");
  const std::string metrics = Request("GET", base + "/metrics").body;
  EXPECT_EQ(testing::MetricValue(metrics, "mstperf_simulator_generated_tokens_total"), 101 * 30);
}

// Containers configure the simulator through MSTPERF_<FLAG> variables; the command line wins.
TEST(SimulatorFlagsTest, EnvironmentOverridesFlagDefaults) {
  setenv("MSTPERF_MAX_NUM_SEQS", "3", 1);
  setenv("MSTPERF_MODEL", "from-env", 1);
  auto p = mstperf::testing::ServiceProcess::Start(
      std::string(MSTPERF_BIN_DIR) + "/mstperf-simulator",
      {"--host=127.0.0.1", "--port=0", "--model=from-flag"});
  unsetenv("MSTPERF_MAX_NUM_SEQS");
  unsetenv("MSTPERF_MODEL");
  ASSERT_TRUE(p.ok()) << p.status();
  const std::string base = "http://127.0.0.1:" + std::to_string((*p)->port("http_port"));
  json cap = json::parse(Request("GET", base + "/sim/capacity?input_tokens=1&output_tokens=1").body);
  EXPECT_EQ(cap["params"]["max_num_seqs"], 3);
  EXPECT_EQ(cap["params"]["model"], "from-flag");
}

// Steps of 10 us: the server cannot write each one on time, so overdue steps are coalesced
// into one write per stream. The stream must still carry every token as its own event.
TEST(SimulatorCoalescingTest, LateStepsStillGiveOneEventPerToken) {
  auto p = mstperf::testing::ServiceProcess::Start(
      std::string(MSTPERF_BIN_DIR) + "/mstperf-simulator",
      SimArgs({"--step_base_ms=0.01", "--step_per_seq_ms=0", "--prefill_per_token_ms=0"}));
  ASSERT_TRUE(p.ok()) << p.status();
  const std::string base = "http://127.0.0.1:" + std::to_string((*p)->port("http_port"));
  json req = {{"prompt", "a b"},
              {"max_tokens", 2000},
              {"ignore_eos", true},
              {"stream", true},
              {"stream_options", {{"include_usage", true}, {"continuous_usage_stats", true}}}};
  StreamResult r = Stream(base + "/v1/completions", req.dump());
  ASSERT_EQ(r.status, 200) << r.error;
  ASSERT_EQ(r.events.size(), 2002u);
  for (int k = 0; k < 2000; ++k) {
    json c = json::parse(r.events[k].data);
    ASSERT_EQ(c["usage"]["completion_tokens"], k + 1) << r.events[k].data;
    ASSERT_EQ(c["choices"][0]["text"], std::string(TokenText(k + 1)));
  }
  EXPECT_EQ(r.events.back().data, "[DONE]");
  const std::string metrics = Request("GET", base + "/metrics").body;
  EXPECT_GT(testing::MetricValue(metrics, "mstperf_simulator_late_steps_total"), 0);
  EXPECT_EQ(testing::MetricValue(metrics, "mstperf_simulator_generated_tokens_total"), 2000);
}

TEST(SimulatorShutdownTest, SigtermDrainsStreamsInFlight) {
  auto p = mstperf::testing::ServiceProcess::Start(
      std::string(MSTPERF_BIN_DIR) + "/mstperf-simulator", SimArgs());
  ASSERT_TRUE(p.ok()) << p.status();
  const std::string url =
      "http://127.0.0.1:" + std::to_string((*p)->port("http_port")) + "/v1/completions";
  json req = {{"prompt", "x"}, {"max_tokens", 60}, {"ignore_eos", true}, {"stream", true}};
  StreamResult r;
  std::thread client([&] { r = Stream(url, req.dump()); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // ~1/3 of the stream
  (*p)->Signal(SIGTERM);
  client.join();
  EXPECT_EQ(r.status, 200);
  ASSERT_EQ(r.events.size(), 61u) << r.error;
  EXPECT_EQ(r.events.back().data, "[DONE]");
  int status = (*p)->Wait(absl::Seconds(10));
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace mstperf::simulator
