// HTTP/2 and TLS end to end: mstperf-loadgen (the service, and the Runner in process) against
// the real Debian nginx as a TLS + HTTP/2 reverse proxy (proxy_buffering off) in front of the
// real mstperf-simulator. A throw-away CA and server certificate are made with openssl at test
// time. Checked: h2 over TLS with the CA bundle (tokens, per-token times, the negotiated
// version, seen from both ends), the certificate refused without the bundle (the probe's
// FAILED_PRECONDITION and the per-request error), HTTP/1.1 over TLS, h2c with prior knowledge,
// and the Bearer key read from a file (a wrong one is a 401 counted as an error).
// Skipped only when nginx or openssl is missing.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <curl/curl.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "mstperf/v1/loadgen.grpc.pb.h"
#include "services/common/testing/process.h"
#include "services/loadgen/runner.h"

extern char** environ;

namespace mstperf::loadgen {
namespace {

using mstperf::testing::ServiceProcess;

constexpr char kNginx[] = "/usr/sbin/nginx";
constexpr char kKey[] = "sk-tls-test-7f3a";  // what nginx accepts
constexpr uint32_t kOutputTokens = 20;
constexpr double kStepMs = 5;  // the simulator's step time: one token per step per sequence

bool Executable(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

std::string OpensslPath() {
  for (const char* p : {"/usr/bin/openssl", "/usr/local/bin/openssl", "/bin/openssl"}) {
    if (Executable(p)) return p;
  }
  return "";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// A port nobody listens on right now (bind to 0, read it, close). nginx binds it a moment
// later; a clash with another process is detected and retried by the caller.
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

bool Accepts(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

// A self-signed CA and a server certificate for 127.0.0.1/localhost signed by it, in `dir`.
absl::Status MakeCertificates(const std::string& openssl, const std::string& dir) {
  WriteFile(dir + "/server.ext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n");
  const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  const std::string script = absl::StrCat(
      "cd '", dir, "' && '", openssl, "' req -x509", ec,
      " -keyout ca.key -out ca.crt -days 2 -subj '/CN=mstperf test CA'"
      " -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign'"
      " && '", openssl, "' req", ec, " -keyout server.key -out server.csr -subj '/CN=localhost'",
      " && '", openssl, "' x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial",
      " -out server.crt -days 2 -extfile server.ext > openssl.log 2>&1");
  if (std::system(script.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("openssl failed: ", ReadFile(dir + "/openssl.log")));
  }
  return absl::OkStatus();
}

// The real nginx in the foreground (daemon off) with its own configuration in a temp dir:
// one TLS port (HTTP/2 and HTTP/1.1 through ALPN) and one cleartext HTTP/2 port (h2c, prior
// knowledge only), both proxying unbuffered to the simulator and answering 401 unless the
// request carries "Authorization: Bearer <kKey>". The access log records, per request, the
// port, the protocol nginx spoke with the client, the status and the loadgen's request index.
class Nginx {
 public:
  static absl::StatusOr<std::unique_ptr<Nginx>> Start(const std::string& dir, int upstream_port) {
    absl::Status last;
    for (int attempt = 0; attempt < 5; ++attempt) {
      std::unique_ptr<Nginx> n(new Nginx(dir));
      n->tls_port_ = FreePort();
      n->h2c_port_ = FreePort();
      if (n->tls_port_ == n->h2c_port_) continue;
      last = n->Launch(upstream_port);
      if (last.ok()) return n;
      // Another process took a port between FreePort() and nginx's bind: new ports.
      if (!absl::StrContains(last.message(), "in use")) return last;
    }
    return last;
  }

  ~Nginx() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);  // fast shutdown; the master stops its worker
    for (int i = 0; i < 500; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }

  int tls_port() const { return tls_port_; }
  int h2c_port() const { return h2c_port_; }
  std::string ErrorLog() const { return ReadFile(dir_ + "/error.log"); }

  // Access log lines: port -> (protocol, status) per request index ("-" for probes).
  struct Hit {
    int port = 0;
    std::string protocol;
    int status = 0;
    std::string request;
  };
  std::vector<Hit> Hits() const {
    std::vector<Hit> hits;
    for (absl::string_view line : absl::StrSplit(ReadFile(dir_ + "/access.log"), '\n')) {
      std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (f.size() != 4) continue;
      hits.push_back({std::atoi(f[0].c_str()), f[1], std::atoi(f[2].c_str()), f[3]});
    }
    return hits;
  }

 private:
  explicit Nginx(std::string dir) : dir_(std::move(dir)) {}

  absl::Status Launch(int upstream_port) {
    const std::string& d = dir_;
    const std::string location = absl::StrCat(R"(
    location / {
      if ($http_authorization != "Bearer )", kKey, R"(") {
        return 401 '{"error":{"message":"missing or wrong API key"}}';
      }
      proxy_pass http://simulator;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    })");
    const std::string conf = absl::StrCat(
        "daemon off;\nworker_processes 1;\nerror_log ", d, "/error.log info;\npid ", d,
        "/nginx.pid;\nevents { worker_connections 1024; }\nhttp {\n",
        "  log_format probe '$server_port $server_protocol $status $http_x_mstperf_request';\n",
        "  access_log ", d, "/access.log probe;\n",
        "  client_body_temp_path ", d, "/tmp/body;\n  proxy_temp_path ", d, "/tmp/proxy;\n",
        "  fastcgi_temp_path ", d, "/tmp/fastcgi;\n  uwsgi_temp_path ", d, "/tmp/uwsgi;\n",
        "  scgi_temp_path ", d, "/tmp/scgi;\n",
        "  upstream simulator { server 127.0.0.1:", upstream_port, "; keepalive 32; }\n",
        "  server {\n    listen 127.0.0.1:", tls_port_, " ssl http2;\n",
        "    ssl_certificate ", d, "/server.crt;\n    ssl_certificate_key ", d, "/server.key;\n",
        location, "\n  }\n",
        "  server {\n    listen 127.0.0.1:", h2c_port_, " http2;\n", location, "\n  }\n}\n");
    WriteFile(d + "/nginx.conf", conf);
    WriteFile(d + "/error.log", "");
    std::vector<std::string> args = {kNginx, "-c", d + "/nginx.conf", "-p", d + "/", "-e",
                                     d + "/error.log"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    const std::string out = d + "/nginx.out";
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    const int rc = posix_spawn(&pid_, kNginx, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) return absl::InternalError(absl::StrCat("cannot start nginx: ", strerror(rc)));
    for (int i = 0; i < 500; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return absl::InternalError(
            absl::StrCat("nginx exited: ", ReadFile(out), ErrorLog()));
      }
      if (Accepts(tls_port_) && Accepts(h2c_port_)) return absl::OkStatus();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return absl::DeadlineExceededError(absl::StrCat("nginx not listening: ", ErrorLog()));
  }

  std::string dir_;
  pid_t pid_ = -1;
  int tls_port_ = 0, h2c_port_ = 0;
};

class TlsH2Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!Executable(kNginx)) {
      skip_ = "nginx is not installed (/usr/sbin/nginx; scripts/deps.sh installs nginx-light)";
      return;
    }
    const std::string openssl = OpensslPath();
    if (openssl.empty()) {
      skip_ = "openssl is not installed";
      return;
    }
    dir_ = new std::string(mstperf::testing::MakeTempDir("mstperf-tls-h2"));
    // nginx's worker may run as another user when the test runs as root.
    chmod(dir_->c_str(), 0755);
    mkdir((*dir_ + "/tmp").c_str(), 0755);
    absl::Status certs = MakeCertificates(openssl, *dir_);
    ASSERT_TRUE(certs.ok()) << certs;
    WriteFile(*dir_ + "/key.txt", std::string(kKey) + "\n");
    WriteFile(*dir_ + "/wrong-key.txt", "sk-not-the-key\n");

    auto sim = ServiceProcess::Start(
        MSTPERF_BIN_DIR "/mstperf-simulator",
        {"--port=0", "--host=127.0.0.1", "--max_num_seqs=64",
         absl::StrCat("--step_base_ms=", kStepMs), "--step_per_seq_ms=0.05"});
    ASSERT_TRUE(sim.ok()) << sim.status();
    simulator_ = sim->release();
    auto lg = ServiceProcess::Start(MSTPERF_BIN_DIR "/mstperf-loadgen",
                                    {"--port=0", "--metrics_port=-1", "--host=127.0.0.1"});
    ASSERT_TRUE(lg.ok()) << lg.status();
    loadgen_ = lg->release();
    auto nginx = Nginx::Start(*dir_, simulator_->port("http_port"));
    ASSERT_TRUE(nginx.ok()) << nginx.status();
    nginx_ = nginx->release();
  }

  static void TearDownTestSuite() {
    delete nginx_;
    delete loadgen_;
    delete simulator_;
    delete dir_;
    nginx_ = nullptr;
    loadgen_ = nullptr;
    simulator_ = nullptr;
    dir_ = nullptr;
  }

  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    ASSERT_NE(nginx_, nullptr) << "set-up failed";
  }

  static std::string TlsUrl() { return absl::StrCat("https://127.0.0.1:", nginx_->tls_port()); }
  static std::string H2cUrl() { return absl::StrCat("http://127.0.0.1:", nginx_->h2c_port()); }

  static v1::IterationSpec Spec(const std::string& url, bool http2) {
    v1::IterationSpec s;
    s.set_iteration_id("tls-h2");
    v1::Target* t = s.mutable_target();
    t->set_url(url);
    t->set_http2(http2);
    t->set_ca_bundle_path(*dir_ + "/ca.crt");
    t->set_api_key_file(*dir_ + "/key.txt");
    t->set_connect_timeout_s(5);
    t->set_total_timeout_s(30);
    s.mutable_tokens()->mutable_input()->set_min(30);
    s.mutable_tokens()->mutable_input()->set_max(60);
    s.mutable_tokens()->mutable_output()->set_min(kOutputTokens);
    s.mutable_tokens()->mutable_output()->set_max(kOutputTokens);
    s.set_req_min(900);  // 15 per second
    s.set_duration_s(1);
    s.set_arrival(v1::ARRIVAL_CONSTANT);
    s.set_seed(5);
    s.mutable_prompt()->set_use_tokenize_endpoint(true);
    return s;
  }

  struct Run {
    grpc::Status status;
    v1::IterationStarted started;
    v1::IterationSummary summary;
    std::vector<v1::RequestRecord> records;
  };

  static Run Call(const v1::IterationSpec& spec) {
    Run run;
    auto stub = v1::LoadGenerator::NewStub(
        grpc::CreateChannel(loadgen_->grpc_address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto reader = stub->RunIteration(&ctx, spec);
    v1::IterationEvent ev;
    while (reader->Read(&ev)) {
      if (ev.has_started()) run.started = ev.started();
      if (ev.has_summary()) run.summary = ev.summary();
      for (const auto& r : ev.records().records()) run.records.push_back(r);
    }
    run.status = reader->Finish();
    return run;
  }

  // Every request streamed every token, one chunk per simulator step, over `http_version`;
  // nginx saw each of them with `protocol` on `port`.
  static void ExpectEveryTokenStreamed(const Run& run, uint32_t http_version,
                                       const std::string& protocol, int port) {
    ASSERT_TRUE(run.status.ok()) << run.status.error_message() << "\n" << loadgen_->LogTail();
    EXPECT_EQ(run.started.model(), "mstperf-sim");
    EXPECT_TRUE(run.started.prompt_tokens_exact());
    ASSERT_EQ(run.records.size(), run.started.planned_requests());
    ASSERT_GE(run.records.size(), 14u);
    EXPECT_EQ(run.summary.totals().completed(), run.records.size());
    EXPECT_EQ(run.summary.totals().failed(), 0u);
    EXPECT_EQ(run.summary.end_reason(), "completed");
    std::map<std::string, Nginx::Hit> hits;
    for (const Nginx::Hit& h : nginx_->Hits()) {
      if (h.port == port) hits[h.request] = h;
    }
    for (const v1::RequestRecord& r : run.records) {
      SCOPED_TRACE(::testing::Message() << "request " << r.request_idx() << ": " << r.error());
      ASSERT_TRUE(r.success());
      EXPECT_EQ(r.http_status(), 200);
      EXPECT_EQ(r.http_version(), http_version);
      EXPECT_EQ(r.prompt_tokens(), r.requested_input_tokens());
      EXPECT_EQ(r.completion_tokens(), kOutputTokens);
      ASSERT_EQ(r.chunk_offset_us_size(), r.chunk_tokens_size());
      ASSERT_GE(r.chunk_offset_us_size(), 2);
      uint32_t sum = 0;
      for (uint32_t t : r.chunk_tokens()) sum += t;
      EXPECT_EQ(sum, kOutputTokens);
      EXPECT_EQ(r.first_token_unix_us(), r.sent_unix_us() + r.chunk_offset_us(0));
      EXPECT_TRUE(std::is_sorted(r.chunk_offset_us().begin(), r.chunk_offset_us().end()));
      // Tokens arrive as the simulator makes them, one step (5 ms) apart, not in one burst at
      // the end (nginx buffering or a client that timestamps reads late would collapse the
      // span). The simulator coalesces steps it ran late into one chunk, so the bound is on
      // the span, and only from below: a loaded host can only stretch it.
      const double span_ms =
          (r.chunk_offset_us(r.chunk_offset_us_size() - 1) - r.chunk_offset_us(0)) / 1000.0;
      EXPECT_GE(span_ms, 0.6 * (kOutputTokens - 1) * kStepMs);
      EXPECT_LE(r.end_unix_us() - r.sent_unix_us(), 20'000'000);
      // nginx's own access log: the request came over `protocol` on this port and got 200.
      auto it = hits.find(std::to_string(r.request_idx()));
      ASSERT_NE(it, hits.end()) << "not in nginx's access log";
      EXPECT_EQ(it->second.protocol, protocol);
      EXPECT_EQ(it->second.status, 200);
    }
  }

  static std::string skip_;
  static std::string* dir_;
  static ServiceProcess* simulator_;
  static ServiceProcess* loadgen_;
  static Nginx* nginx_;
};

std::string TlsH2Test::skip_;
std::string* TlsH2Test::dir_ = nullptr;
ServiceProcess* TlsH2Test::simulator_ = nullptr;
ServiceProcess* TlsH2Test::loadgen_ = nullptr;
Nginx* TlsH2Test::nginx_ = nullptr;

TEST_F(TlsH2Test, Http2OverTlsWithTheCaBundleStreamsEveryToken) {
  Run run = Call(Spec(TlsUrl(), /*http2=*/true));
  ExpectEveryTokenStreamed(run, 20, "HTTP/2.0", nginx_->tls_port());
}

TEST_F(TlsH2Test, Http11OverTls) {
  Run run = Call(Spec(TlsUrl(), /*http2=*/false));
  ExpectEveryTokenStreamed(run, 11, "HTTP/1.1", nginx_->tls_port());
}

TEST_F(TlsH2Test, H2cWithPriorKnowledge) {
  v1::IterationSpec spec = Spec(H2cUrl(), /*http2=*/true);
  spec.mutable_target()->clear_ca_bundle_path();
  Run run = Call(spec);
  const curl_version_info_data* curl = curl_version_info(CURLVERSION_NOW);
  if (curl->version_num >= 0x080000) {
    ExpectEveryTokenStreamed(run, 20, "HTTP/2.0", nginx_->h2c_port());
    return;
  }
  // libcurl 7.x breaks every h2c request that reuses a connection (curl issue #10634; Debian
  // 12 ships 7.88.1): the loadgen refuses up front, naming the field and the version, rather
  // than reporting a run of framing errors as the server's.
  EXPECT_EQ(run.status.error_code(), grpc::FAILED_PRECONDITION) << run.status.error_message();
  EXPECT_NE(run.status.error_message().find("target.http2"), std::string::npos);
  EXPECT_NE(run.status.error_message().find(curl->version), std::string::npos)
      << run.status.error_message();
  EXPECT_TRUE(run.records.empty());
}

TEST_F(TlsH2Test, WithoutTheCaBundleTheProbeFailsNamingTheCertificate) {
  for (bool http2 : {true, false}) {
    SCOPED_TRACE(http2 ? "h2" : "http/1.1");
    v1::IterationSpec spec = Spec(TlsUrl(), http2);
    spec.mutable_target()->clear_ca_bundle_path();  // the system bundle does not know our CA
    Run run = Call(spec);
    EXPECT_EQ(run.status.error_code(), grpc::FAILED_PRECONDITION) << run.status.error_message();
    EXPECT_NE(run.status.error_message().find("certificate"), std::string::npos)
        << run.status.error_message();
    EXPECT_NE(run.status.error_message().find("ca_bundle_path"), std::string::npos)
        << run.status.error_message();
    EXPECT_TRUE(run.records.empty());
    std::cout << "without the CA bundle: " << run.status.error_message() << std::endl;
  }
  // The service is still up and serving.
  Run ok = Call(Spec(TlsUrl(), true));
  EXPECT_TRUE(ok.status.ok()) << ok.status.error_message();
}

TEST_F(TlsH2Test, WithoutTheCaBundleEveryRequestIsAConnectErrorNamingTheCertificate) {
  // The Runner itself (no probe in front of it): each request fails on its own, no crash.
  for (bool http2 : {true, false}) {
    SCOPED_TRACE(http2 ? "h2" : "http/1.1");
    RunOptions o;
    o.target.base_url = TlsUrl();
    o.target.model = "mstperf-sim";
    o.target.http2 = http2;
    o.target.headers.push_back(absl::StrCat("Authorization: Bearer ", kKey));
    o.target.connect_timeout = absl::Seconds(5);
    o.drain_timeout = absl::Seconds(10);
    // Each request opens a connection whose handshake fails; on a loaded host that can put the
    // loop behind by more than the default 1 s lag limit, and a dropped request says nothing
    // about TLS errors.
    o.max_send_lag = absl::ZeroDuration();
    o.warm_connections = 2;
    BodyTemplate body(o.target, true);
    o.make_body = [body](const ScheduledRequest& r) { return body.Build("Text: a b c", r.output_tokens); };
    ScheduleSpec s;
    s.kind = ArrivalKind::kConstant;
    s.rate_per_s = 20;
    s.duration_s = 0.5;
    s.input_min = s.input_max = 4;
    s.output_min = s.output_max = 4;
    Runner runner(std::move(o), *Schedule::Create(s));
    std::vector<RequestResult> results;
    ASSERT_TRUE(runner.Run([&](RequestResult&& r) { results.push_back(std::move(r)); }).ok());
    ASSERT_EQ(results.size(), 10u);
    for (const RequestResult& r : results) {
      EXPECT_FALSE(r.success);
      EXPECT_EQ(r.error_kind, v1::ERROR_KIND_CONNECT) << r.error;
      EXPECT_NE(r.error.find("certificate"), std::string::npos) << r.error;
      EXPECT_EQ(r.http_version, 0u);
      EXPECT_TRUE(r.chunk_offset_us.empty());
    }
    std::cout << "per request without the CA bundle: " << results[0].error << std::endl;
    EXPECT_EQ(runner.counters().failed.load(), 10u);
  }
}

TEST_F(TlsH2Test, AWrongKeyIsA401CountedAsAnError) {
  for (bool http2 : {true, false}) {
    SCOPED_TRACE(http2 ? "h2" : "http/1.1");
    v1::IterationSpec spec = Spec(TlsUrl(), http2);
    spec.mutable_target()->set_model("mstperf-sim");  // GET /v1/models is refused too
    spec.mutable_target()->set_api_key_file(*dir_ + "/wrong-key.txt");
    Run run = Call(spec);
    ASSERT_TRUE(run.status.ok()) << run.status.error_message();
    ASSERT_GE(run.records.size(), 14u);
    for (const v1::RequestRecord& r : run.records) {
      EXPECT_FALSE(r.success());
      EXPECT_EQ(r.error_kind(), v1::ERROR_KIND_HTTP_STATUS);
      EXPECT_EQ(r.http_status(), 401);
      EXPECT_EQ(r.http_version(), http2 ? 20u : 11u);
      EXPECT_NE(r.error().find("wrong API key"), std::string::npos) << r.error();
    }
    EXPECT_EQ(run.summary.totals().failed(), run.records.size());
    EXPECT_EQ(run.summary.totals().completed(), 0u);
  }
}

}  // namespace
}  // namespace mstperf::loadgen
