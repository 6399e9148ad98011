#include "tests/integration/loadgen/awkward_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <sstream>

#include <nlohmann/json.hpp>

namespace mstperf::loadgen::testing {
namespace {

int64_t NowUs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1'000'000LL + ts.tv_nsec / 1000;
}

bool SendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += n;
  }
  return true;
}

// One HTTP/1.1 chunk.
std::string ChunkOf(const std::string& data) {
  std::ostringstream s;
  s << std::hex << data.size() << "\r\n" << data << "\r\n";
  return s.str();
}

bool WriteChunk(int fd, const std::string& data) { return SendAll(fd, ChunkOf(data)); }

void SleepUs(int us) { std::this_thread::sleep_for(std::chrono::microseconds(us)); }

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

uint32_t AwkwardServer::CountTokens(const std::string& text) {
  uint32_t n = 0;
  bool in_word = false;
  for (char c : text) {
    const bool space = std::isspace(static_cast<unsigned char>(c));
    if (!space && !in_word) ++n;
    in_word = !space;
  }
  return n;
}

AwkwardServer::AwkwardServer(int token_gap_us) : token_gap_us_(token_gap_us) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  listen(listen_fd_, 4096);
  socklen_t len = sizeof(addr);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

AwkwardServer::~AwkwardServer() {
  stopping_ = true;
  shutdown(listen_fd_, SHUT_RDWR);
  close(listen_fd_);
  acceptor_.join();
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : fds_) shutdown(fd, SHUT_RDWR);
    workers.swap(workers_);
  }
  for (auto& t : workers) t.join();
}

std::map<uint64_t, AwkwardServer::Served> AwkwardServer::served() const {
  std::lock_guard<std::mutex> lock(mu_);
  return served_;
}

void AwkwardServer::AcceptLoop() {
  while (!stopping_) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (stopping_) return;
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ++connections_;
    std::lock_guard<std::mutex> lock(mu_);
    fds_.push_back(fd);
    workers_.emplace_back([this, fd] { Serve(fd); });
  }
}

