// Loadgen address expansion: host:port lists pass through; one dns:///name:port becomes every
// address the name resolves to (a headless Kubernetes Service: one per replica).
#include "services/controller/runner.h"

#include <algorithm>

#include <gtest/gtest.h>

namespace mstperf::controller {
namespace {

TEST(ResolveLoadgenAddressesTest, PlainAddressesPassThrough) {
  auto out = ResolveLoadgenAddresses({"127.0.0.1:50052", "127.0.0.1:50062"});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, (std::vector<std::string>{"127.0.0.1:50052", "127.0.0.1:50062"}));
}

TEST(ResolveLoadgenAddressesTest, DnsNameExpandsToItsAddresses) {
  auto out = ResolveLoadgenAddresses({"dns:///localhost:50052"});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_NE(std::find(out->begin(), out->end(), "127.0.0.1:50052"), out->end());
  // No duplicates (getaddrinfo lists one address per socket type otherwise).
  std::vector<std::string> sorted = *out;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());
}

TEST(ResolveLoadgenAddressesTest, Errors) {
  EXPECT_EQ(ResolveLoadgenAddresses({}).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ResolveLoadgenAddresses({"dns:///localhost"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveLoadgenAddresses({"dns:///no-such-host.invalid:1"}).status().code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace mstperf::controller
