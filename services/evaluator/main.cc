// mstperf-evaluator: decides whether an iteration was sustainable (Evaluator of the v1 API).
#include "absl/flags/flag.h"
#include "services/common/init.h"
#include "services/common/server.h"
#include "services/evaluator/service.h"

ABSL_FLAG(int, port, 50053, "gRPC port (0 = any free port).");
ABSL_FLAG(int, metrics_port, 9093, "Prometheus /metrics port (0 = any free port, -1 = off).");

int main(int argc, char** argv) {
  mstperf::InitProcess(argc, argv, "evaluator",
                       "mstperf-evaluator [--port=50053] [--metrics_port=9093]");
  mstperf::ServiceHost host(mstperf::ServerOptionsFromFlags(
      "evaluator", absl::GetFlag(FLAGS_port), absl::GetFlag(FLAGS_metrics_port)));
  mstperf::evaluator::EvaluatorService service(host.registry());
  host.AddService(&service);
  return host.Run();
}
