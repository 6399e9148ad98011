#include "services/loadgen/runner.h"

#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <curl/curl.h>

#include "absl/strings/str_cat.h"
#include "services/loadgen/sse.h"

namespace mstperf::loadgen {
namespace {

constexpr size_t kMaxErrorText = 512;
constexpr int64_t kSweepPeriodNs = 10'000'000;  // first-token / idle-gap timeout resolution

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

int64_t RealNowNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

itimerspec Spec(int64_t ns, int64_t interval_ns = 0) {
  itimerspec its{};
  its.it_value.tv_sec = ns / 1'000'000'000LL;
  its.it_value.tv_nsec = ns % 1'000'000'000LL;
  its.it_interval.tv_sec = interval_ns / 1'000'000'000LL;
  its.it_interval.tv_nsec = interval_ns % 1'000'000'000LL;
  return its;
}

// Arms a timerfd at an absolute CLOCK_MONOTONIC time (a zero value would disarm it).
void ArmAt(int fd, int64_t at_ns) {
  itimerspec its = Spec(at_ns > 0 ? at_ns : 1);
  timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, nullptr);
}

void Disarm(int fd) {
  itimerspec its{};
  timerfd_settime(fd, 0, &its, nullptr);
}

void Drain(int fd) {
  uint64_t v;
  while (read(fd, &v, sizeof(v)) > 0) {
  }
}

bool Is2xx(long status) { return status >= 200 && status < 300; }

size_t DiscardBody(char*, size_t size, size_t n, void*) { return size * n; }

// The HTTP version a transfer's response came over (what was negotiated, not what was asked).
uint32_t HttpVersionOf(CURL* easy) {
  long v = 0;
  if (curl_easy_getinfo(easy, CURLINFO_HTTP_VERSION, &v) != CURLE_OK) return 0;
  switch (v) {
    case CURL_HTTP_VERSION_1_0: return 10;
    case CURL_HTTP_VERSION_1_1: return 11;
    case CURL_HTTP_VERSION_2_0: return 20;
    case CURL_HTTP_VERSION_3: return 30;
    default: return 0;
  }
}

}  // namespace

int64_t Runner::MonotonicNowNs() { return NowNs(); }

// ---------------------------------------------------------------------------------------------

struct Runner::Request {
  CURL* easy = nullptr;
  Loop* loop = nullptr;
  ScheduledRequest sched;
  bool warm = false;  // a connection warm-up request, not part of the schedule
  int64_t scheduled_ns = 0;
  int64_t sent_ns = 0;
  int64_t first_byte_ns = 0;
  int64_t first_token_ns = 0;
  int64_t last_byte_ns = 0;
  int64_t sent_unix_us = 0;
  uint32_t unpublished_tokens = 0;  // added to RunCounters::tokens once per read, not per chunk
  std::string body;
  // The request's header list: copies of the loop's base nodes plus the index header, built
  // once per easy handle and rewritten in place (no allocation per request). curl only reads it.
  std::vector<curl_slist> header_nodes;
  char index_header[48] = {};
  SseParser parser;
  // Kept across the requests this handle serves: a server's chunks have the same shape from
  // one request to the next, so the template fast path is warm from the first chunk.
  ChunkScanner scanner;
  TokenCounter counter;
  RequestResult result;
  bool http_ok = false;
  bool done = false;   // [DONE] seen
  bool abort = false;  // our own verdict is in result; stop the transfer
  size_t slot = 0;     // position in Loop::in_flight_
  std::string error_body_;  // the start of a non-2xx response's body
  char curl_error[CURL_ERROR_SIZE] = {};  // curl's detail (e.g. why a certificate was refused)

  const std::string& body_error() const { return error_body_; }

  void Fail(v1::ErrorKind kind, std::string text) {
    if (result.error_kind != v1::ERROR_KIND_NONE) return;  // the first cause wins
    result.error_kind = kind;
    if (text.size() > kMaxErrorText) text.resize(kMaxErrorText);
    result.error = std::move(text);
  }
};

class Runner::Loop {
 public:
  Loop(Runner* runner, const std::function<void(RequestResult&&)>& sink)
      : runner_(runner), opts_(runner->options_), sink_(sink) {}

