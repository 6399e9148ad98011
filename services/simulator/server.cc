#include "services/simulator/server.h"

#include <atomic>
#include <charconv>
#include <chrono>
#include <ctime>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>  // before Asio: Boost 1.74 needs std::exchange under C++20
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "services/common/log.h"

namespace mstperf::simulator {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kHeaderLimit = 64 * 1024;

// Debian's Abseil has its own string_view, distinct from std's and Beast's.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }
absl::string_view AV(beast::string_view s) { return absl::string_view(s.data(), s.size()); }

// Appends "HTTP/1.1 <status>\r\n<headers>\r\n<body>".
std::string RawResponse(int status, std::string_view content_type, std::string_view body,
                        bool close, std::string_view extra_headers = {}) {
  std::string out;
  out.reserve(160 + body.size());
  absl::StrAppend(&out, "HTTP/1.1 ", status, " ",
                  AV(http::obsolete_reason(static_cast<http::status>(status))),
                  "\r\nserver: mstperf-simulator\r\n");
  if (!content_type.empty()) absl::StrAppend(&out, "content-type: ", AV(content_type), "\r\n");
  absl::StrAppend(&out, "content-length: ", body.size(), "\r\n");
  if (close) out.append("connection: close\r\n");
  out.append(extra_headers);
  out.append("\r\n");
  out.append(body);
  return out;
}

void AppendChunk(std::string_view data, std::string* out) {
  char hex[20];
  auto [end, ec] = std::to_chars(hex, hex + sizeof(hex), data.size(), 16);
  out->append(hex, end);
  out->append("\r\n");
  out->append(data);
  out->append("\r\n");
}

int64_t UnixSeconds() { return static_cast<int64_t>(std::time(nullptr)); }

}  // namespace

class Session;

class SimulatorServer::Impl {
 public:
  explicit Impl(ServerOptions options);

  absl::Status Start();
  void Shutdown(absl::Duration grace);
  int port() const { return port_; }

  // Called on a session's executor.
  void OnRequestStarted() { open_responses_.fetch_add(1); }
  void OnRequestFinished() { open_responses_.fetch_sub(1); }
  bool draining() const { return draining_.load(); }
  void CountRequest(bool ok) { (ok ? requests_ok_ : requests_error_)->Increment(); }
  // Posts to the engine's executor.
  void Submit(std::shared_ptr<Session> session, SeqId id, int input_tokens, int output_tokens);
  void Cancel(SeqId id);
  SeqId NextId() { return next_id_.fetch_add(1); }

  const ServerOptions& options() const { return options_; }
  std::string MetricsText();
  std::string CapacityBody(std::string_view query, std::optional<ApiError>* error);
  const std::string& models_body() const { return models_body_; }

 private:
  void DoAccept();
  // StartStep = BeginStep (admission, duration, metrics) + ArmTimer (for its end).
  void StartStep(double start_ms);
  void BeginStep(double start_ms);
  void ArmTimer();
  void OnStepEnd(const boost::system::error_code& ec);
  void UpdateGauges();
  double NowMs() const {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0_).count();
  }

  ServerOptions options_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  asio::steady_timer accept_retry_timer_;
  asio::any_io_executor engine_executor_;
  std::vector<std::thread> threads_;
  int port_ = 0;
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> open_responses_{0};
  std::atomic<SeqId> next_id_{1};
  bool stopped_ = false;
  std::string models_body_;

  // Engine state: touched only on engine_executor_.
  Engine engine_;
  Clock::time_point t0_;
  asio::steady_timer step_timer_;
  double step_end_ms_ = 0;
  std::vector<TokenEvent> events_;
  absl::flat_hash_map<SeqId, std::shared_ptr<Session>> active_;
  std::vector<std::shared_ptr<Session>> dirty_;

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Gauge* running_ = nullptr;
  prometheus::Gauge* waiting_ = nullptr;
  prometheus::Gauge* vllm_running_ = nullptr;
  prometheus::Gauge* vllm_waiting_ = nullptr;
  prometheus::Gauge* vllm_cache_ = nullptr;
  prometheus::Counter* generated_ = nullptr;
  prometheus::Counter* late_steps_ = nullptr;
  prometheus::Counter* requests_ok_ = nullptr;
  prometheus::Counter* requests_error_ = nullptr;
  prometheus::Histogram* step_duration_ = nullptr;
};

