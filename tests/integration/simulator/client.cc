#include "tests/integration/simulator/client.h"

#include <curl/curl.h>

#include <chrono>
#include <cmath>
#include <sstream>
#include <unordered_set>

namespace mstperf::simulator::testing {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

size_t AppendTo(char* p, size_t s, size_t n, void* ud) {
  static_cast<std::string*>(ud)->append(p, s * n);
  return s * n;
}

struct CurlInit {
  CurlInit() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};
void EnsureInit() { static CurlInit init; }

}  // namespace

HttpResult Request(const std::string& method, const std::string& url, const std::string& body,
                   const std::vector<std::string>& headers) {
  EnsureInit();
  HttpResult r;
  CURL* curl = curl_easy_init();
  curl_slist* list = curl_slist_append(nullptr, "Content-Type: application/json");
  for (const std::string& h : headers) list = curl_slist_append(list, h.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (method == "POST" || !body.empty()) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  if (method == "HEAD") curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, AppendTo);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, AppendTo);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r.headers);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
  CURLcode rc = curl_easy_perform(curl);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
  } else {
    r.error = curl_easy_strerror(rc);
  }
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  return r;
}

namespace {

struct StreamState {
  Clock::time_point t0;
  std::string buffer;
  StreamResult* result;
  int stop_after;
};

size_t OnStreamData(char* p, size_t s, size_t n, void* ud) {
  auto* st = static_cast<StreamState*>(ud);
  const double t = Since(st->t0);
  st->result->raw.append(p, s * n);
  st->buffer.append(p, s * n);
  size_t pos;
  while ((pos = st->buffer.find("\n\n")) != std::string::npos) {
    std::string event = st->buffer.substr(0, pos);
    st->buffer.erase(0, pos + 2);
    if (event.rfind("data: ", 0) == 0) event.erase(0, 6);
    st->result->events.push_back(SseEvent{t, event});
    if (st->stop_after > 0 && static_cast<int>(st->result->events.size()) >= st->stop_after) {
      return 0;  // abort the transfer: the client hangs up
    }
  }
  return s * n;
}

}  // namespace

StreamResult Stream(const std::string& url, const std::string& body, int stop_after_events) {
  EnsureInit();
  StreamResult r;
  StreamState st{Clock::now(), "", &r, stop_after_events};
  CURL* curl = curl_easy_init();
  curl_slist* list = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnStreamData);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &st);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
  st.t0 = Clock::now();
  CURLcode rc = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
  if (rc != CURLE_OK) r.error = curl_easy_strerror(rc);
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  return r;
}

double MetricValue(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > name.size() && line.compare(0, name.size(), name) == 0 &&
        line[name.size()] == ' ') {
      return std::stod(line.substr(name.size() + 1));
    }
  }
  return -1;
}

double OpenLoopResult::CompletionRate(double from_s, double to_s) const {
  int n = 0;
  for (double t : completion_s) n += t >= from_s && t < to_s;
  return n / (to_s - from_s);
}

OpenLoopResult RunOpenLoop(const OpenLoopOptions& o) {
  EnsureInit();
  OpenLoopResult r;
  CURLM* multi = curl_multi_init();
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, 4096L);
  curl_slist* list = curl_slist_append(nullptr, "Content-Type: application/json");
  const int total = o.max_requests >= 0
                        ? o.max_requests
                        : static_cast<int>(std::floor(o.rate_per_s * o.duration_s));
  std::string sink;
  const Clock::time_point t0 = Clock::now();
  double next_sample = 0;
  int running = 0;
  std::unordered_set<CURL*> active;
  while (true) {
    const double now = Since(t0);
    if (now >= o.duration_s) break;
    // Send everything that is due.
    while (r.sent < total && r.sent / o.rate_per_s <= now) {
      CURL* e = curl_easy_init();
      curl_easy_setopt(e, CURLOPT_URL, o.url.c_str());
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, o.body.data());
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(o.body.size()));
      curl_easy_setopt(e, CURLOPT_HTTPHEADER, list);
      curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, +[](char*, size_t s, size_t n, void*) {
        return s * n;
      });
      curl_multi_add_handle(multi, e);
      active.insert(e);
      ++r.sent;
    }
    if (!o.metrics_url.empty() && now >= next_sample) {
      HttpResult m = Request("GET", o.metrics_url);
      r.samples.push_back({Since(t0), MetricValue(m.body, "vllm:num_requests_waiting"),
                           MetricValue(m.body, "vllm:num_requests_running")});
      next_sample += o.sample_every_s;
    }
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      long status = 0;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
      if (msg->data.result == CURLE_OK && status == 200) {
        ++r.ok;
        r.completion_s.push_back(Since(t0));
      } else {
        ++r.failed;
      }
      curl_multi_remove_handle(multi, msg->easy_handle);
      active.erase(msg->easy_handle);
      curl_easy_cleanup(msg->easy_handle);
    }
    // Sleep until the next send, the next sample, or socket activity, whichever is first.
    double wake = o.duration_s;
    if (r.sent < total) wake = std::min(wake, r.sent / o.rate_per_s);
    if (!o.metrics_url.empty()) wake = std::min(wake, next_sample);
    const int timeout_ms = std::max(0, static_cast<int>((wake - Since(t0)) * 1000));
    curl_multi_poll(multi, nullptr, 0, timeout_ms, nullptr);
  }
  // Abandon whatever is still running.
  for (CURL* e : active) {
    curl_multi_remove_handle(multi, e);
    curl_easy_cleanup(e);
  }
  curl_multi_cleanup(multi);
  curl_slist_free_all(list);
  return r;
}

}  // namespace mstperf::simulator::testing
