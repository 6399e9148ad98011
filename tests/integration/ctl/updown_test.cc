// scripts/up.sh and scripts/down.sh start and stop the whole suite, on ports of their own (so a
// suite the developer runs on the default ports is not disturbed).
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "services/common/testing/process.h"
#include "tests/integration/ctl/subprocess.h"

namespace mstperf::ctl::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;

// A port nobody listens on right now (the kernel's choice for port 0).
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

bool Serving(const std::string& address) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  return stub->Check(&ctx, req, &resp).ok() &&
         resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

pid_t PidOf(const std::string& pidfile) {
  int pid = -1;
  std::string text(absl::StripAsciiWhitespace(ReadText(pidfile)));
  return absl::SimpleAtoi(text, &pid) ? pid : -1;
}

TEST(UpDownTest, StartsEverythingIdempotentlyAndStopsIt) {
  const std::string run_dir = mstperf::testing::MakeTempDir("ctl-up-run");
  const std::string results = mstperf::testing::MakeTempDir("ctl-up-results");
  std::map<std::string, int> p;
  for (const char* k : {"sim", "ctl", "ctl_m", "lg0", "lg1", "lg0_m", "lg1_m", "ev", "ev_m"}) {
    p[k] = FreePort();
  }
  const std::map<std::string, std::string> env = {
      {"MSTPERF_RUN_DIR", run_dir},
      {"MSTPERF_RESULTS_DIR", results},
      {"MSTPERF_BIN_DIR", MSTPERF_BIN_DIR},
      {"MSTPERF_UP_SIMULATOR_PORT", absl::StrCat(p["sim"])},
      {"MSTPERF_UP_CONTROLLER_PORT", absl::StrCat(p["ctl"])},
      {"MSTPERF_UP_CONTROLLER_METRICS_PORT", absl::StrCat(p["ctl_m"])},
      {"MSTPERF_UP_LOADGEN_PORTS", absl::StrCat(p["lg0"], " ", p["lg1"])},
      {"MSTPERF_UP_LOADGEN_METRICS_PORTS", absl::StrCat(p["lg0_m"], " ", p["lg1_m"])},
      {"MSTPERF_UP_EVALUATOR_PORT", absl::StrCat(p["ev"])},
      {"MSTPERF_UP_EVALUATOR_METRICS_PORT", absl::StrCat(p["ev_m"])},
      // A variable of the services' own that must not leak into them.
      {"MSTPERF_PORT", "1"},
  };
  const std::string up = std::string(MSTPERF_SOURCE_DIR) + "/scripts/up.sh";
  const std::string down = std::string(MSTPERF_SOURCE_DIR) + "/scripts/down.sh";
  const std::vector<std::string> names = {"simulator", "loadgen-0", "loadgen-1", "evaluator",
                                          "controller"};

  Output o = RunCmd({up}, env, absl::Seconds(90));
  ASSERT_EQ(o.exit_code, 0) << o.out << o.err;
  // One line per service with its address and metrics URL.
  EXPECT_THAT(o.out, AllOf(HasSubstr(absl::StrCat("simulator  http://127.0.0.1:", p["sim"])),
                           HasSubstr(absl::StrCat("loadgen-0  127.0.0.1:", p["lg0"])),
                           HasSubstr(absl::StrCat("http://127.0.0.1:", p["lg1_m"], "/metrics")),
                           HasSubstr(absl::StrCat("evaluator  127.0.0.1:", p["ev"])),
                           HasSubstr(absl::StrCat("controller 127.0.0.1:", p["ctl"])),
                           HasSubstr(absl::StrCat("http://127.0.0.1:", p["ctl_m"], "/metrics"))));
  std::map<std::string, pid_t> pids;
  for (const auto& n : names) {
    pids[n] = PidOf(run_dir + "/" + n + ".pid");
    ASSERT_GT(pids[n], 0) << n;
    EXPECT_EQ(::kill(pids[n], 0), 0) << n;
    EXPECT_TRUE(fs::exists(run_dir + "/logs/" + n + ".log")) << n;
  }
  for (const auto& [name, port] :
       std::vector<std::pair<std::string, int>>{{"controller", p["ctl"]},
                                                {"loadgen-0", p["lg0"]},
                                                {"loadgen-1", p["lg1"]},
                                                {"evaluator", p["ev"]}}) {
    EXPECT_TRUE(Serving(absl::StrCat("127.0.0.1:", port))) << name;
  }
  // The controller is wired to both loadgens and the evaluator: mstperfctl reaches it.
  Output list = RunCmd({CtlPath(), "list", absl::StrCat("--controller=127.0.0.1:", p["ctl"])});
  EXPECT_EQ(list.exit_code, 0) << list.err;

  // Idempotent: a second up leaves the running services alone.
  Output again = RunCmd({up}, env, absl::Seconds(60));
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_THAT(again.err, HasSubstr("controller already running"));
  for (const auto& n : names) EXPECT_EQ(PidOf(run_dir + "/" + n + ".pid"), pids[n]) << n;

  Output d = RunCmd({down}, env, absl::Seconds(90));
  EXPECT_EQ(d.exit_code, 0) << d.out << d.err;
  for (const auto& n : names) {
    EXPECT_THAT(d.out, HasSubstr("stopped " + n));
    EXPECT_FALSE(fs::exists(run_dir + "/" + n + ".pid")) << n;
    // Gone: no live process of ours under that pid (a zombie not yet reaped has no cmdline).
    bool gone = false;
    for (int i = 0; i < 100 && !gone; ++i) {
      gone = ReadText(absl::StrCat("/proc/", pids[n], "/cmdline")).find("mstperf-") ==
             std::string::npos;
      if (!gone) usleep(50'000);
    }
    EXPECT_TRUE(gone) << n;
  }
  Output d2 = RunCmd({down}, env, absl::Seconds(30));
  EXPECT_EQ(d2.exit_code, 0);
  EXPECT_THAT(d2.out, HasSubstr("nothing running"));
}

}  // namespace
}  // namespace mstperf::ctl::testing
