// mstperf-simulator-bench: keeps --streams SSE completions open against a simulator (one
// connection each, a new request as soon as one ends) and reports the streamed tokens per
// second it received. Single-threaded Asio, so it can be pinned to one core.
//
// Tokens are counted as SSE token events (`"text":"` occurrences), i.e. what a client sees.
#include <chrono>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <utility>  // Boost 1.74 Asio needs it under C++20

#include <boost/asio.hpp>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "Simulator address.");
ABSL_FLAG(int, port, 8000, "Simulator port.");
ABSL_FLAG(int, streams, 1000, "Concurrent streams (connections).");
ABSL_FLAG(int, max_tokens, 2000, "Tokens per request.");
ABSL_FLAG(int, prompt_tokens, 32, "Prompt length in tokens.");
ABSL_FLAG(double, warmup_s, 2, "Seconds before counting starts.");
ABSL_FLAG(double, duration_s, 10, "Seconds counted.");
ABSL_FLAG(int, server_pid, 0,
          "If set, the simulator's CPU time over the counted window is read from /proc, so "
          "the figure per CPU-second holds on a machine shared with other work.");
ABSL_FLAG(bool, continuous_usage, true,
          "Ask for usage in every chunk (what mstperf's load generator asks for).");

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kToken = "\"text\":\"";
constexpr std::string_view kEnd = "[DONE]\n\n\r\n0\r\n\r\n";

// User + system CPU seconds of a process, from /proc/<pid>/stat; -1 if unreadable.
double CpuSeconds(int pid) {
  if (pid <= 0) return -1;
  FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (f == nullptr) return -1;
  char buf[2048];
  size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  buf[n] = 0;
  // Fields after the ")" closing the command name: state is field 3, utime 14, stime 15.
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr) return -1;
  unsigned long long utime = 0, stime = 0;
  if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                  &stime) != 2) {
    return -1;
  }
  return static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK);
}

struct Totals {
  uint64_t tokens = 0;
  uint64_t completed = 0;
  uint64_t errors = 0;
  bool counting = false;
};

class Stream : public std::enable_shared_from_this<Stream> {
 public:
  Stream(asio::io_context& ioc, const tcp::endpoint& ep, const std::string& request,
         Totals* totals)
      : socket_(ioc), endpoint_(ep), request_(request), totals_(totals), buf_(64 * 1024) {}

  void Start() {
    socket_.async_connect(endpoint_, [self = shared_from_this()](auto ec) {
      if (ec) {
        ++self->totals_->errors;
        return;
      }
      self->socket_.set_option(tcp::no_delay(true));
      self->Send();
    });
  }

 private:
  void Send() {
    carry_.clear();
    asio::async_write(socket_, asio::buffer(request_),
                      [self = shared_from_this()](auto ec, size_t) {
                        if (ec) {
                          ++self->totals_->errors;
                          return;
                        }
                        self->Read();
                      });
  }
  void Read() {
    socket_.async_read_some(asio::buffer(buf_), [self = shared_from_this()](auto ec, size_t n) {
      if (ec) {
        ++self->totals_->errors;
        return;
      }
      self->OnData(n);
    });
  }
  void OnData(size_t n) {
    // Scan carry + new bytes, so patterns split across reads are found once.
    const size_t keep = kEnd.size();
    carry_.append(buf_.data(), n);
    std::string_view s(carry_);
    uint64_t tokens = 0;
    for (size_t pos = s.find(kToken); pos != std::string_view::npos;
         pos = s.find(kToken, pos + kToken.size())) {
      ++tokens;
      scanned_until_ = pos + kToken.size();
    }
    if (totals_->counting) totals_->tokens += tokens;
    const bool done = s.find(kEnd) != std::string_view::npos;
    if (done) {
      if (totals_->counting) ++totals_->completed;
      Send();
      return;
    }
    // Keep only the tail that may hold the start of a pattern not yet counted.
    size_t cut = carry_.size() > keep ? carry_.size() - keep : 0;
    cut = std::max(cut, std::min(scanned_until_, carry_.size()));
    carry_.erase(0, cut);
    scanned_until_ = 0;
    Read();
  }

  tcp::socket socket_;
  tcp::endpoint endpoint_;
  const std::string& request_;
  Totals* totals_;
  std::vector<char> buf_;
  std::string carry_;
  size_t scanned_until_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::string prompt;
  for (int i = 0; i < absl::GetFlag(FLAGS_prompt_tokens); ++i) prompt += "tok ";
  std::string body = "{\"prompt\":\"" + prompt + "\",\"max_tokens\":" +
                     std::to_string(absl::GetFlag(FLAGS_max_tokens)) +
                     ",\"ignore_eos\":true,\"stream\":true,\"stream_options\":{\"include_usage\":"
                     "true,\"continuous_usage_stats\":" +
                     (absl::GetFlag(FLAGS_continuous_usage) ? "true" : "false") + "}}";
  const std::string request = "POST /v1/completions HTTP/1.1\r\nHost: bench\r\n"
                              "Content-Type: application/json\r\nContent-Length: " +
                              std::to_string(body.size()) + "\r\n\r\n" + body;

  asio::io_context ioc(1);
  tcp::endpoint ep(asio::ip::make_address(absl::GetFlag(FLAGS_host)),
                   static_cast<unsigned short>(absl::GetFlag(FLAGS_port)));
  Totals totals;
  for (int i = 0; i < absl::GetFlag(FLAGS_streams); ++i) {
    std::make_shared<Stream>(ioc, ep, request, &totals)->Start();
  }
  const double warmup = absl::GetFlag(FLAGS_warmup_s), duration = absl::GetFlag(FLAGS_duration_s);
  asio::steady_timer timer(ioc);
  Clock::time_point t_start;
  const int server_pid = absl::GetFlag(FLAGS_server_pid);
  double cpu_start = -1, cpu_end = -1;
  timer.expires_after(std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(warmup)));
  timer.async_wait([&](auto) {
    totals.counting = true;
    t_start = Clock::now();
    cpu_start = CpuSeconds(server_pid);
    timer.expires_after(std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(duration)));
    timer.async_wait([&](auto) {
      totals.counting = false;
      cpu_end = CpuSeconds(server_pid);
      ioc.stop();
    });
  });
  ioc.run();
  const double elapsed = std::chrono::duration<double>(Clock::now() - t_start).count();
  const double server_cpu = cpu_start >= 0 && cpu_end >= 0 ? cpu_end - cpu_start : -1;
  std::printf(
      "{\"streams\": %d, \"seconds\": %.2f, \"tokens\": %llu, \"tokens_per_s\": %.0f, "
      "\"requests_completed\": %llu, \"errors\": %llu, \"server_cpu_s\": %.2f, "
      "\"server_cpu_share\": %.2f, \"tokens_per_server_cpu_s\": %.0f}\n",
      absl::GetFlag(FLAGS_streams), elapsed, static_cast<unsigned long long>(totals.tokens),
      totals.tokens / elapsed, static_cast<unsigned long long>(totals.completed),
      static_cast<unsigned long long>(totals.errors), server_cpu,
      server_cpu > 0 ? server_cpu / elapsed : -1, server_cpu > 0 ? totals.tokens / server_cpu : -1);
  return totals.errors == 0 ? 0 : 1;
}
