#ifndef MSTPERF_TESTS_INTEGRATION_SIMULATOR_CLIENT_H_
#define MSTPERF_TESTS_INTEGRATION_SIMULATOR_CLIENT_H_

// Small libcurl clients for the simulator's integration tests: one request, one SSE stream
// with per-event arrival times, and an open-loop load (curl multi) that samples /metrics.

#include <functional>
#include <string>
#include <vector>

namespace mstperf::simulator::testing {

struct HttpResult {
  long status = 0;  // 0 = transport error
  std::string body;
  std::string headers;
  std::string error;
};

HttpResult Request(const std::string& method, const std::string& url,
                   const std::string& body = "",
                   const std::vector<std::string>& headers = {});

struct SseEvent {
  double t_s = 0;     // arrival, seconds since the request was sent
  std::string data;   // after "data: "
};

struct StreamResult {
  long status = 0;
  std::vector<SseEvent> events;
  std::string raw;
  std::string error;
};

// POSTs `body` and collects the SSE events. If `stop_after_events` > 0, the client hangs up
// after that many events (to test disconnects).
StreamResult Stream(const std::string& url, const std::string& body, int stop_after_events = 0);

// The value of an unlabelled series in Prometheus text, or -1 when absent.
double MetricValue(const std::string& metrics_text, const std::string& name);

struct OpenLoopOptions {
  std::string url;   // POST target
  std::string body;  // the same body for every request
  double rate_per_s = 1;
  double duration_s = 1;
  int max_requests = -1;  // stop sending after this many (-1 = rate * duration)
  std::string metrics_url;  // sampled every sample_every_s when non-empty
  double sample_every_s = 0.25;
};

struct OpenLoopResult {
  int sent = 0;
  int ok = 0;
  int failed = 0;
  std::vector<double> completion_s;  // completion times of successful requests
  struct Sample {
    double t_s;
    double waiting;
    double running;
  };
  std::vector<Sample> samples;
  // Rate of successful completions in [from_s, to_s), per second.
  double CompletionRate(double from_s, double to_s) const;
};

// Sends evenly spaced requests (open loop: a slow response never delays the next send) for
// duration_s; requests still running at the end are abandoned.
OpenLoopResult RunOpenLoop(const OpenLoopOptions& options);

}  // namespace mstperf::simulator::testing

#endif  // MSTPERF_TESTS_INTEGRATION_SIMULATOR_CLIENT_H_
