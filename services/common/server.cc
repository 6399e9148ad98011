#include "services/common/server.h"

#include <cstdio>
#include <fstream>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/flags/flag.h"
#include "grpc/health/v1/health.pb.h"
#include "absl/strings/str_cat.h"
#include "services/common/init.h"
#include "services/common/log.h"

ABSL_FLAG(std::string, host, "0.0.0.0",
          "Address the gRPC and metrics servers bind to (127.0.0.1 for loopback only).");
ABSL_FLAG(std::string, ready_file, "",
          "If set, write {\"grpc_port\":N,\"metrics_port\":M} here once listening.");
ABSL_FLAG(double, shutdown_grace_s, 10.0,
          "Seconds in-flight calls may run after SIGTERM before they are cancelled.");

namespace mstperf {

ServerOptions ServerOptionsFromFlags(const std::string& service_name, int grpc_port,
                                     int metrics_port) {
  ServerOptions options;
  options.service_name = service_name;
  const std::string host = absl::GetFlag(FLAGS_host);
  options.grpc_address = absl::StrCat(host, ":", grpc_port);
  options.metrics_address = metrics_port < 0 ? "" : absl::StrCat(host, ":", metrics_port);
  options.shutdown_grace = absl::Seconds(absl::GetFlag(FLAGS_shutdown_grace_s));
  options.ready_file = absl::GetFlag(FLAGS_ready_file);
  return options;
}

absl::Status WriteReadyFile(const std::string& path,
                            const std::vector<std::pair<std::string, int>>& ports) {
  std::string json = "{";
  for (size_t i = 0; i < ports.size(); ++i) {
    absl::StrAppend(&json, i ? "," : "", "\"", ports[i].first, "\":", ports[i].second);
  }
  json += "}\n";
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << json;
    if (!out) return absl::InternalError(absl::StrCat("cannot write ready file ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename ready file to ", path));
  }
  return absl::OkStatus();
}

ServiceHost::ServiceHost(ServerOptions options)
    : options_(std::move(options)), registry_(std::make_shared<prometheus::Registry>()) {}

ServiceHost::~ServiceHost() { Shutdown(); }

void ServiceHost::AddService(grpc::Service* service) { services_.push_back(service); }

absl::Status ServiceHost::Start() {
  // gRPC's built-in health service has no protobuf descriptor of its own; touching the generated
  // one links it in, so reflection can describe grpc.health.v1.Health (grpcurl needs that).
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.grpc_address, grpc::InsecureServerCredentials(), &grpc_port_);
  // Record batches can be large; the default 4 MiB receive limit is too small for them.
  builder.SetMaxReceiveMessageSize(256 * 1024 * 1024);
  builder.SetMaxSendMessageSize(256 * 1024 * 1024);
  for (grpc::Service* service : services_) builder.RegisterService(service);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || grpc_port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for gRPC on ", options_.grpc_address));
  }
  server_->GetHealthCheckService()->SetServingStatus(true);

  if (!options_.metrics_address.empty()) {
    try {
      exposer_ = std::make_unique<prometheus::Exposer>(options_.metrics_address);
    } catch (const std::exception& e) {
      return absl::UnavailableError(absl::StrCat("cannot listen for /metrics on ",
                                                 options_.metrics_address, ": ", e.what()));
    }
    exposer_->RegisterCollectable(registry_);
    auto ports = exposer_->GetListeningPorts();
    metrics_port_ = ports.empty() ? 0 : ports.front();
  }

  MSTPERF_LOG(Info) << options_.service_name << " gRPC listening on port " << grpc_port_
                    << (metrics_port_ ? absl::StrCat(", /metrics on port ", metrics_port_) : "");
  if (!options_.ready_file.empty()) {
    return WriteReadyFile(options_.ready_file,
                          {{"grpc_port", grpc_port_}, {"metrics_port", metrics_port_}});
  }
  return absl::OkStatus();
}

void ServiceHost::Shutdown() {
  if (shut_down_ || server_ == nullptr) return;
  shut_down_ = true;
  server_->GetHealthCheckService()->SetServingStatus(false);
  server_->Shutdown(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(options_.shutdown_grace));
  server_->Wait();
}

int ServiceHost::Run() {
  if (absl::Status status = Start(); !status.ok()) {
    MSTPERF_LOG(Error) << status;
    return 1;
  }
  int sig = WaitForTerminationSignal();
  MSTPERF_LOG(Info) << "signal " << sig << ": draining (grace "
                    << absl::FormatDuration(options_.shutdown_grace) << ")";
  Shutdown();
  MSTPERF_LOG(Info) << "stopped";
  return 0;
}

}  // namespace mstperf
