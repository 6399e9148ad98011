// The simulator's capacity endpoint: URL building and answer parsing (pure parts).
#include "services/ctl/capacity.h"

#include <gtest/gtest.h>

namespace mstperf::ctl {
namespace {

TEST(CapacityTest, Url) {
  EXPECT_EQ(CapacityUrl("127.0.0.1:8000", 128, 64),
            "http://127.0.0.1:8000/sim/capacity?input_tokens=128&output_tokens=64");
  EXPECT_EQ(CapacityUrl("http://localhost:8000/", 1, 2),
            "http://localhost:8000/sim/capacity?input_tokens=1&output_tokens=2");
  EXPECT_EQ(CapacityUrl("https://h:1", 3, 4),
            "https://h:1/sim/capacity?input_tokens=3&output_tokens=4");
}

TEST(CapacityTest, Body) {
  // The simulator's answer (abridged).
  auto c = ParseCapacityBody(
      R"({"bound_by":"max_num_seqs","capacity_req_min":1027.3972602739727,"input_tokens":128})");
  ASSERT_TRUE(c.has_value());
  EXPECT_DOUBLE_EQ(*c, 1027.3972602739727);
  EXPECT_FALSE(ParseCapacityBody("").has_value());
  EXPECT_FALSE(ParseCapacityBody("<html>404</html>").has_value());
  EXPECT_FALSE(ParseCapacityBody(R"({"capacity_req_min":"many"})").has_value());
  EXPECT_FALSE(ParseCapacityBody(R"({"capacity_req_min":0})").has_value());
  EXPECT_FALSE(ParseCapacityBody(R"({"other":5})").has_value());
  EXPECT_FALSE(ParseCapacityBody("[1,2]").has_value());
}

}  // namespace
}  // namespace mstperf::ctl
