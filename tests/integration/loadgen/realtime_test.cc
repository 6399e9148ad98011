// The loadgen's event loop runs at real-time priority when asked (--realtime_event_loop, which
// make up, the images and the chart pass), and says so when the host refuses: the real mstperf-loadgen process, once as it is started and once with CAP_SYS_NICE
// taken out of its bounding set and RLIMIT_RTPRIO at 0 (util-linux setpriv and prlimit), each
// running a short iteration against the awkward server over gRPC.
#include <grpcpp/grpcpp.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "mstperf/v1/loadgen.grpc.pb.h"
#include "services/common/testing/process.h"
#include "tests/integration/loadgen/awkward_server.h"

namespace mstperf::loadgen {
namespace {

using testing::AwkwardServer;

// Whether a thread of this (test) process may go SCHED_FIFO: the loadgen started from it
// inherits the same capabilities and limits.
bool HostAllowsRealtime() {
  bool ok = false;
  std::thread([&ok] {
    sched_param p{};
    p.sched_priority = 1;
    ok = pthread_setschedparam(pthread_self(), SCHED_FIFO, &p) == 0;
  }).join();
  return ok;
}

v1::IterationSpec Spec(const std::string& url) {
  v1::IterationSpec s;
  s.set_iteration_id("rt-1");
  s.mutable_target()->set_url(url);
  s.mutable_tokens()->mutable_input()->set_min(16);
  s.mutable_tokens()->mutable_input()->set_max(16);
  s.mutable_tokens()->mutable_output()->set_min(4);
  s.mutable_tokens()->mutable_output()->set_max(4);
  s.set_req_min(600);
  s.set_duration_s(1);
  s.set_arrival(v1::ARRIVAL_CONSTANT);
  s.set_seed(3);
  return s;
}

struct Outcome {
  grpc::Status status;
  v1::IterationSummary summary;
  bool got_summary = false;
  std::string log;
};

Outcome RunOne(const std::string& binary, const std::vector<std::string>& args) {
  Outcome out;
  auto p = mstperf::testing::ServiceProcess::Start(binary, args);
  if (!p.ok()) {
    out.status = grpc::Status(grpc::UNAVAILABLE, std::string(p.status().message()));
    return out;
  }
  AwkwardServer server;
  auto stub = v1::LoadGenerator::NewStub(
      grpc::CreateChannel((*p)->grpc_address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  auto reader = stub->RunIteration(&ctx, Spec(server.url()));
  v1::IterationEvent ev;
  while (reader->Read(&ev)) {
    if (ev.has_summary()) {
      out.summary = ev.summary();
      out.got_summary = true;
    }
  }
  out.status = reader->Finish();
  out.log = (*p)->LogTail(20000);
  return out;
}

std::string Warnings(const v1::IterationSummary& s) {
  std::ostringstream o;
  for (const auto& w : s.warnings()) o << w << "\n";
  return o.str();
}

const std::vector<std::string> kArgs = {"--port=0", "--metrics_port=-1", "--host=127.0.0.1"};

TEST(LoadgenRealtime, OnWhenAskedAndTheHostAllowsIt) {
  const bool allowed = HostAllowsRealtime();
  std::vector<std::string> args = kArgs;
  args.push_back("--realtime_event_loop");
  Outcome out = RunOne(MSTPERF_BIN_DIR "/mstperf-loadgen", args);
  ASSERT_TRUE(out.status.ok()) << out.status.error_message() << "\n" << out.log;
  ASSERT_TRUE(out.got_summary);
  EXPECT_EQ(out.summary.realtime_event_loop(), allowed) << Warnings(out.summary);
  const bool warned = Warnings(out.summary).find("normal priority") != std::string::npos;
  EXPECT_EQ(warned, !allowed) << Warnings(out.summary);
}

TEST(LoadgenRealtime, WithoutCapSysNiceItFallsBackAndSaysSoInLogAndSummary) {
  // setpriv drops CAP_SYS_NICE from the bounding and inheritable sets, so not even root gets it
  // back at exec; prlimit makes sure no RLIMIT_RTPRIO allows SCHED_FIFO instead.
  for (const char* tool : {"/usr/bin/setpriv", "/usr/bin/prlimit"}) {
    ASSERT_EQ(access(tool, X_OK), 0) << tool << " is missing (Debian's util-linux)";
  }
  std::vector<std::string> args = {"--bounding-set=-sys_nice", "--inh-caps=-sys_nice", "--",
                                   "/usr/bin/prlimit", "--rtprio=0",
                                   MSTPERF_BIN_DIR "/mstperf-loadgen", "--realtime_event_loop"};
  args.insert(args.end(), kArgs.begin(), kArgs.end());
  Outcome out = RunOne("/usr/bin/setpriv", args);
  ASSERT_TRUE(out.status.ok()) << out.status.error_message() << "\n" << out.log;
  ASSERT_TRUE(out.got_summary);
  EXPECT_FALSE(out.summary.realtime_event_loop());
  EXPECT_NE(Warnings(out.summary).find("event loop ran at normal priority (SCHED_FIFO refused"),
            std::string::npos)
      << Warnings(out.summary);
  EXPECT_NE(out.log.find("event loops will run at normal priority"), std::string::npos)
      << out.log;
  // Told not to, it neither tries nor warns.
  args.push_back("--realtime_event_loop=false");
  Outcome quiet = RunOne("/usr/bin/setpriv", args);
  ASSERT_TRUE(quiet.status.ok()) << quiet.status.error_message();
  EXPECT_FALSE(quiet.summary.realtime_event_loop());
  EXPECT_EQ(Warnings(quiet.summary).find("normal priority"), std::string::npos)
      << Warnings(quiet.summary);
  EXPECT_EQ(quiet.log.find("normal priority"), std::string::npos);
}

}  // namespace
}  // namespace mstperf::loadgen