// One HTTP connection. Serves requests one after another; while a generation runs it holds
// the connection, writing each step's tokens in one write (and coalescing steps while a write
// is still in flight).
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, SimulatorServer::Impl* server)
      : socket_(std::move(socket)), server_(server) {}

  void Start() { DoRead(); }

  // Engine side, on the engine's executor: notes that the sequence has `generated` tokens
  // now; returns whether tokens were already noted and not yet delivered.
  bool MarkTokens(int generated, bool finished) {
    marked_state_.store(static_cast<int64_t>(generated) * 2 + (finished ? 1 : 0),
                        std::memory_order_relaxed);
    return marked_.exchange(true, std::memory_order_acq_rel);
  }
  // Then, on this session's executor: writes what was noted (delivering the same state twice
  // is harmless).
  void DeliverTokens() {
    marked_.exchange(false, std::memory_order_acq_rel);
    const int64_t state = marked_state_.load(std::memory_order_relaxed);
    OnTokens(static_cast<int>(state / 2), (state & 1) != 0);
  }

  asio::any_io_executor executor() { return socket_.get_executor(); }

 private:
  void DoRead();
  void OnHeader(const beast::error_code& ec);
  void OnRead(const beast::error_code& ec);
  void Handle();
  void HandleGeneration(Api api, const std::string& body);
  // Sends a complete response; `close` ends the connection after it.
  void Respond(int status, std::string_view content_type, std::string_view body,
               std::string_view extra_headers = {});
  void RespondError(const ApiError& error, std::string_view extra_headers = {});
  void Enqueue(std::string_view bytes);
  void Flush();
  void OnWrite(const beast::error_code& ec);
  void Linger();

  tcp::socket socket_;
  SimulatorServer::Impl* server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool keep_alive_ = true;
  bool close_after_ = false;
  bool response_done_ = false;  // the current response's last bytes are queued
  std::string pending_;
  std::string inflight_;
  bool writing_ = false;
  bool closed_ = false;

  // The generation in progress.
  std::optional<ResponseFormatter> formatter_;
  bool generating_ = false;
  bool streaming_ = false;
  bool chunked_ = true;
  SeqId seq_ = 0;
  int emitted_ = 0;
  int output_tokens_ = 0;
  std::string linger_buf_;

  // Written by MarkTokens on the engine's executor, read by DeliverTokens on this one.
  std::atomic<bool> marked_{false};
  std::atomic<int64_t> marked_state_{0};  // generated * 2 + finished

  void OnTokens(int generated, bool finished);
};

// ---------------------------------------------------------------- Session

void Session::DoRead() {
  parser_.emplace();
  parser_->body_limit(server_->options().max_body_bytes);
  parser_->header_limit(kHeaderLimit);
  http::async_read_header(
      socket_, buffer_, *parser_,
      [self = shared_from_this()](const beast::error_code& ec, size_t) { self->OnHeader(ec); });
}

void Session::OnHeader(const beast::error_code& ec) {
  if (ec == http::error::end_of_stream || ec == asio::error::eof ||
      ec == asio::error::connection_reset || ec == asio::error::operation_aborted) {
    closed_ = true;
    return;
  }
  if (ec) {
    keep_alive_ = false;
    if (ec == http::error::header_limit) {
      return RespondError(MakeError(431, "request headers too large"));
    }
    if (ec == http::error::body_limit) {  // Beast checks Content-Length with the header
      return RespondError(MakeError(413, absl::StrCat("request body is over the limit of ",
                                                      server_->options().max_body_bytes,
                                                      " bytes")));
    }
    return RespondError(MakeError(400, absl::StrCat("malformed HTTP request: ", ec.message())));
  }
  auto& req = parser_->get();
  const auto length = parser_->content_length();
  if (length && *length > server_->options().max_body_bytes) {
    keep_alive_ = false;
    return RespondError(MakeError(
        413, absl::StrCat("request body of ", *length, " bytes is over the limit of ",
                          server_->options().max_body_bytes, " bytes")));
  }
  auto expect = req.find(http::field::expect);
  if (expect != req.end() && beast::iequals(expect->value(), "100-continue")) {
    // curl waits up to a second for this before sending a large body.
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    asio::async_write(socket_, asio::buffer(kContinue.data(), kContinue.size()),
                      [self = shared_from_this()](const beast::error_code& wec, size_t) {
                        if (wec) {
                          self->closed_ = true;
                          return;
                        }
                        http::async_read(self->socket_, self->buffer_, *self->parser_,
                                         [self](const beast::error_code& rec, size_t) {
                                           self->OnRead(rec);
                                         });
                      });
    return;
  }
  http::async_read(socket_, buffer_, *parser_,
                   [self = shared_from_this()](const beast::error_code& rec, size_t) {
                     self->OnRead(rec);
                   });
}

