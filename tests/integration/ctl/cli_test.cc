// mstperfctl as a subprocess, without a suite: bad input is a clear message and an exit code,
// never a crash.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "services/common/testing/process.h"
#include "tests/integration/ctl/subprocess.h"

namespace mstperf::ctl::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

class CliTest : public ::testing::Test {
 protected:
  std::string dir_ = mstperf::testing::MakeTempDir("ctl-cli");
};

TEST_F(CliTest, BadEnvLineIsReportedByKeyAndLine) {
  const std::string env = dir_ + "/bad.env";
  WriteText(env, "# demo\nURL=127.0.0.1:8000\nDURATION=30s\nTOKENS_LIST=32:32,64;64\n");
  Output o = RunCmd({CtlPath(), "run", "--env-file", env, "--controller", "127.0.0.1:1"});
  EXPECT_EQ(o.exit_code, 2) << o.err;
  EXPECT_THAT(o.err, AllOf(HasSubstr("bad.env line 4: TOKENS_LIST"), HasSubstr("in:out"),
                           HasSubstr("64;64")));
  // It stops before contacting the controller.
  EXPECT_THAT(o.err, ::testing::Not(HasSubstr("cannot reach")));
}

TEST_F(CliTest, MissingRequiredKeyAndMissingFile) {
  const std::string env = dir_ + "/nourl.env";
  WriteText(env, "DURATION=30s\nTOKENS_LIST=32:32\n");
  Output o = RunCmd({CtlPath(), "run", "--env_file=" + env});
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_THAT(o.err, HasSubstr("URL is required"));

  o = RunCmd({CtlPath(), "run", "--env-file", dir_ + "/absent.env"});
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_THAT(o.err, AllOf(HasSubstr("cannot read"), HasSubstr("absent.env")));
}

TEST_F(CliTest, UnknownKeyWarnsThenUnreachableControllerFails) {
  const std::string env = dir_ + "/typo.env";
  WriteText(env, "URL=127.0.0.1:8000\nDURATION=30s\nTOKENS_LIST=32:32\nSUCESS_RATE=90\n");
  Output o = RunCmd({CtlPath(), "run", "--env-file", env, "--controller", "127.0.0.1:1"},
                 {}, absl::Seconds(60));
  EXPECT_EQ(o.exit_code, 1) << o.err;
  EXPECT_THAT(o.err, HasSubstr("line 4: SUCESS_RATE is not a key mstperf knows (ignored); did "
                               "you mean SUCCESS_RATE?"));
  EXPECT_THAT(o.err, AllOf(HasSubstr("cannot reach the controller at 127.0.0.1:1"),
                           HasSubstr("make up")));
}

TEST_F(CliTest, UsageErrors) {
  Output o = RunCmd({CtlPath()});
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_THAT(o.err, HasSubstr("mstperfctl run"));

  o = RunCmd({CtlPath(), "frobnicate"});
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_THAT(o.err, HasSubstr("unknown command \"frobnicate\""));

  o = RunCmd({CtlPath(), "cancel"});
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_THAT(o.err, HasSubstr("cancel needs an experiment id"));

  o = RunCmd({CtlPath(), "list", "extra"});
  EXPECT_EQ(o.exit_code, 2);

  o = RunCmd({CtlPath(), "run", "--progress=fancy"});
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_THAT(o.err, HasSubstr("--progress"));

  o = RunCmd({CtlPath(), "list", "--no-such-flag"});
  EXPECT_NE(o.exit_code, 0);
  EXPECT_THAT(o.err, HasSubstr("no_such_flag"));
}

TEST_F(CliTest, ListAgainstNoControllerSaysSo) {
  Output o = RunCmd({CtlPath(), "list", "--controller", "127.0.0.1:1"});
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_THAT(o.err, HasSubstr("cannot reach the controller"));
  o = RunCmd({CtlPath(), "status", "some-id", "--controller", "127.0.0.1:1"});
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_THAT(o.err, HasSubstr("cannot reach the controller"));
}

TEST_F(CliTest, EnvKeysListsEveryKeyWithItsDefault) {
  Output o = RunCmd({CtlPath(), "env-keys"});
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_THAT(o.out, AllOf(HasSubstr("REQ_MIN_INCREASE_MULTIPLIER"), HasSubstr("STOP_THRESHOLD"),
                           HasSubstr("EVALUATOR_MODE"), HasSubstr("LOADGEN_ADDRESSES")));
}

}  // namespace
}  // namespace mstperf::ctl::testing
