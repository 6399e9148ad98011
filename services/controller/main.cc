// mstperf-controller: the SearchController service (see service.h and docs/controller.md).
#include "absl/flags/flag.h"
#include "absl/strings/str_split.h"
#include "services/common/init.h"
#include "services/common/log.h"
#include "services/common/server.h"
#include "services/controller/service.h"

ABSL_FLAG(int, port, 50051, "gRPC port (0 = any free port).");
ABSL_FLAG(int, metrics_port, 9091, "Prometheus /metrics port (0 = any free port, -1 = off).");
ABSL_FLAG(std::string, results_dir, ".",
          "Results volume: iterations go to <results_dir>/requests/<in>_<out>/<timestamp>/ (the "
          "original's layout) and experiment state to <results_dir>/experiments/<id>.json.");
ABSL_FLAG(std::string, loadgen, "127.0.0.1:50052",
          "Loadgen replicas used when a spec names none: comma-separated host:port, or one "
          "dns:///name:port resolving to every replica.");
ABSL_FLAG(std::string, evaluator, "127.0.0.1:50053", "The evaluator's gRPC address.");

int main(int argc, char** argv) {
  mstperf::InitProcess(argc, argv, "controller",
                       "mstperf-controller: finds the maximum sustainable throughput per token pair");
  mstperf::controller::ControllerOptions options;
  options.results_dir = absl::GetFlag(FLAGS_results_dir);
  options.loadgen_addresses = absl::StrSplit(absl::GetFlag(FLAGS_loadgen), ',', absl::SkipWhitespace());
  options.evaluator_address = absl::GetFlag(FLAGS_evaluator);

  mstperf::ServiceHost host(mstperf::ServerOptionsFromFlags(
      "controller", absl::GetFlag(FLAGS_port), absl::GetFlag(FLAGS_metrics_port)));
  mstperf::controller::ControllerService service(options, host.registry());
  if (absl::Status status = service.Start(); !status.ok()) {
    MSTPERF_LOG(Error) << status;
    return 1;
  }
  host.AddService(&service);
  if (absl::Status status = host.Start(); !status.ok()) {
    MSTPERF_LOG(Error) << status;
    return 1;
  }
  const int sig = mstperf::WaitForTerminationSignal();
  MSTPERF_LOG(Info) << "signal " << sig << ": stopping (a running iteration is redone after a restart)";
  service.Shutdown();  // ends watches and the running iteration, so the drain is short
  host.Shutdown();
  return 0;
}