void Session::OnRead(const beast::error_code& ec) {
  if (ec == http::error::end_of_stream || ec == asio::error::eof ||
      ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
      ec == http::error::partial_message) {
    closed_ = true;
    return;
  }
  if (ec) {
    keep_alive_ = false;
    if (ec == http::error::body_limit) {
      return RespondError(MakeError(413, absl::StrCat("request body is over the limit of ",
                                                      server_->options().max_body_bytes,
                                                      " bytes")));
    }
    return RespondError(MakeError(400, absl::StrCat("malformed HTTP request: ", ec.message())));
  }
  Handle();
}

void Session::Handle() {
  auto& req = parser_->get();
  keep_alive_ = req.keep_alive();
  std::string_view target(req.target().data(), req.target().size());
  std::string_view path = target, query;
  if (size_t q = target.find('?'); q != std::string_view::npos) {
    path = target.substr(0, q);
    query = target.substr(q + 1);
  }
  const http::verb method = req.method();
  auto wrong_method = [&](std::string_view allow) {
    RespondError(MakeError(405, absl::StrCat("Method ", AV(req.method_string()),
                                             " not allowed on ", AV(path), "; use ", AV(allow))),
                 absl::StrCat("allow: ", AV(allow), "\r\n"));
  };

  if (path == "/v1/completions" || path == "/v1/chat/completions") {
    if (method != http::verb::post) return wrong_method("POST");
    return HandleGeneration(path == "/v1/completions" ? Api::kCompletions
                                                      : Api::kChatCompletions,
                            req.body());
  }
  if (path == "/tokenize") {
    if (method != http::verb::post) return wrong_method("POST");
    std::string body;
    if (auto err = Tokenize(req.body(), server_->options().serving, &body)) {
      return RespondError(*err);
    }
    return Respond(200, "application/json", body);
  }
  if (path == "/health") {
    if (method != http::verb::get && method != http::verb::head) return wrong_method("GET");
    if (server_->draining()) return RespondError(MakeError(503, "draining"));
    return Respond(200, "", "");
  }
  if (path == "/v1/models") {
    if (method != http::verb::get) return wrong_method("GET");
    return Respond(200, "application/json", server_->models_body());
  }
  if (path == "/metrics") {
    if (method != http::verb::get) return wrong_method("GET");
    return Respond(200, "text/plain; version=0.0.4; charset=utf-8", server_->MetricsText());
  }
  if (path == "/sim/capacity") {
    if (method != http::verb::get) return wrong_method("GET");
    std::optional<ApiError> err;
    std::string body = server_->CapacityBody(query, &err);
    if (err) return RespondError(*err);
    return Respond(200, "application/json", body);
  }
  RespondError(MakeError(404, absl::StrCat("Not Found: ", AV(req.method_string()),
                                           " ", AV(path))));
}

