#ifndef MSTPERF_SERVICES_LOADGEN_RUNNER_H_
#define MSTPERF_SERVICES_LOADGEN_RUNNER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "mstperf/v1/common.pb.h"
#include "services/loadgen/schedule.h"
#include "services/loadgen/target.h"

namespace mstperf::loadgen {

// Everything measured about one request, compact (the proto RequestRecord is built from it off
// the event loop). Times are Unix epoch microseconds; chunk offsets are from sent_unix_us.
struct RequestResult {
  uint64_t index = 0;
  int64_t scheduled_unix_us = 0;
  int64_t sent_unix_us = 0;  // 0 when dropped
  int64_t first_byte_unix_us = 0;
  int64_t first_token_unix_us = 0;
  int64_t end_unix_us = 0;
  std::vector<uint32_t> chunk_offset_us;
  std::vector<uint32_t> chunk_tokens;
  uint32_t requested_input_tokens = 0;
  uint32_t requested_output_tokens = 0;
  uint32_t prompt_tokens = 0;
  uint32_t completion_tokens = 0;
  uint32_t tokens_counted = 0;
  int32_t http_status = 0;
  // Negotiated HTTP version: 10, 11, 20, 30; 0 when no response came back.
  uint32_t http_version = 0;
  bool success = false;
  v1::ErrorKind error_kind = v1::ERROR_KIND_NONE;
  std::string error;
};

// Live counters of a run, readable from any thread while it runs.
struct RunCounters {
  std::atomic<uint64_t> scheduled{0};  // schedule entries whose time has come (sent or dropped)
  std::atomic<uint64_t> sent{0};
  std::atomic<uint64_t> completed{0};
  std::atomic<uint64_t> failed{0};
  std::atomic<uint64_t> dropped{0};
  std::atomic<uint64_t> in_flight{0};
  std::atomic<uint64_t> tokens{0};
  std::atomic<uint64_t> connections_opened{0};
  std::atomic<uint64_t> dropped_for_lag{0};
  std::atomic<uint64_t> dropped_for_cap{0};
  std::atomic<uint64_t> dropped_for_connections{0};
  std::atomic<uint64_t> open_connections{0};
};

struct RunOptions {
  TargetConfig target;
  // The request body of a scheduled request (prompt and lengths). Called on the event loop,
  // ahead of the request's send time, so its cost does not add to send lag.
  std::function<std::string(const ScheduledRequest&)> make_body;
  // Schedule start, Unix epoch microseconds (replicas share it); 0 means "once warm". Recorded
  // scheduled times are exactly start + the schedule's offsets.
  int64_t start_unix_us = 0;
  // Requests in flight above this are dropped (never delayed); 0 = unlimited.
  uint32_t max_in_flight = 0;
  // A request found this late at its send time is dropped instead of sent: the generator is
  // overloaded, and sending a burst of stale requests (each opening a connection) is what turns
  // an overload into a collapse. Zero disables it.
  absl::Duration max_send_lag = absl::Seconds(1);
  // Connection guard (HTTP/1.1): a request this late at its send time, when every open
  // connection is busy, is dropped rather than sent on a new connection. Opening connections
  // costs the loop most when it is already behind, which is how a bare libcurl loop spirals
  // into collapse under a burst of overdue sends. Zero disables it.
  absl::Duration connection_guard_lag = absl::ZeroDuration();
  // After the last send, in-flight requests get this long before they are cancelled.
  absl::Duration drain_timeout = absl::Seconds(600);
  // Connections opened (with GET /v1/models) before the schedule starts, and kept.
  uint32_t warm_connections = 0;
  // Keep per-chunk times (off: only first token and totals).
  bool record_chunks = true;
  // Closed loop (benchmarks, fixed-concurrency runs): when > 0, the schedule's times are
  // ignored and this many requests are kept in flight, the next starting as one finishes;
  // the run ends when the schedule's requests are used up or `closed_loop_for` has passed.
  uint32_t closed_loop_concurrency = 0;
  absl::Duration closed_loop_for = absl::InfiniteDuration();
  // Run the event loop thread SCHED_FIFO (priority 1) when the process may: scheduler
  // wake-up delays of other processes on a shared core then never delay a send. Off by default
  // here; the service turns it on unless told not to (--realtime_event_loop).
  bool realtime = false;
  // Sends a request-index header ("X-Mstperf-Request: <idx>") with each request.
  bool index_header = true;
};

// Makes the calling thread SCHED_FIFO at priority 1: "" when done, else why not (the process
// lacks CAP_SYS_NICE and an RLIMIT_RTPRIO, say).
std::string TrySetRealtime();

// The event loop of one iteration on the calling thread: an epoll set with a timerfd for the
// schedule (absolute CLOCK_MONOTONIC deadlines, so no sleep quantisation), a timerfd for
// libcurl's timeouts, one for the first-token / idle-gap sweeps, and an eventfd to stop;
// libcurl's multi interface is driven with curl_multi_socket_action. A request is started at
// its scheduled time whatever earlier requests are doing (open loop, no coordinated omission);
// the next request is prepared (body built, handle set up) while waiting, so a send is one
// curl_multi_add_handle plus a socket write. Connections are reused (HTTP/1.1 keep-alive, or
// HTTP/2 streams multiplexed) and a pool is warmed before the start.
class Runner {
 public:
  Runner(RunOptions options, Schedule schedule);
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // Runs the iteration; `sink` gets each finished request on the loop thread (keep it quick).
  // Returns when every scheduled request is finished, dropped or cancelled. The status is
  // an error only for a failure of the machinery itself (epoll, curl).
  absl::Status Run(const std::function<void(RequestResult&&)>& sink);

  // Thread-safe: stops sending and cancels requests in flight (ERROR_KIND_CANCELLED).
  void Stop();

  const RunCounters& counters() const { return counters_; }
  // Why Run() returned: "completed", "cancelled" or "drain_timeout".
  const std::string& end_reason() const { return end_reason_; }
  // CLOCK_MONOTONIC ns -> Unix us, with the offset sampled at construction.
  int64_t ToUnixUs(int64_t monotonic_ns) const { return (monotonic_ns + offset_ns_) / 1000; }
  int64_t start_unix_us() const { return ToUnixUs(start_ns_); }
  int64_t start_monotonic_ns() const { return start_ns_; }
  // True once the connections are warm and the schedule's start is fixed.
  bool started() const { return started_.load(std::memory_order_acquire); }
  // How far the schedule's start was moved past RunOptions::start_unix_us because this replica
  // was ready (target probed, connections warm) only after it; 0 when it was on time. Sending
  // the overdue part of the schedule in a burst would be the generator's fault, not the
  // server's, so the whole schedule moves instead and the summary says so. Valid once started().
  int64_t start_shift_us() const { return start_shift_ns_ / 1000; }

  // Whether the event loop ran SCHED_FIFO, and when RunOptions::realtime asked for it but the
  // host refused, why ("" otherwise). Valid once started().
  bool realtime_active() const { return realtime_active_; }
  const std::string& realtime_error() const { return realtime_error_; }

  static int64_t MonotonicNowNs();

 private:
  struct Request;
  class Loop;

  RunOptions options_;
  Schedule schedule_;
  RunCounters counters_;
  int64_t offset_ns_ = 0;
  int64_t start_ns_ = 0;
  int64_t start_shift_ns_ = 0;
  std::atomic<bool> started_{false};
  int stop_fd_ = -1;
  std::string end_reason_;
  bool realtime_active_ = false;
  std::string realtime_error_;
};

}  // namespace mstperf::loadgen

#endif  // MSTPERF_SERVICES_LOADGEN_RUNNER_H_
