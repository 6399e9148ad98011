// mstperf-loadgen: the LoadGenerator gRPC service.
#include <sys/resource.h>

#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "services/common/init.h"
#include "services/common/log.h"
#include "services/common/server.h"
#include "services/loadgen/runner.h"
#include "services/loadgen/service.h"

ABSL_FLAG(int, port, 50052, "gRPC port (0 = any free port).");
ABSL_FLAG(int, metrics_port, 9092, "Prometheus /metrics port (0 = any, -1 = off).");
ABSL_FLAG(uint32_t, max_warm_connections, 2048,
          "Upper bound of the connection pool opened before an iteration starts.");
ABSL_FLAG(double, max_send_lag_ms, 1000,
          "A request this late at its send time is dropped (and counted) instead of sent; 0 = "
          "never drop.");
ABSL_FLAG(double, connection_guard_ms, 50,
          "A request this late when every connection is busy is dropped (and counted) instead "
          "of opening a new connection; 0 = off.");
ABSL_FLAG(bool, realtime_event_loop, false,
          "Run each iteration's event loop thread SCHED_FIFO so that other processes on a "
          "shared core never delay a send (make up, the images and the chart turn it on). Needs "
          "CAP_SYS_NICE (or an RLIMIT_RTPRIO); without it the loop runs at normal priority and "
          "the log and each iteration's summary say so.");
ABSL_FLAG(double, default_total_timeout_s, 900,
          "Per-request total timeout when the Target sets none.");

int main(int argc, char** argv) {
  mstperf::InitProcess(argc, argv, "loadgen",
                       "mstperf-loadgen: offers an exact open-loop rate to an OpenAI-compatible "
                       "endpoint and streams every request's timing.");
  // Every request in flight holds a socket: take all the descriptors the system allows.
  rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }
  curl_global_init(CURL_GLOBAL_ALL);

  mstperf::loadgen::ServiceOptions options;
  options.max_warm_connections = absl::GetFlag(FLAGS_max_warm_connections);
  options.max_send_lag = absl::Milliseconds(absl::GetFlag(FLAGS_max_send_lag_ms));
  options.connection_guard_lag = absl::Milliseconds(absl::GetFlag(FLAGS_connection_guard_ms));
  options.realtime_event_loop = absl::GetFlag(FLAGS_realtime_event_loop);
  if (options.realtime_event_loop) {
    // Probe on a throw-away thread, so the operator learns at start, not at the first iteration.
    std::string refused;
    std::thread([&refused] { refused = mstperf::loadgen::TrySetRealtime(); }).join();
    if (refused.empty()) {
      MSTPERF_LOG(Info) << "event loops will run SCHED_FIFO (real-time priority)";
    } else {
      MSTPERF_LOG(Warning) << "event loops will run at normal priority (" << refused
                           << "): on a busy host sends may be late; give the process "
                              "CAP_SYS_NICE, or pass --realtime_event_loop=false to silence this";
    }
  }
  options.total_timeout = absl::Seconds(absl::GetFlag(FLAGS_default_total_timeout_s));

  mstperf::ServiceHost host(mstperf::ServerOptionsFromFlags(
      "loadgen", absl::GetFlag(FLAGS_port), absl::GetFlag(FLAGS_metrics_port)));
  mstperf::loadgen::LoadGeneratorService service(options, host.registry());
  host.AddService(&service);
  return host.Run();
}