void Session::HandleGeneration(Api api, const std::string& body) {
  if (server_->draining()) {
    keep_alive_ = false;
    server_->CountRequest(false);
    return RespondError(MakeError(503, "the server is shutting down"));
  }
  const ServerOptions& opt = server_->options();
  GenerationRequest request;
  if (auto err = ParseGenerationRequest(api, body, opt.serving, &request)) {
    server_->CountRequest(false);
    return RespondError(*err);
  }
  const EngineParams& ep = opt.engine;
  if (ep.kv_cache_tokens > 0 &&
      static_cast<int64_t>(request.prompt_tokens) + request.max_tokens > ep.kv_cache_tokens) {
    server_->CountRequest(false);
    return RespondError(MakeError(
        400,
        absl::StrCat("prompt (", request.prompt_tokens, ") + max_tokens (", request.max_tokens,
                     ") tokens exceed the KV cache of ", ep.kv_cache_tokens, " tokens"),
        "max_tokens"));
  }
  seq_ = server_->NextId();
  const uint64_t eos_seed =
      request.seed ? static_cast<uint64_t>(*request.seed) : opt.seed * 0x9E3779B97F4A7C15ull + seq_;
  output_tokens_ = ChooseOutputTokens(request, opt.eos_probability, eos_seed);
  const std::string id = absl::StrFormat(
      "%s%016x%016x", api == Api::kChatCompletions ? "chatcmpl-" : "cmpl-",
      opt.seed * 0xD1B54A32D192ED03ull, seq_);
  formatter_.emplace(request, id, UnixSeconds(), opt.serving.model, output_tokens_);
  streaming_ = request.stream;
  chunked_ = parser_->get().version() >= 11;
  generating_ = true;
  emitted_ = 0;
  server_->OnRequestStarted();
  if (streaming_) {
    if (!chunked_) keep_alive_ = false;
    std::string head = absl::StrCat(
        "HTTP/1.1 200 OK\r\nserver: mstperf-simulator\r\n"
        "content-type: text/event-stream; charset=utf-8\r\ncache-control: no-cache\r\n",
        chunked_ ? "transfer-encoding: chunked\r\n" : "",
        keep_alive_ ? "" : "connection: close\r\n", "\r\n");
    close_after_ = !keep_alive_;
    Enqueue(head);
  }
  server_->Submit(shared_from_this(), seq_, request.prompt_tokens, output_tokens_);
}

void Session::OnTokens(int generated, bool finished) {
  if (!generating_ || closed_ || generated <= emitted_) return;
  if (streaming_) {
    thread_local std::string events;
    events.clear();
    formatter_->AppendStreamEvents(emitted_, generated, &events);
    if (chunked_) {
      AppendChunk(events, &pending_);
      if (finished) pending_.append("0\r\n\r\n");
    } else {
      pending_.append(events);
    }
  }
  emitted_ = generated;
  if (finished) {
    generating_ = false;
    server_->CountRequest(true);
    if (streaming_) {
      response_done_ = true;
      Flush();
    } else {
      Respond(200, "application/json", formatter_->FullBody());
    }
    return;
  }
  Flush();
}

void Session::Respond(int status, std::string_view content_type, std::string_view body,
                      std::string_view extra_headers) {
  close_after_ = !keep_alive_;
  Enqueue(RawResponse(status, content_type, body, close_after_, extra_headers));
  response_done_ = true;
  Flush();
}

void Session::RespondError(const ApiError& error, std::string_view extra_headers) {
  Respond(error.http_status, "application/json", ErrorBody(error), extra_headers);
}

void Session::Enqueue(std::string_view bytes) { pending_.append(bytes); }

void Session::Flush() {
  if (writing_ || pending_.empty() || closed_) return;
  // Fast path: the socket buffer nearly always has room for a step's events, so write them
  // now; no asynchronous operation, handler or completion round trip per token.
  beast::error_code ec;
  const size_t n = socket_.write_some(asio::buffer(pending_), ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) ec = {};
  if (ec) return OnWrite(ec);
  if (n == pending_.size()) {
    pending_.clear();
    return OnWrite(ec);
  }
  pending_.erase(0, n);
  writing_ = true;
  inflight_.clear();
  std::swap(inflight_, pending_);
  asio::async_write(socket_, asio::buffer(inflight_),
                    [self = shared_from_this()](const beast::error_code& ec, size_t) {
                      self->OnWrite(ec);
                    });
}