void AwkwardServer::Serve(int fd) {
  struct Closer {
    AwkwardServer* self;
    int fd;
    ~Closer() {
      std::lock_guard<std::mutex> lock(self->mu_);
      self->fds_.erase(std::find(self->fds_.begin(), self->fds_.end(), fd));
      close(fd);
    }
  } closer{this, fd};
  std::string buf;
  char tmp[65536];
  int responses = 0;
  while (!stopping_) {
    if (max_responses_ > 0 && responses >= max_responses_) return;
    if (idle_close_ms_ > 0 && buf.empty()) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, idle_close_ms_) == 0) return;
    }
    // Read one request: headers, then Content-Length bytes of body.
    size_t header_end;
    while ((header_end = buf.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
      if (n <= 0) return;
      buf.append(tmp, n);
    }
    const std::string head = buf.substr(0, header_end);
    const std::string lower = Lower(head);
    size_t content_length = 0;
    if (size_t p = lower.find("\r\ncontent-length:"); p != std::string::npos) {
      content_length = std::stoul(lower.substr(p + 17));
    }
    int64_t index = -1;
    if (size_t p = lower.find("\r\nx-mstperf-request:"); p != std::string::npos) {
      index = std::stoll(lower.substr(p + 20));
    }
    while (buf.size() < header_end + 4 + content_length) {
      ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
      if (n <= 0) return;
      buf.append(tmp, n);
    }
    const int64_t read_us = NowUs();
    ++responses;
    const std::string body = buf.substr(header_end + 4, content_length);
    buf.erase(0, header_end + 4 + content_length);
    const std::string path = head.substr(head.find(' ') + 1,
                                         head.find(' ', head.find(' ') + 1) - head.find(' ') - 1);

    auto respond = [&](int status, const std::string& reason, const std::string& json) {
      std::ostringstream s;
      s << "HTTP/1.1 " << status << " " << reason << "\r\nContent-Type: application/json\r\n"
        << "Content-Length: " << json.size() << "\r\n\r\n"
        << json;
      return SendAll(fd, s.str());
    };

    if (path == "/v1/models") {
      if (!respond(200, "OK", R"({"object":"list","data":[{"id":"awkward-model","object":"model"}]})")) break;
      continue;
    }
    nlohmann::json req = nlohmann::json::parse(body, nullptr, false);
    if (path == "/tokenize") {
      uint32_t count = 0;
      if (req.contains("prompt")) count = CountTokens(req["prompt"].get<std::string>());
      if (req.contains("messages")) {
        for (const auto& m : req["messages"]) count += 1 + CountTokens(m["content"].get<std::string>());
      }
      if (!respond(200, "OK", "{\"count\":" + std::to_string(count) + ",\"max_model_len\":100000}")) break;
      continue;
    }
    const bool chat = path == "/v1/chat/completions";
    if (!chat && path != "/v1/completions") {
      if (!respond(404, "Not Found", R"({"error":{"message":"no such path"}})")) break;
      continue;
    }
    ++generations_;
    Served served;
    served.behaviour = index >= 0 ? BehaviourOf(index) : Behaviour::kCrlf;
    served.request_read_unix_us = read_us;
    served.max_tokens = req.value("max_tokens", 16);
    served.prompt_tokens =
        chat ? 1 + CountTokens(req["messages"][0]["content"].get<std::string>())
             : CountTokens(req["prompt"].get<std::string>());
    if (size_t p = lower.find("\r\nauthorization:"); p != std::string::npos) {
      const size_t start = head.find_first_not_of(' ', p + 16);
      served.authorization = head.substr(start, head.find("\r\n", start) - start);
    }
    served.prompt = chat ? req["messages"][0]["content"].get<std::string>()
                         : req["prompt"].get<std::string>();
    const Behaviour b = served.behaviour;
    auto record = [&] {
      if (index < 0) return;
      std::lock_guard<std::mutex> lock(mu_);
      served_[index] = served;
    };
    if (b == Behaviour::kHttp500) {
      record();
      if (!respond(500, "Internal Server Error", R"({"error":{"message":"internal failure"}})")) break;
      continue;
    }
    if (b == Behaviour::kHttp429) {
      record();
      if (!respond(429, "Too Many Requests", R"({"error":{"message":"rate limited"}})")) break;
      continue;
    }
    if (!SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n")) {
      break;
    }
    const std::string eol = b == Behaviour::kCrlf ? "\r\n" : "\n";
    const bool usage = b != Behaviour::kNoUsage;
    const uint32_t P = served.prompt_tokens;
    auto chunk_json = [&](uint32_t completion, const std::string& text, const char* finish,
                          bool with_usage, bool empty_choices) {
      std::string j = chat ? R"({"id":"chat-1","object":"chat.completion.chunk","created":0,"model":"awkward-model","choices":[)"
                           : R"({"id":"cmpl-1","object":"text_completion","created":0,"model":"awkward-model","choices":[)";
      if (!empty_choices) {
        const std::string fin = finish ? std::string("\"") + finish + "\"" : "null";
        j += chat ? R"({"index":0,"delta":{"content":")" + text + R"("},"logprobs":null,"finish_reason":)" + fin + "}"
                  : R"({"index":0,"text":")" + text + R"(","logprobs":null,"finish_reason":)" + fin + "}";
      }
      j += "]";
      if (with_usage) {
        j += ",\"usage\":{\"prompt_tokens\":" + std::to_string(P) + ",\"total_tokens\":" +
             std::to_string(P + completion) + ",\"completion_tokens\":" + std::to_string(completion) + "}";
      }
      return j + "}";
    };
    auto event = [&](const std::string& data) { return "data: " + data + eol + eol; };

    if (b == Behaviour::kSlowFirstToken) SleepUs(300'000);
    const uint32_t per_event = b == Behaviour::kMultiToken ? 3 : 1;
    uint32_t produced = 0;
    bool alive = true;
    bool cut = false;
    int events_sent = 0;
    while (produced < served.max_tokens && alive) {
      // One write: one event, or two for kMultiToken.
      std::string out;
      std::vector<uint32_t> carried;
      for (int e = 0; e < (b == Behaviour::kMultiToken ? 2 : 1) && produced < served.max_tokens; ++e) {
        const uint32_t n = std::min(per_event, served.max_tokens - produced);
        produced += n;
        std::string text;
        for (uint32_t k = 0; k < n; ++k) text += " tok";
        if (b == Behaviour::kCommentsEvents) out += ": ping" + eol + "event: message" + eol;
        out += event(chunk_json(produced, text, nullptr, usage, false));
        carried.push_back(n);
      }
      if (events_sent > 0 || b != Behaviour::kSlowFirstToken) SleepUs(token_gap_us_);
      if (b == Behaviour::kCommentsEvents) {
        if (!WriteChunk(fd, ": keep-alive" + eol + eol)) { alive = false; break; }
      }
      if (b == Behaviour::kSplitEvents) {
        const size_t half = out.size() / 2;
        if (!WriteChunk(fd, out.substr(0, half))) { alive = false; break; }
        SleepUs(1000);
        out = out.substr(half);
      }
      // The chunk is built before the clock is read, so the bracket holds only the send().
      const std::string chunk = ChunkOf(out);
      const int64_t before = NowUs();
      if (!SendAll(fd, chunk)) { alive = false; break; }
      const int64_t after = NowUs();
      int unsent = 0;
      if (ioctl(fd, SIOCOUTQNSD, &unsent) != 0) unsent = -1;
      for (uint32_t n : carried) {
        served.token_write_unix_us.push_back(before);
        served.token_written_unix_us.push_back(after);
        served.token_unsent_bytes.push_back(unsent);
        served.event_tokens.push_back(n);
      }
      ++events_sent;
      if (b == Behaviour::kCutStream && produced >= 3) { cut = true; break; }
      if (b == Behaviour::kMalformed && produced >= 2) {
        WriteChunk(fd, "data: {\"choices\":[{\"text\":\" x\"" + eol + eol);
        break;
      }
      if (b == Behaviour::kErrorEvent && produced >= 1) {
        WriteChunk(fd, "event: error" + eol + R"(data: {"error":{"message":"engine died","code":500}})" + eol + eol);
        break;
      }
    }
    record();
    if (!alive) break;
    if (cut) {
      shutdown(fd, SHUT_RDWR);
      break;
    }
    if (b != Behaviour::kMalformed && b != Behaviour::kErrorEvent) {
      std::string tail = event(chunk_json(produced, "", "length", usage, false));
      if (b != Behaviour::kNoDoneFinish) {
        tail += event(chunk_json(produced, "", nullptr, true, true));  // usage-only, choices []
        tail += "data: [DONE]" + eol + eol;
      }
      if (!WriteChunk(fd, tail)) break;
    }
    if (!SendAll(fd, "0\r\n\r\n")) break;
  }
}

}  // namespace mstperf::loadgen::testing