  ~Loop() {
    for (Request* r : in_flight_) {
      curl_multi_remove_handle(multi_, r->easy);
    }
    for (auto& r : all_) curl_easy_cleanup(r->easy);
    if (multi_) curl_multi_cleanup(multi_);
    for (int fd : {epoll_fd_, send_timer_, curl_timer_, sweep_timer_}) {
      if (fd >= 0) close(fd);
    }
    curl_slist_free_all(base_headers_);
  }

  absl::Status Init() {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    send_timer_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    curl_timer_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    sweep_timer_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (epoll_fd_ < 0 || send_timer_ < 0 || curl_timer_ < 0 || sweep_timer_ < 0) {
      return absl::InternalError(absl::StrCat("epoll/timerfd: ", std::strerror(errno)));
    }
    for (int fd : {send_timer_, curl_timer_, sweep_timer_, runner_->stop_fd_}) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = fd;
      if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
        return absl::InternalError(absl::StrCat("epoll_ctl: ", std::strerror(errno)));
      }
    }
    multi_ = curl_multi_init();
    if (multi_ == nullptr) return absl::InternalError("curl_multi_init failed");
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &Loop::OnSocket);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &Loop::OnTimer);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
    // Keep every connection the iteration may need: an evicted connection must be reopened
    // later, on the send path.
    const long cache = std::max<long>(1024, static_cast<long>(opts_.warm_connections) * 2);
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, cache);
    if (opts_.target.http2) curl_multi_setopt(multi_, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);

    base_headers_ = curl_slist_append(nullptr, "Content-Type: application/json");
    base_headers_ = curl_slist_append(base_headers_, "Accept: text/event-stream");
    // curl would otherwise wait for "100 Continue" before sending bodies above 1 KiB.
    base_headers_ = curl_slist_append(base_headers_, "Expect:");
    for (const std::string& h : opts_.target.headers) {
      base_headers_ = curl_slist_append(base_headers_, h.c_str());
    }
    generation_url_ = opts_.target.base_url + opts_.target.generation_path();
    models_url_ = opts_.target.base_url + "/v1/models";
    return absl::OkStatus();
  }

  // Opens `n` connections with concurrent GET /v1/models and waits (up to `timeout`) for them.
  void Warm(uint32_t n, absl::Duration timeout) {
    if (n == 0) return;
    if (opts_.target.http2) n = 1;  // one multiplexed connection carries every stream
    for (uint32_t i = 0; i < n; ++i) {
      Request* r = Acquire();
      r->warm = true;
      curl_easy_setopt(r->easy, CURLOPT_URL, models_url_.c_str());
      curl_easy_setopt(r->easy, CURLOPT_HTTPGET, 1L);
      curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, base_headers_);
      curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, &DiscardBody);
      AddInFlight(r);
      curl_multi_add_handle(multi_, r->easy);
    }
    const int64_t deadline = NowNs() + absl::ToInt64Nanoseconds(timeout);
    while (!in_flight_.empty() && NowNs() < deadline && !stopping_) {
      Poll(static_cast<int>(std::max<int64_t>(1, (deadline - NowNs()) / 1'000'000)));
    }
    while (!in_flight_.empty()) Finish(in_flight_.back(), CURLE_OK, /*forced=*/true);
  }

  void Run(Schedule* schedule) {
    schedule_ = schedule;
    have_next_ = schedule_->Next(&next_);
    start_ns_ = runner_->start_ns_;
    window_end_ns_ = start_ns_ + static_cast<int64_t>(schedule_->spec().duration_s * 1e9);
    drain_deadline_ns_ = window_end_ns_ + absl::ToInt64Nanoseconds(opts_.drain_timeout);
    itimerspec sweep = Spec(kSweepPeriodNs, kSweepPeriodNs);
    timerfd_settime(sweep_timer_, 0, &sweep, nullptr);
    closed_loop_end_ns_ = opts_.closed_loop_for == absl::InfiniteDuration()
                              ? INT64_MAX
                              : start_ns_ + absl::ToInt64Nanoseconds(opts_.closed_loop_for);
    Prepare();
    if (opts_.closed_loop_concurrency == 0) ArmSend();
    while (!stopping_) {
      SendDue();
      if (!have_next_ && in_flight_.empty()) {
        runner_->end_reason_ = "completed";
        break;
      }
      if (!have_next_ && NowNs() >= drain_deadline_ns_) {
        runner_->end_reason_ = "drain_timeout";
        CancelAll("still in flight at the drain timeout");
        break;
      }
      Poll(-1);
    }
    if (stopping_) {
      runner_->end_reason_ = "cancelled";
      CancelAll("iteration cancelled");
    }
    Disarm(sweep_timer_);
    Disarm(send_timer_);
  }

 private:
  // One epoll_wait and the work it wakes.
  void Poll(int timeout_ms) {
    epoll_event events[256];
    // curl asked for an immediate timeout action (it does after every add_handle): do not
    // block, it is handled below.
    if (curl_due_ns_ == 0) timeout_ms = 0;
    int n = epoll_wait(epoll_fd_, events, 256, timeout_ms);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == send_timer_) {
        Drain(fd);
        SendDue();
      } else if (fd == curl_timer_) {
        Drain(fd);
        curl_armed_ns_ = INT64_MAX;
        CurlTimeout(NowNs());
      } else if (fd == sweep_timer_) {
        Drain(fd);
        Sweep();
      } else if (fd == runner_->stop_fd_) {
        stopping_ = true;
      } else if (static_cast<size_t>(fd) < fds_.size() && fds_[fd].ours &&
                 !fds_[fd].active) {
        // An idle connection curl stopped watching (see OnSocket): unregister it now.
        epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
        fds_[fd].registered = false;
      } else {
        int flags = 0;
        if (events[i].events & EPOLLIN) flags |= CURL_CSELECT_IN;
        if (events[i].events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
        if (events[i].events & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
        int running;
        curl_multi_socket_action(multi_, fd, flags, &running);
      }
      // A send that fell due while other events were handled goes out now, not after them.
      if ((i & 7) == 7) SendDue();
    }
    if (curl_due_ns_ == 0) CurlTimeout(0);
    ReadDone();
  }

  // curl's timeout, if due at `now` (0: only an immediate one); otherwise the timerfd is armed
  // for it.
  void CurlTimeout(int64_t now) {
    if (curl_due_ns_ <= now) {
      curl_due_ns_ = INT64_MAX;
      int running;
      curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    if (curl_due_ns_ != INT64_MAX && curl_due_ns_ != 0 && curl_armed_ns_ == INT64_MAX) {
      ArmAt(curl_timer_, curl_due_ns_);
      curl_armed_ns_ = curl_due_ns_;
    }
  }

  Request* Acquire() {
    Request* r;
    if (!free_.empty()) {
      r = free_.back();
      free_.pop_back();
    } else {
      all_.push_back(std::make_unique<Request>());
      r = all_.back().get();
      r->easy = curl_easy_init();
      r->loop = this;
      CURL* e = r->easy;
      ApplyCommonOptions(opts_.target, e);
      curl_easy_setopt(e, CURLOPT_PRIVATE, r);
      curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->curl_error);
      curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &Loop::OnOpenSocket);
      curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, this);
      curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, &Loop::OnCloseSocket);
      curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, this);
      curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Loop::OnWrite);
      curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
      const int64_t total_ms = absl::ToInt64Milliseconds(opts_.target.total_timeout);
      curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(total_ms));
    }
    r->warm = false;
    return r;
  }

  void Release(Request* r) {
    r->body.clear();
    r->body.shrink_to_fit();
    r->parser.Reset();
    r->counter = TokenCounter();
    r->result = RequestResult();
    r->first_byte_ns = r->first_token_ns = r->last_byte_ns = r->sent_ns = 0;
    r->sent_unix_us = 0;
    r->unpublished_tokens = 0;
    r->http_ok = r->done = r->abort = false;
    r->error_body_.clear();
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, &Loop::OnWrite);
    free_.push_back(r);
  }

  void AddInFlight(Request* r) {
    r->slot = in_flight_.size();
    in_flight_.push_back(r);
  }

  void RemoveInFlight(Request* r) {
    Request* last = in_flight_.back();
    in_flight_[r->slot] = last;
    last->slot = r->slot;
    in_flight_.pop_back();
  }

  // Builds the next scheduled request ahead of its time.
  void Prepare() {
    if (!have_next_ || prepared_ != nullptr) return;
    Request* r = Acquire();
    r->sched = next_;
    r->scheduled_ns = start_ns_ + next_.offset_ns;
    r->body = opts_.make_body(next_);
    CURL* e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, generation_url_.c_str());
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, static_cast<long>(r->body.size()));
    if (opts_.index_header) {
      if (r->header_nodes.empty()) {
        for (curl_slist* h = base_headers_; h != nullptr; h = h->next) {
          r->header_nodes.push_back(curl_slist{h->data, nullptr});
        }
        r->header_nodes.push_back(curl_slist{r->index_header, nullptr});
        for (size_t i = 0; i + 1 < r->header_nodes.size(); ++i) {
          r->header_nodes[i].next = &r->header_nodes[i + 1];
        }
      }
      std::snprintf(r->index_header, sizeof(r->index_header), "X-Mstperf-Request: %llu",
                    static_cast<unsigned long long>(next_.index));
      curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->header_nodes.data());
    } else {
      curl_easy_setopt(e, CURLOPT_HTTPHEADER, base_headers_);
    }
    r->result.index = next_.index;
    if (opts_.record_chunks) {
      // One allocation per vector instead of a doubling series (a chunk carries >= 1 token).
      const size_t expected = std::min<uint32_t>(next_.output_tokens, 4096) + 1;
      r->result.chunk_offset_us.reserve(expected);
      r->result.chunk_tokens.reserve(expected);
    }
    r->result.requested_input_tokens = next_.input_tokens;
    r->result.requested_output_tokens = next_.output_tokens;
    r->result.scheduled_unix_us = runner_->ToUnixUs(r->scheduled_ns);
    prepared_ = r;
  }

  void ArmSend() {
    if (have_next_) {
      ArmAt(send_timer_, start_ns_ + next_.offset_ns);
    } else {
      Disarm(send_timer_);
    }
  }

  // Sends (or drops) every request whose time has come.
  void SendDue() {
    if (!have_next_ || stopping_) return;
    int64_t now = NowNs();
    if (opts_.closed_loop_concurrency > 0) {
      if (now >= closed_loop_end_ns_) {
        have_next_ = false;
        return;
      }
      while (have_next_ && in_flight_.size() < opts_.closed_loop_concurrency) {
        Prepare();
        Request* r = prepared_;
        prepared_ = nullptr;
        r->scheduled_ns = now;
        r->result.scheduled_unix_us = runner_->ToUnixUs(now);
        runner_->counters_.scheduled.fetch_add(1, std::memory_order_relaxed);
        Send(r, now);
        have_next_ = schedule_->Next(&next_);
      }
      Prepare();
      return;
    }
    if (start_ns_ + next_.offset_ns > now) return;
    RunCounters& c = runner_->counters_;
    const int64_t max_lag = absl::ToInt64Nanoseconds(opts_.max_send_lag);
    const int64_t guard_lag = absl::ToInt64Nanoseconds(opts_.connection_guard_lag);
    while (have_next_ && start_ns_ + next_.offset_ns <= now) {
      Prepare();
      Request* r = prepared_;
      prepared_ = nullptr;
      c.scheduled.fetch_add(1, std::memory_order_relaxed);
      const int64_t lag = now - r->scheduled_ns;
      if (max_lag > 0 && lag > max_lag) {
        c.dropped_for_lag.fetch_add(1, std::memory_order_relaxed);
        Drop(r, absl::StrCat("dropped: ", lag / 1000, " us behind schedule (generator overloaded)"));
      } else if (guard_lag > 0 && lag > guard_lag && !opts_.target.http2 &&
                 open_sockets_ <= in_flight_.size()) {
        c.dropped_for_connections.fetch_add(1, std::memory_order_relaxed);
        Drop(r, absl::StrCat("dropped: ", lag / 1000,
                             " us behind schedule with no idle connection (generator overloaded)"));
      } else if (opts_.max_in_flight > 0 && in_flight_.size() >= opts_.max_in_flight) {
        c.dropped_for_cap.fetch_add(1, std::memory_order_relaxed);
        Drop(r, absl::StrCat("dropped: max_in_flight (", opts_.max_in_flight, ") reached"));
      } else {
        Send(r, now);
      }
      have_next_ = schedule_->Next(&next_);
      now = NowNs();
    }
    ArmSend();
    Prepare();
  }

  void Send(Request* r, int64_t now) {
    r->sent_ns = now;
    r->sent_unix_us = runner_->ToUnixUs(now);
    r->last_byte_ns = now;
    AddInFlight(r);
    RunCounters& c = runner_->counters_;
    c.sent.fetch_add(1, std::memory_order_relaxed);
    c.in_flight.fetch_add(1, std::memory_order_relaxed);
    curl_multi_add_handle(multi_, r->easy);
    // Kick the transfer now (on a warm connection this writes the request) rather than on the
    // next loop turn through curl's 0 ms timer.
    int running;
    curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
  }

  void Drop(Request* r, std::string why) {
    runner_->counters_.dropped.fetch_add(1, std::memory_order_relaxed);
    r->result.error_kind = v1::ERROR_KIND_DROPPED;
    r->result.error = std::move(why);
    sink_(std::move(r->result));
    Release(r);
  }

  // First-token and idle-gap timeouts (curl enforces connect and total).
  void Sweep() {
    const int64_t now = NowNs();
    const int64_t first = absl::ToInt64Nanoseconds(opts_.target.first_token_timeout);
    const int64_t idle = absl::ToInt64Nanoseconds(opts_.target.idle_timeout);
    for (size_t i = 0; i < in_flight_.size();) {
      Request* r = in_flight_[i];
      if (r->warm) {
        ++i;
        continue;
      }
      if (r->first_token_ns == 0 && now - r->sent_ns > first) {
        r->Fail(v1::ERROR_KIND_TIMEOUT,
                absl::StrCat("no token within the first-token timeout (",
                             absl::FormatDuration(opts_.target.first_token_timeout), ")"));
      } else if (now - r->last_byte_ns > idle) {
        r->Fail(v1::ERROR_KIND_TIMEOUT,
                absl::StrCat("no data for the idle timeout (",
                             absl::FormatDuration(opts_.target.idle_timeout), ")"));
      } else {
        ++i;
        continue;
      }
      r->abort = true;
      Finish(r, CURLE_OK, /*forced=*/true);  // swaps another request into slot i
    }
  }

  void CancelAll(const std::string& why) {
    while (!in_flight_.empty()) {
      Request* r = in_flight_.back();
      r->Fail(v1::ERROR_KIND_CANCELLED, why);
      r->abort = true;
      Finish(r, CURLE_OK, /*forced=*/true);
    }
    if (prepared_ != nullptr) {
      Release(prepared_);
      prepared_ = nullptr;
    }
  }

  void ReadDone() {
    int queued;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &queued)) {
      if (msg->msg != CURLMSG_DONE) continue;
      Request* r = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&r));
      Finish(r, msg->data.result, /*forced=*/false);
    }
  }

  void Finish(Request* r, CURLcode rc, bool forced) {
    const int64_t now = NowNs();
    curl_multi_remove_handle(multi_, r->easy);
    RemoveInFlight(r);
    long connects = 0;
    curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &connects);
    RunCounters& c = runner_->counters_;
    c.connections_opened.fetch_add(connects, std::memory_order_relaxed);
    if (r->warm) {
      Release(r);
      return;
    }
    RequestResult& res = r->result;
    if (res.http_status == 0) {
      long status = 0;
      curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
      res.http_status = static_cast<int32_t>(status);
    }
    res.http_version = HttpVersionOf(r->easy);
    if (!r->abort && !forced) Classify(r, rc);
    res.success = res.error_kind == v1::ERROR_KIND_NONE;
    res.sent_unix_us = runner_->ToUnixUs(r->sent_ns);
    if (r->first_byte_ns) res.first_byte_unix_us = runner_->ToUnixUs(r->first_byte_ns);
    if (r->first_token_ns) res.first_token_unix_us = runner_->ToUnixUs(r->first_token_ns);
    res.end_unix_us = runner_->ToUnixUs(now);
    res.prompt_tokens = r->counter.prompt_tokens();
    res.completion_tokens = r->counter.completion_tokens();
    res.tokens_counted = r->counter.counted();
    c.in_flight.fetch_sub(1, std::memory_order_relaxed);
    (res.success ? c.completed : c.failed).fetch_add(1, std::memory_order_relaxed);
    sink_(std::move(res));
    Release(r);
  }

  void Classify(Request* r, CURLcode rc) {
    RequestResult& res = r->result;
    if (rc == CURLE_OK) {
      if (!Is2xx(res.http_status)) {
        r->Fail(v1::ERROR_KIND_HTTP_STATUS,
                absl::StrCat("HTTP ", res.http_status, ": ", r->body_error()));
        return;
      }
      r->parser.Finish([r](const SseEvent& ev) { r->loop->OnEvent(r, ev, NowNs()); });
      PublishTokens(r);
      if (r->result.error_kind != v1::ERROR_KIND_NONE) return;
      if (!r->done && !r->counter.finished()) {
        r->Fail(v1::ERROR_KIND_STREAM, absl::StrCat("stream ended before [DONE] after ",
                                                    r->counter.counted(), " tokens"));
      }
      return;
    }
    std::string text = curl_easy_strerror(rc);
    if (r->curl_error[0] != '\0') absl::StrAppend(&text, ": ", r->curl_error);
    switch (rc) {
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_RESOLVE_PROXY:
      case CURLE_COULDNT_CONNECT:
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_SSL_CERTPROBLEM:
      case CURLE_SSL_CACERT_BADFILE:
        r->Fail(v1::ERROR_KIND_CONNECT, text);
        break;
      case CURLE_OPERATION_TIMEDOUT:
        r->Fail(v1::ERROR_KIND_TIMEOUT,
                absl::StrCat(r->first_byte_ns ? "total timeout" : "connect or total timeout",
                             ": ", text));
        break;
      case CURLE_PARTIAL_FILE:
      case CURLE_RECV_ERROR:
      case CURLE_GOT_NOTHING:
      case CURLE_SEND_ERROR:
      case CURLE_HTTP2:
      case CURLE_HTTP2_STREAM:
        r->Fail(v1::ERROR_KIND_STREAM, absl::StrCat("stream cut after ", r->counter.counted(),
                                                    " tokens: ", text));
        break;
      default:
        r->Fail(v1::ERROR_KIND_OTHER, text);
    }
  }

 public:
  void PublishTokens(Request* r) {
    if (r->unpublished_tokens == 0) return;
    runner_->counters_.tokens.fetch_add(r->unpublished_tokens, std::memory_order_relaxed);
    r->unpublished_tokens = 0;
  }

  void OnEvent(Request* r, const SseEvent& ev, int64_t now) {
    if (r->abort || r->done) return;
    if (ev.event == "error") {
      r->Fail(v1::ERROR_KIND_SERVER_EVENT, absl::StrCat("error event: ", std::string(ev.data)));
      r->abort = true;
      return;
    }
    const ChunkInfo info = r->scanner.Scan(ev.data);
    if (info.done) {
      r->done = true;
      return;
    }
    if (info.malformed) {
      r->Fail(v1::ERROR_KIND_STREAM,
              absl::StrCat("malformed event: ", std::string(ev.data.substr(0, 160))));
      r->abort = true;
      return;
    }
    if (info.error) {
      r->Fail(v1::ERROR_KIND_SERVER_EVENT, absl::StrCat("server error: ", info.error_message));
      r->abort = true;
      return;
    }
    const uint32_t tokens = r->counter.OnChunk(info);
    if (tokens == 0) return;
    if (r->first_token_ns == 0) r->first_token_ns = now;
    r->unpublished_tokens += tokens;
    if (opts_.record_chunks) {
      // Both ends rounded the same way, so sent + offset is exactly first_token_unix_us.
      const int64_t offset_us = runner_->ToUnixUs(now) - r->sent_unix_us;
      r->result.chunk_offset_us.push_back(static_cast<uint32_t>(std::max<int64_t>(0, offset_us)));
      r->result.chunk_tokens.push_back(tokens);
    }
  }

 private:
  static size_t OnWrite(char* data, size_t size, size_t n, void* user) {
    auto* r = static_cast<Request*>(user);
    const size_t len = size * n;
    const int64_t now = NowNs();
    if (r->first_byte_ns == 0) {
      r->first_byte_ns = now;
      long status = 0;
      curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
      r->result.http_status = static_cast<int32_t>(status);
      r->http_ok = Is2xx(status);
    }
    r->last_byte_ns = now;
    if (!r->http_ok) {
      // Keep the start of an error body for the record.
      if (r->error_body_.size() < kMaxErrorText) {
        r->error_body_.append(data, std::min(len, kMaxErrorText - r->error_body_.size()));
      }
      return len;
    }
    r->parser.Feed(std::string_view(data, len),
                   [r, now](const SseEvent& ev) { r->loop->OnEvent(r, ev, now); });
    r->loop->PublishTokens(r);
    return r->abort ? 0 : len;
  }

  // Per request, curl stops watching the connection when the response is complete and
  // watches it again for the next request on it: an epoll_ctl DEL and ADD per request. For
  // our own sockets (opened and closed through our callbacks, so a closed fd is never mistaken
  // for a registered one) the DEL is deferred until the idle socket reports an event, and a
  // watch with the mask it is still registered with costs no system call.
  static int OnSocket(CURL*, curl_socket_t s, int what, void* userp, void* socketp) {
    auto* loop = static_cast<Loop*>(userp);
    FdState* ours = static_cast<size_t>(s) < loop->fds_.size() && loop->fds_[s].ours
                        ? &loop->fds_[s]
                        : nullptr;
    if (what == CURL_POLL_REMOVE) {
      curl_multi_assign(loop->multi_, s, nullptr);
      if (ours != nullptr) {
        ours->active = false;
      } else {
        epoll_ctl(loop->epoll_fd_, EPOLL_CTL_DEL, s, nullptr);
      }
      return 0;
    }
    epoll_event ev{};
    ev.data.fd = s;
    if (what & CURL_POLL_IN) ev.events |= EPOLLIN;
    if (what & CURL_POLL_OUT) ev.events |= EPOLLOUT;
    if (ours != nullptr) {
      ours->active = true;
      if (socketp == nullptr) curl_multi_assign(loop->multi_, s, loop);
      if (ours->registered && ours->mask == ev.events) return 0;
      const int op = ours->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
      if (epoll_ctl(loop->epoll_fd_, op, s, &ev) != 0) {
        epoll_ctl(loop->epoll_fd_, op == EPOLL_CTL_MOD ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, s, &ev);
      }
      ours->registered = true;
      ours->mask = ev.events;
      return 0;
    }
    if (socketp == nullptr) {
      if (epoll_ctl(loop->epoll_fd_, EPOLL_CTL_ADD, s, &ev) != 0 && errno == EEXIST) {
        epoll_ctl(loop->epoll_fd_, EPOLL_CTL_MOD, s, &ev);
      }
      curl_multi_assign(loop->multi_, s, loop);
    } else if (epoll_ctl(loop->epoll_fd_, EPOLL_CTL_MOD, s, &ev) != 0 && errno == ENOENT) {
      epoll_ctl(loop->epoll_fd_, EPOLL_CTL_ADD, s, &ev);
    }
    return 0;
  }

  // Counts open connections (the guard compares them with requests in flight).
  static curl_socket_t OnOpenSocket(void* userp, curlsocktype, curl_sockaddr* a) {
    auto* loop = static_cast<Loop*>(userp);
    const curl_socket_t fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (fd != CURL_SOCKET_BAD) {
      if (static_cast<size_t>(fd) >= loop->fds_.size()) loop->fds_.resize(fd + 1);
      loop->fds_[fd] = FdState{.ours = true};
      ++loop->open_sockets_;
      loop->runner_->counters_.open_connections.store(loop->open_sockets_,
                                                      std::memory_order_relaxed);
    }
    return fd;
  }

  static int OnCloseSocket(void* userp, curl_socket_t fd) {
    auto* loop = static_cast<Loop*>(userp);
    // Closing the fd takes it out of the epoll set (no dup of it exists).
    if (static_cast<size_t>(fd) < loop->fds_.size()) loop->fds_[fd] = FdState{};
    --loop->open_sockets_;
    loop->runner_->counters_.open_connections.store(loop->open_sockets_,
                                                    std::memory_order_relaxed);
    return close(fd);
  }

  // Called several times per request (each add/remove and socket action may move curl's
  // earliest timeout). A timerfd_settime per call cost more than the rest of the timer logic,
  // so the timerfd is only re-armed when the new deadline is earlier than the armed one; a
  // firing before the current deadline re-arms it (CurlTimeout). An immediate timeout (0) is
  // handled at the end of the loop turn without the timerfd; a cancelled one (-1) just leaves
  // a possible early wake-up.
  static int OnTimer(CURLM*, long timeout_ms, void* userp) {
    auto* loop = static_cast<Loop*>(userp);
    if (timeout_ms < 0) {
      loop->curl_due_ns_ = INT64_MAX;
    } else if (timeout_ms == 0) {
      loop->curl_due_ns_ = 0;
    } else {
      const int64_t due = NowNs() + timeout_ms * 1'000'000LL;
      loop->curl_due_ns_ = due;
      if (due < loop->curl_armed_ns_) {
        ArmAt(loop->curl_timer_, due);
        loop->curl_armed_ns_ = due;
      }
    }
    return 0;
  }

  Runner* runner_;
  const RunOptions& opts_;
  const std::function<void(RequestResult&&)>& sink_;
  int epoll_fd_ = -1, send_timer_ = -1, curl_timer_ = -1, sweep_timer_ = -1;
  CURLM* multi_ = nullptr;
  curl_slist* base_headers_ = nullptr;
  std::string generation_url_, models_url_;
  std::vector<std::unique_ptr<Request>> all_;
  std::vector<Request*> free_;
  std::vector<Request*> in_flight_;
  Request* prepared_ = nullptr;
  size_t open_sockets_ = 0;
  // Our sockets' epoll state, indexed by fd (see OnSocket).
  struct FdState {
    bool ours = false;        // opened by OnOpenSocket, not yet closed by OnCloseSocket
    bool registered = false;  // in the epoll set, with `mask`
    bool active = false;      // curl watches it
    uint32_t mask = 0;
  };
  std::vector<FdState> fds_;
  // curl's wanted timeout (CLOCK_MONOTONIC ns; 0: now; INT64_MAX: none) and what the timerfd
  // is armed for (INT64_MAX: not armed).
  int64_t curl_due_ns_ = INT64_MAX;
  int64_t curl_armed_ns_ = INT64_MAX;
  Schedule* schedule_ = nullptr;
  ScheduledRequest next_;
  bool have_next_ = false;
  bool stopping_ = false;
  int64_t start_ns_ = 0, window_end_ns_ = 0, drain_deadline_ns_ = 0;
  int64_t closed_loop_end_ns_ = INT64_MAX;
};