void Session::OnWrite(const beast::error_code& ec) {
  writing_ = false;
  if (ec) {
    closed_ = true;
    if (generating_) {
      // The client went away mid-generation: free its slot.
      generating_ = false;
      server_->Cancel(seq_);
      server_->OnRequestFinished();
    } else if (formatter_) {
      server_->OnRequestFinished();
      formatter_.reset();
    }
    beast::error_code ignored;
    socket_.close(ignored);
    return;
  }
  if (!pending_.empty()) return Flush();
  if (!response_done_) return;
  response_done_ = false;
  if (formatter_ && !generating_) {
    formatter_.reset();
    server_->OnRequestFinished();
  }
  if (close_after_) return Linger();
  DoRead();
}

void Session::Linger() {
  // Half-close and read what the client still sends, so that closing with unread input does
  // not reset the connection before the client has read the response.
  beast::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
  linger_buf_.resize(16 * 1024);
  socket_.async_read_some(asio::buffer(linger_buf_),
                          [self = shared_from_this()](const beast::error_code& ec, size_t) {
                            if (ec) {
                              beast::error_code ignored2;
                              self->closed_ = true;
                              self->socket_.close(ignored2);
                              return;
                            }
                            self->Linger();
                          });
}

// ---------------------------------------------------------------- Impl

SimulatorServer::Impl::Impl(ServerOptions options)
    : options_(std::move(options)),
      ioc_(options_.threads),
      acceptor_(ioc_),
      accept_retry_timer_(ioc_),
      engine_executor_(options_.threads > 1 ? asio::any_io_executor(asio::make_strand(ioc_))
                                            : asio::any_io_executor(ioc_.get_executor())),
      engine_(options_.engine),
      t0_(Clock::now()),
      step_timer_(engine_executor_),
      registry_(std::make_shared<prometheus::Registry>()) {
  models_body_ = ModelsBody(options_.serving, UnixSeconds());
  auto gauge = [&](const char* name, const char* help) {
    return &prometheus::BuildGauge().Name(name).Help(help).Register(*registry_).Add({});
  };
  running_ = gauge("mstperf_simulator_running_sequences", "Sequences in the running batch.");
  waiting_ = gauge("mstperf_simulator_waiting_sequences", "Sequences in the waiting queue.");
  vllm_running_ = gauge("vllm:num_requests_running", "Number of requests running (vLLM name).");
  vllm_waiting_ = gauge("vllm:num_requests_waiting", "Number of requests waiting (vLLM name).");
  vllm_cache_ = gauge("vllm:gpu_cache_usage_perc",
                      "KV-cache usage, a fraction in [0, 1] (vLLM name).");
  generated_ = &prometheus::BuildCounter()
                    .Name("mstperf_simulator_generated_tokens_total")
                    .Help("Tokens generated by the engine.")
                    .Register(*registry_)
                    .Add({});
  late_steps_ = &prometheus::BuildCounter()
                     .Name("mstperf_simulator_late_steps_total")
                     .Help("Steps that ended while the server was behind the model's timeline; "
                           "their tokens were written together with the next step's.")
                     .Register(*registry_)
                     .Add({});
  auto& requests = prometheus::BuildCounter()
                       .Name("mstperf_simulator_requests_total")
                       .Help("Generation requests by outcome (ok = completed, error = refused).")
                       .Register(*registry_);
  requests_ok_ = &requests.Add({{"status", "ok"}});
  requests_error_ = &requests.Add({{"status", "error"}});
  step_duration_ = &prometheus::BuildHistogram()
                        .Name("mstperf_simulator_step_duration_seconds")
                        .Help("Modelled duration of each engine step.")
                        .Register(*registry_)
                        .Add({}, prometheus::Histogram::BucketBoundaries{
                                     0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1});
  events_.reserve(options_.engine.max_num_seqs);
}

absl::Status SimulatorServer::Impl::Start() {
  beast::error_code ec;
  auto address = asio::ip::make_address(options_.host, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("bad --host ", options_.host));
  tcp::endpoint endpoint(address, static_cast<unsigned short>(options_.port));
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options_.host, ":", options_.port, ": ", ec.message()));
  }
  port_ = acceptor_.local_endpoint().port();
  UpdateGauges();
  DoAccept();
  for (int i = 0; i < options_.threads; ++i) {
    threads_.emplace_back([this] { ioc_.run(); });
  }
  return absl::OkStatus();
}

