#ifndef MSTPERF_SERVICES_COMMON_SERVER_H_
#define MSTPERF_SERVICES_COMMON_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace mstperf {

struct ServerOptions {
  // Process name, used in logs and as the health service's name prefix.
  std::string service_name;
  // gRPC listen address, "host:port"; port 0 picks a free port.
  std::string grpc_address = "0.0.0.0:50051";
  // Prometheus /metrics listen address, "host:port"; port 0 picks a free port; empty disables.
  std::string metrics_address = "0.0.0.0:9100";
  // After SIGTERM, in-flight calls get this long to finish before they are cancelled.
  absl::Duration shutdown_grace = absl::Seconds(10);
  // When non-empty, once listening a JSON file {"grpc_port": N, "metrics_port": M} is written
  // here (atomically), so tests and scripts can start a service on port 0 and find it.
  std::string ready_file;
};

// Fills the shared fields of ServerOptions from the common flags (--host, --ready_file,
// --shutdown_grace_s); each service passes its own default ports (flags --port and
// --metrics_port belong to the service, so their defaults differ per service).
ServerOptions ServerOptionsFromFlags(const std::string& service_name, int grpc_port,
                                     int metrics_port);

// Writes {"key": value, ...} to `path` atomically (temp file + rename).
absl::Status WriteReadyFile(const std::string& path,
                            const std::vector<std::pair<std::string, int>>& ports);

// Hosts gRPC services with what every mstperf server has: server reflection, the standard
// grpc.health.v1 service (SERVING while up, NOT_SERVING while draining), a Prometheus /metrics
// endpoint, and a graceful shutdown on SIGTERM/SIGINT.
//
// Usage: construct, register metric families on registry(), AddService(), then Run() (blocks
// until a termination signal) or Start()/Shutdown() in tests.
class ServiceHost {
 public:
  explicit ServiceHost(ServerOptions options);
  ~ServiceHost();

  ServiceHost(const ServiceHost&) = delete;
  ServiceHost& operator=(const ServiceHost&) = delete;

  // The registry served on /metrics. Valid from construction.
  prometheus::Registry& registry() { return *registry_; }
  std::shared_ptr<prometheus::Registry> registry_ptr() { return registry_; }

  // Services must outlive the host. Call before Start().
  void AddService(grpc::Service* service);

  absl::Status Start();
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }

  // Marks NOT_SERVING, then waits up to shutdown_grace for in-flight calls. Idempotent.
  void Shutdown();

  // Start(), wait for SIGTERM/SIGINT, Shutdown(). Returns the process exit code.
  int Run();

 private:
  ServerOptions options_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::vector<grpc::Service*> services_;
  std::unique_ptr<grpc::Server> server_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  bool shut_down_ = false;
};

}  // namespace mstperf

#endif  // MSTPERF_SERVICES_COMMON_SERVER_H_
