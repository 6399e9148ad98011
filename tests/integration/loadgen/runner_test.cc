// The runner over real sockets against the awkward SSE server: every error counted with its
// kind, token counts and per-token times against the server's own write times, offered rate,
// timeouts, max_in_flight drops, cancellation.
#include "services/loadgen/runner.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <thread>

#include <gtest/gtest.h>

#include "tests/integration/loadgen/awkward_server.h"

namespace mstperf::loadgen {
namespace {

using testing::AwkwardServer;
using testing::Behaviour;

struct Outcome {
  std::vector<RequestResult> results;
  std::string end_reason;
  uint64_t connections_opened = 0;
};

RunOptions Options(const AwkwardServer& server, uint32_t prompt_words) {
  RunOptions o;
  o.target.base_url = server.url();
  o.target.model = "awkward-model";
  o.target.connect_timeout = absl::Seconds(2);
  o.target.total_timeout = absl::Seconds(20);
  o.drain_timeout = absl::Seconds(10);
  BodyTemplate body(o.target, true);
  std::string prompt = "Text:";
  for (uint32_t i = 1; i < prompt_words; ++i) prompt += " w";
  o.make_body = [body, prompt](const ScheduledRequest& r) { return body.Build(prompt, r.output_tokens); };
  o.warm_connections = 8;
  return o;
}

Schedule Constant(double rate, double duration, uint32_t out_tokens) {
  ScheduleSpec s;
  s.kind = ArrivalKind::kConstant;
  s.rate_per_s = rate;
  s.duration_s = duration;
  s.output_min = s.output_max = out_tokens;
  s.input_min = s.input_max = 5;
  return *Schedule::Create(s);
}

Outcome RunIt(RunOptions o, Schedule s, absl::Duration stop_after = absl::ZeroDuration()) {
  Outcome out;
  Runner runner(std::move(o), std::move(s));
  std::thread stopper;
  if (stop_after > absl::ZeroDuration()) {
    stopper = std::thread([&] {
      absl::SleepFor(stop_after);
      runner.Stop();
    });
  }
  absl::Status st = runner.Run([&](RequestResult&& r) { out.results.push_back(std::move(r)); });
  EXPECT_TRUE(st.ok()) << st;
  if (stopper.joinable()) stopper.join();
  out.end_reason = runner.end_reason();
  out.connections_opened = runner.counters().connections_opened.load();
  std::sort(out.results.begin(), out.results.end(),
            [](const auto& a, const auto& b) { return a.index < b.index; });
  return out;
}

// Requests per second implied by the actual send times (least squares of time on index).
double SendRate(const std::vector<RequestResult>& results) {
  double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const auto& r : results) {
    const double x = static_cast<double>(r.index);
    const double y = (r.sent_unix_us - results.front().sent_unix_us) / 1e6;
    n += 1;
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
  }
  const double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
  return 1 / slope;
}

TEST(RunnerTest, EveryShapeAndErrorAgainstTheAwkwardServer) {
  AwkwardServer server(/*token_gap_us=*/4000);
  const double rate = 120;
  const uint32_t tokens = 8;
  Outcome out = RunIt(Options(server, 5), Constant(rate, 2.0, tokens));
  ASSERT_EQ(out.results.size(), 240u);
  EXPECT_EQ(out.end_reason, "completed");
  auto served = server.served();
  ASSERT_EQ(served.size(), 240u);

  std::map<Behaviour, int> ok_by_behaviour;
  std::vector<double> token_errors_us;
  for (const RequestResult& r : out.results) {
    SCOPED_TRACE(::testing::Message() << "request " << r.index << ": " << r.error);
    const auto& s = served.at(r.index);
    ASSERT_NE(r.sent_unix_us, 0);
    EXPECT_EQ(r.requested_output_tokens, tokens);
    switch (s.behaviour) {
      case Behaviour::kHttp500:
        EXPECT_EQ(r.error_kind, v1::ERROR_KIND_HTTP_STATUS);
        EXPECT_EQ(r.http_status, 500);
        EXPECT_NE(r.error.find("internal failure"), std::string::npos);
        continue;
      case Behaviour::kHttp429:
        EXPECT_EQ(r.error_kind, v1::ERROR_KIND_HTTP_STATUS);
        EXPECT_EQ(r.http_status, 429);
        continue;
      case Behaviour::kCutStream:
        EXPECT_EQ(r.error_kind, v1::ERROR_KIND_STREAM);
        EXPECT_EQ(r.tokens_counted, 3u);
        continue;
      case Behaviour::kMalformed:
        EXPECT_EQ(r.error_kind, v1::ERROR_KIND_STREAM);
        EXPECT_NE(r.error.find("malformed"), std::string::npos);
        EXPECT_EQ(r.tokens_counted, 2u);
        continue;
      case Behaviour::kErrorEvent:
        EXPECT_EQ(r.error_kind, v1::ERROR_KIND_SERVER_EVENT);
        EXPECT_NE(r.error.find("engine died"), std::string::npos);
        continue;
      default:
        break;
    }
    ASSERT_TRUE(r.success) << static_cast<int>(s.behaviour);
    ++ok_by_behaviour[s.behaviour];
    EXPECT_EQ(r.http_status, 200);
    EXPECT_EQ(r.tokens_counted, tokens);
    EXPECT_EQ(r.completion_tokens, tokens);
    EXPECT_EQ(r.prompt_tokens, s.behaviour == Behaviour::kNoUsage ? 5u : 5u);
    ASSERT_EQ(r.chunk_offset_us.size(), s.token_write_unix_us.size());
    ASSERT_EQ(r.chunk_tokens, s.event_tokens);
    for (size_t k = 0; k < r.chunk_offset_us.size(); ++k) {
      token_errors_us.push_back(
          std::abs(static_cast<double>(r.sent_unix_us + r.chunk_offset_us[k] - s.token_write_unix_us[k])));
    }
    EXPECT_EQ(r.first_token_unix_us, r.sent_unix_us + r.chunk_offset_us[0]);
    if (s.behaviour == Behaviour::kSlowFirstToken) {
      EXPECT_GE(r.first_token_unix_us - r.sent_unix_us, 300'000);
    }
    EXPECT_GE(r.end_unix_us, r.first_token_unix_us);
    EXPECT_GE(r.first_token_unix_us, r.first_byte_unix_us);
  }
  EXPECT_EQ(ok_by_behaviour.size(), 7u);  // every successful shape was seen and parsed
  // Per-token times against the server's write times: the receive path adds only loopback
  // and scheduling latency. The test server runs a thread per connection in this process, so
  // on a loaded two-core machine some tokens wait for a scheduler slice (runs under a load
  // average of 9 saw p90 up to 3 ms): the 2 ms bound is held by three quarters of the tokens
  // and the median must be far below it; a systematic error (a token attributed to the wrong
  // chunk is 4 ms off, a per-read timestamp up to 8 ms) would break both.
  std::sort(token_errors_us.begin(), token_errors_us.end());
  ASSERT_FALSE(token_errors_us.empty());
  const double p50 = token_errors_us[token_errors_us.size() / 2];
  const double p75 = token_errors_us[token_errors_us.size() * 3 / 4];
  const double p90 = token_errors_us[token_errors_us.size() * 9 / 10];
  EXPECT_LE(p75, 2000) << "p50 " << p50 << " p90 " << p90 << " max " << token_errors_us.back();
  EXPECT_LE(p50, 500) << "p90 " << p90;
  EXPECT_LE(token_errors_us.back(), 100'000) << "p90 " << p90;

  // Offered rate from the actual send times: the least-squares slope of send time against
  // index (robust to one late send at either end), within 1 % of the target.
  EXPECT_NEAR(SendRate(out.results), rate, rate * 0.01);
  // Connections were reused: far fewer than requests (the cut / malformed / error-event ones
  // close theirs by design).
  EXPECT_LT(server.connections(), out.results.size() * 2 / 3);
}

TEST(RunnerTest, FirstTokenAndIdleTimeoutsFire) {
  {
    AwkwardServer server(4000);
    RunOptions o = Options(server, 3);
    o.target.first_token_timeout = absl::Milliseconds(150);
    Outcome out = RunIt(std::move(o), Constant(48, 0.5, 4));  // 24 requests: 2 slow ones
    ASSERT_EQ(out.results.size(), 24u);
    int timeouts = 0;
    for (const auto& r : out.results) {
      if (AwkwardServer::BehaviourOf(r.index) == Behaviour::kSlowFirstToken) {
        EXPECT_EQ(r.error_kind, v1::ERROR_KIND_TIMEOUT) << r.error;
        EXPECT_NE(r.error.find("first-token"), std::string::npos);
        EXPECT_NEAR((r.end_unix_us - r.sent_unix_us) / 1000.0, 150, 60);
        ++timeouts;
      }
    }
    EXPECT_EQ(timeouts, 2);
  }
  {
    AwkwardServer server(/*token_gap_us=*/120'000);
    RunOptions o = Options(server, 3);
    o.target.idle_timeout = absl::Milliseconds(60);
    Outcome out = RunIt(std::move(o), Constant(10, 0.1, 4));
    ASSERT_EQ(out.results.size(), 1u);
    EXPECT_EQ(out.results[0].error_kind, v1::ERROR_KIND_TIMEOUT);
    EXPECT_NE(out.results[0].error.find("idle"), std::string::npos);
  }
}

TEST(RunnerTest, MaxInFlightDropsAndNeverDelays) {
  AwkwardServer server(20'000);  // each request takes ~80 ms
  RunOptions o = Options(server, 3);
  o.max_in_flight = 2;
  Outcome out = RunIt(std::move(o), Constant(100, 1.0, 4));
  ASSERT_EQ(out.results.size(), 100u);
  int dropped = 0;
  for (const auto& r : out.results) {
    if (r.error_kind == v1::ERROR_KIND_DROPPED) {
      ++dropped;
      EXPECT_EQ(r.sent_unix_us, 0);
      EXPECT_NE(r.error.find("max_in_flight"), std::string::npos);
    } else {
      // Sent ones left on time, not when a slot freed up.
      EXPECT_LT(r.sent_unix_us - r.scheduled_unix_us, 20'000);
    }
  }
  EXPECT_GT(dropped, 60);
  EXPECT_LT(dropped, 100);
}

TEST(RunnerTest, StopCancelsInFlightRequests) {
  AwkwardServer server(50'000);
  const absl::Time t0 = absl::Now();
  Outcome out = RunIt(Options(server, 3), Constant(20, 30, 100), absl::Milliseconds(500));
  EXPECT_LT(absl::Now() - t0, absl::Seconds(5));
  EXPECT_EQ(out.end_reason, "cancelled");
  ASSERT_GE(out.results.size(), 5u);
  for (const auto& r : out.results) {
    const Behaviour b = AwkwardServer::BehaviourOf(r.index);
    // These end on their own within 150 ms: the others stream 100 tokens over 5 s.
    if (b == Behaviour::kHttp500 || b == Behaviour::kHttp429 || b == Behaviour::kCutStream ||
        b == Behaviour::kMalformed || b == Behaviour::kErrorEvent) {
      continue;
    }
    EXPECT_EQ(r.error_kind, v1::ERROR_KIND_CANCELLED) << r.index << " " << r.error;
  }
}

TEST(RunnerTest, ConnectionRefusedIsCountedAsConnect) {
  uint16_t port;
  {
    AwkwardServer gone;
    port = gone.port();
  }
  RunOptions o;
  o.target.base_url = "http://127.0.0.1:" + std::to_string(port);
  o.target.model = "m";
  o.make_body = [](const ScheduledRequest&) { return std::string("{}"); };
  Outcome out = RunIt(std::move(o), Constant(50, 0.2, 4));
  ASSERT_EQ(out.results.size(), 10u);
  for (const auto& r : out.results) EXPECT_EQ(r.error_kind, v1::ERROR_KIND_CONNECT) << r.error;
}

}  // namespace
}  // namespace mstperf::loadgen