void SimulatorServer::Impl::DoAccept() {
  auto executor = options_.threads > 1 ? asio::any_io_executor(asio::make_strand(ioc_))
                                       : asio::any_io_executor(ioc_.get_executor());
  acceptor_.async_accept(executor, [this](const beast::error_code& ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (!ec) {
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      socket.non_blocking(true, ignored);  // for Session::Flush's direct writes
      std::make_shared<Session>(std::move(socket), this)->Start();
      DoAccept();
      return;
    }
    // Out of file descriptors, typically: retry shortly instead of spinning.
    MSTPERF_LOG(Warning) << "accept: " << ec.message() << "; retrying in 50 ms";
    accept_retry_timer_.expires_after(std::chrono::milliseconds(50));
    accept_retry_timer_.async_wait([this](const boost::system::error_code& wec) {
      if (!wec) DoAccept();
    });
  });
}

void SimulatorServer::Impl::Submit(std::shared_ptr<Session> session, SeqId id, int in,
                                   int out) {
  asio::dispatch(engine_executor_, [this, session = std::move(session), id, in, out]() mutable {
    if (absl::Status s = engine_.Submit(id, in, out); !s.ok()) {
      // Validated by the session already; a failure here is a bug.
      MSTPERF_LOG(Fatal) << "engine refused a validated request: " << s;
    }
    active_.emplace(id, std::move(session));
    if (!engine_.in_step()) {
      StartStep(NowMs());
    } else {
      waiting_->Set(engine_.num_waiting());
      vllm_waiting_->Set(engine_.num_waiting());
    }
  });
}

void SimulatorServer::Impl::Cancel(SeqId id) {
  asio::dispatch(engine_executor_, [this, id] {
    engine_.Cancel(id);
    active_.erase(id);
    UpdateGauges();
  });
}

void SimulatorServer::Impl::StartStep(double start_ms) {
  BeginStep(start_ms);
  ArmTimer();
}

void SimulatorServer::Impl::BeginStep(double start_ms) {
  const double duration = engine_.StartStep(start_ms);
  step_end_ms_ = start_ms + duration;
  step_duration_->Observe(duration / 1000.0);
  UpdateGauges();
}

void SimulatorServer::Impl::ArmTimer() {
  step_timer_.expires_at(t0_ + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double, std::milli>(step_end_ms_)));
  step_timer_.async_wait([this](const boost::system::error_code& ec) { OnStepEnd(ec); });
}

void SimulatorServer::Impl::OnStepEnd(const boost::system::error_code& ec) {
  if (ec) return;
  events_.clear();
  engine_.FinishStep(&events_);
  // Catch up: if the timer fired late, the steps already due run now, and all their tokens go
  // out together (one write per stream), as a real server's output loop does when it falls
  // behind. Capacity stays that of the model; only token timing gets coarser.
  const double now = NowMs();
  while (engine_.HasWork()) {
    // Keep to the model's timeline unless we are far behind it.
    BeginStep(std::max(step_end_ms_, now - options_.max_step_lag_ms));
    if (step_end_ms_ > now || !options_.coalesce_late_steps) {
      ArmTimer();
      break;
    }
    late_steps_->Increment();
    engine_.FinishStep(&events_);
  }
  generated_->Increment(static_cast<double>(events_.size()));
  // Coalesce per sequence, then hand each session its latest state once.
  for (const TokenEvent& e : events_) {
    auto it = active_.find(e.id);
    if (it == active_.end()) continue;
    Session* s = it->second.get();
    if (!s->MarkTokens(e.generated, e.finished)) dirty_.push_back(it->second);
    if (e.finished) active_.erase(it);
  }
  for (std::shared_ptr<Session>& s : dirty_) {
    if (options_.threads > 1) {
      auto executor = s->executor();  // before `s` is moved into the handler
      asio::dispatch(executor, [s = std::move(s)] { s->DeliverTokens(); });
    } else {
      s->DeliverTokens();
    }
  }
  dirty_.clear();
  if (!engine_.HasWork()) UpdateGauges();
}

