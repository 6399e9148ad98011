// ServiceHost over real sockets on port 0: health, reflection, /metrics, graceful shutdown.
#include "services/common/server.h"

#include <curl/curl.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <prometheus/counter.h>

#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "services/common/testing/process.h"

namespace mstperf {
namespace {

std::string HttpGet(const std::string& url, long* status) {
  std::string body;
  CURL* curl = curl_easy_init();
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION,
                   +[](char* p, size_t s, size_t n, void* ud) -> size_t {
                     static_cast<std::string*>(ud)->append(p, s * n);
                     return s * n;
                   });
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  CURLcode rc = curl_easy_perform(curl);
  *status = 0;
  if (rc == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
  curl_easy_cleanup(curl);
  return body;
}

TEST(ServiceHostTest, ServesHealthReflectionAndMetricsOnPortZero) {
  ServerOptions options;
  options.service_name = "test";
  options.grpc_address = "127.0.0.1:0";
  options.metrics_address = "127.0.0.1:0";
  options.ready_file = testing::MakeTempDir("host") + "/ready.json";
  ServiceHost host(options);
  auto& counter = prometheus::BuildCounter()
                      .Name("mstperf_test_things_total")
                      .Help("Things.")
                      .Register(host.registry())
                      .Add({});
  counter.Increment(3);
  ASSERT_TRUE(host.Start().ok());
  ASSERT_GT(host.grpc_port(), 0);
  ASSERT_GT(host.metrics_port(), 0);

  std::ifstream ready(options.ready_file);
  std::string text((std::istreambuf_iterator<char>(ready)), {});
  EXPECT_NE(text.find("\"grpc_port\":" + std::to_string(host.grpc_port())), std::string::npos);

  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(host.grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext ctx;
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = health->Check(&ctx, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  // Server reflection lists the health service (grpcurl depends on this).
  auto reflection = grpc::reflection::v1alpha::ServerReflection::NewStub(channel);
  grpc::ClientContext rctx;
  auto stream = reflection->ServerReflectionInfo(&rctx);
  grpc::reflection::v1alpha::ServerReflectionRequest list;
  list.set_list_services("");
  ASSERT_TRUE(stream->Write(list));
  grpc::reflection::v1alpha::ServerReflectionResponse answer;
  ASSERT_TRUE(stream->Read(&answer));
  std::vector<std::string> services;
  for (const auto& s : answer.list_services_response().service()) services.push_back(s.name());
  // ...and can describe it: grpcurl's `grpc.health.v1.Health/Check` needs the descriptor.
  grpc::reflection::v1alpha::ServerReflectionRequest describe;
  describe.set_file_containing_symbol("grpc.health.v1.Health");
  ASSERT_TRUE(stream->Write(describe));
  ASSERT_TRUE(stream->Read(&answer));
  EXPECT_FALSE(answer.has_error_response()) << answer.error_response().error_message();
  EXPECT_GT(answer.file_descriptor_response().file_descriptor_proto_size(), 0);
  stream->WritesDone();
  while (stream->Read(&answer)) {
  }
  ASSERT_TRUE(stream->Finish().ok());
  EXPECT_NE(std::find(services.begin(), services.end(), "grpc.health.v1.Health"), services.end());

  long http_status = 0;
  std::string metrics =
      HttpGet("http://127.0.0.1:" + std::to_string(host.metrics_port()) + "/metrics",
              &http_status);
  EXPECT_EQ(http_status, 200);
  EXPECT_NE(metrics.find("mstperf_test_things_total 3"), std::string::npos) << metrics;

  host.Shutdown();
}

}  // namespace
}  // namespace mstperf