// ---------------------------------------------------------------------------------------------

Runner::Runner(RunOptions options, Schedule schedule)
    : options_(std::move(options)), schedule_(std::move(schedule)) {
  // Sample the two clocks back to back; take the tightest of a few tries.
  int64_t best_gap = INT64_MAX;
  for (int i = 0; i < 5; ++i) {
    const int64_t m0 = NowNs();
    const int64_t real = RealNowNs();
    const int64_t m1 = NowNs();
    if (m1 - m0 < best_gap) {
      best_gap = m1 - m0;
      offset_ns_ = real - (m0 + (m1 - m0) / 2);
    }
  }
  stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

std::string TrySetRealtime() {
  sched_param param{};
  param.sched_priority = 1;
  int rc = pthread_setschedparam(pthread_self(), SCHED_FIFO, &param);
  if (rc == 0) return "";
  return absl::StrCat("SCHED_FIFO refused: ", std::strerror(rc));
}

Runner::~Runner() {
  if (stop_fd_ >= 0) close(stop_fd_);
}

void Runner::Stop() {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(stop_fd_, &one, sizeof(one));
}

absl::Status Runner::Run(const std::function<void(RequestResult&&)>& sink) {
  if (stop_fd_ < 0) return absl::InternalError("eventfd failed");
  if (options_.realtime) {
    // Best effort: without CAP_SYS_NICE (or an RLIMIT_RTPRIO) the loop runs SCHED_OTHER and
    // the service says so in the iteration's summary.
    std::string error = TrySetRealtime();
    realtime_active_ = error.empty();
    realtime_error_ = std::move(error);
  }
  Loop loop(this, sink);
  if (absl::Status s = loop.Init(); !s.ok()) return s;
  loop.Warm(options_.warm_connections, absl::Seconds(10));
  // 2 ms from now is the earliest start the loop can pace exactly.
  const int64_t earliest_ns = NowNs() + 2'000'000;
  start_ns_ = options_.start_unix_us > 0 ? options_.start_unix_us * 1000 - offset_ns_
                                         : earliest_ns;
  if (start_ns_ < earliest_ns) {
    start_shift_ns_ = earliest_ns - start_ns_;
    start_ns_ = earliest_ns;
  }
  started_.store(true, std::memory_order_release);
  loop.Run(&schedule_);
  return absl::OkStatus();
}

}  // namespace mstperf::loadgen
