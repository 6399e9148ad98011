#ifndef MSTPERF_TESTS_INTEGRATION_LOADGEN_AWKWARD_SERVER_H_
#define MSTPERF_TESTS_INTEGRATION_LOADGEN_AWKWARD_SERVER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mstperf::loadgen::testing {

// What the server does for a request; chosen by the request index (the loadgen's
// "X-Mstperf-Request" header) modulo kBehaviourCount. Requests without the header (probes)
// get kCrlf.
enum class Behaviour {
  kCrlf,             // "\r\n" line endings, usage in every chunk, one token per chunk
  kSplitEvents,      // every event cut in two writes 1 ms apart, "\n" endings
  kMultiToken,       // usage.completion_tokens grows by 3 per chunk; several events per write
  kCommentsEvents,   // ": ping" comments and "event: message" lines between events
  kNoUsage,          // no usage in content chunks (one token each); a final usage-only chunk
  kHttp500,          // 500 with a JSON error body
  kHttp429,          // 429 Too Many Requests
  kCutStream,        // three tokens, then the connection is closed mid-response
  kMalformed,        // a malformed event after two tokens
  kSlowFirstToken,   // 300 ms before the first token
  kErrorEvent,       // "event: error" after one token
  kNoDoneFinish,     // finish_reason but no [DONE] (llama.cpp style ending)
};
inline constexpr int kBehaviourCount = 12;

// A deliberately awkward OpenAI-style streaming server for tests: thread per connection,
// HTTP/1.1 keep-alive, chunked responses, TCP_NODELAY, on 127.0.0.1 port 0. Serves
// /v1/models, /tokenize (one token per whitespace-separated word; a chat adds one per message
// role) and /v1/completions + /v1/chat/completions, streaming max_tokens tokens `token_gap_us`
// apart (each token-carrying event in one send(), the socket TCP_NODELAY, so nothing waits for
// Nagle or a delayed ACK). It records, per request index, when it wrote each token-carrying
// event, so tests can compare the loadgen's timestamps with the truth.
class AwkwardServer {
 public:
  explicit AwkwardServer(int token_gap_us = 4000);
  ~AwkwardServer();
  AwkwardServer(const AwkwardServer&) = delete;
  AwkwardServer& operator=(const AwkwardServer&) = delete;

  // Makes the server close connections as servers behind a keep-alive limit do, silently (no
  // "Connection: close"): after `max_responses` responses on one connection, and when a
  // connection stays idle for `idle_close_ms` between requests (0: never). Set before traffic.
  void CloseConnections(int max_responses, int idle_close_ms) {
    max_responses_ = max_responses;
    idle_close_ms_ = idle_close_ms;
  }

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  struct Served {
    Behaviour behaviour;
    uint32_t prompt_tokens = 0;          // of the request's prompt, by the /tokenize rule
    uint32_t max_tokens = 0;
    // Per token-carrying event: the clock read right before the write that carried it, and
    // right after that write returned. The event reached the client's socket between the two
    // (a thread preempted mid-write widens the bracket instead of falsifying one timestamp).
    std::vector<int64_t> token_write_unix_us;
    std::vector<int64_t> token_written_unix_us;
    // Bytes of the socket's send queue not yet sent when that write returned (SIOCOUTQNSD):
    // non-zero means TCP held the event back (window), so it reached the client later.
    std::vector<int32_t> token_unsent_bytes;
    std::vector<uint32_t> event_tokens;        // tokens that event carried
    int64_t request_read_unix_us = 0;
    std::string authorization;  // the Authorization header, if any
    std::string prompt;
  };
  std::map<uint64_t, Served> served() const;
  uint64_t generation_requests() const { return generations_.load(); }
  uint64_t connections() const { return connections_.load(); }

  static Behaviour BehaviourOf(uint64_t index) {
    return static_cast<Behaviour>(index % kBehaviourCount);
  }
  static uint32_t CountTokens(const std::string& text);

 private:
  void AcceptLoop();
  void Serve(int fd);

  int listen_fd_ = -1;
  int port_ = 0;
  int token_gap_us_;
  std::atomic<int> max_responses_{0};
  std::atomic<int> idle_close_ms_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> generations_{0};
  std::atomic<uint64_t> connections_{0};
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::vector<std::thread> workers_;
  std::vector<int> fds_;
  std::map<uint64_t, Served> served_;
};

}  // namespace mstperf::loadgen::testing

#endif  // MSTPERF_TESTS_INTEGRATION_LOADGEN_AWKWARD_SERVER_H_