void SimulatorServer::Impl::UpdateGauges() {
  const double running = engine_.num_running(), waiting = engine_.num_waiting();
  running_->Set(running);
  vllm_running_->Set(running);
  waiting_->Set(waiting);
  vllm_waiting_->Set(waiting);
  vllm_cache_->Set(engine_.kv_usage());
}

std::string SimulatorServer::Impl::MetricsText() {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

std::string SimulatorServer::Impl::CapacityBody(std::string_view query,
                                                std::optional<ApiError>* error) {
  int in = -1, out = -1;
  bool has_in = false, has_out = false;
  for (absl::string_view kv : absl::StrSplit(AV(query), '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> p =
        absl::StrSplit(kv, absl::MaxSplits('=', 1));
    int* target = p.first == "input_tokens" ? &in : p.first == "output_tokens" ? &out : nullptr;
    if (target == nullptr) continue;
    (p.first == "input_tokens" ? has_in : has_out) = true;
    if (!absl::SimpleAtoi(p.second, target)) {
      *error = MakeError(400, absl::StrCat("'", p.first, "' must be an integer"),
                         std::string(p.first));
      return "";
    }
  }
  if (!has_in || !has_out) {
    *error = MakeError(400, "input_tokens and output_tokens are required query parameters",
                       has_in ? "output_tokens" : "input_tokens");
    return "";
  }
  absl::StatusOr<Capacity> c = ComputeCapacity(options_.engine, in, out);
  if (!c.ok()) {
    *error = MakeError(400, std::string(c.status().message()));
    return "";
  }
  const EngineParams& p = options_.engine;
  nlohmann::json j = {
      {"input_tokens", in},
      {"output_tokens", out},
      {"capacity_req_min", c->capacity_req_per_min},
      {"capacity_tokens_per_s", c->capacity_tokens_per_s},
      {"max_concurrency", c->max_concurrency},
      {"bound_by", c->bound_by},
      {"full_batch_step_ms", c->full_batch_step_ms},
      {"unloaded_ttft_ms", c->unloaded_ttft_ms},
      {"unloaded_e2e_ms", c->unloaded_e2e_ms},
      {"formula", "60000*N/(out*(a+b*N)+c*in*N), N=min(max_num_seqs,floor(kv/(in+out)))"},
      {"params",
       {{"model", options_.serving.model},
        {"max_model_len", options_.serving.max_model_len},
        {"max_num_seqs", p.max_num_seqs},
        {"step_base_ms", p.step_base_ms},
        {"step_per_seq_ms", p.step_per_seq_ms},
        {"prefill_per_token_ms", p.prefill_per_token_ms},
        {"kv_cache_tokens", p.kv_cache_tokens},
        {"jitter", p.jitter},
        {"seed", p.seed},
        {"eos_probability", options_.eos_probability}}}};
  return j.dump();
}

void SimulatorServer::Impl::Shutdown(absl::Duration grace) {
  if (stopped_) return;
  stopped_ = true;
  if (!threads_.empty()) {
    draining_ = true;
    asio::post(ioc_, [this] {
      beast::error_code ignored;
      acceptor_.close(ignored);
      accept_retry_timer_.cancel();
    });
    const absl::Time deadline = absl::Now() + grace;
    while (open_responses_.load() > 0 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    if (open_responses_.load() > 0) {
      MSTPERF_LOG(Warning) << open_responses_.load() << " responses cut off at shutdown";
    }
  }
  ioc_.stop();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

// ---------------------------------------------------------------- SimulatorServer

SimulatorServer::SimulatorServer(ServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
SimulatorServer::~SimulatorServer() { impl_->Shutdown(absl::ZeroDuration()); }
absl::Status SimulatorServer::Start() { return impl_->Start(); }
int SimulatorServer::port() const { return impl_->port(); }
void SimulatorServer::Shutdown(absl::Duration grace) { impl_->Shutdown(grace); }

}  // namespace mstperf::simulator
