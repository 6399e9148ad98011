// The gRPC face of the evaluator: validates input (INVALID_ARGUMENT naming the field), runs the
// pure rule sets (most_rules.h, default_rules.h) and counts verdicts in Prometheus metrics.
// Stateless between calls; safe for concurrent calls.
#ifndef MSTPERF_SERVICES_EVALUATOR_SERVICE_H_
#define MSTPERF_SERVICES_EVALUATOR_SERVICE_H_

#include <grpcpp/grpcpp.h>
#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/status/status.h"
#include "mstperf/v1/evaluator.grpc.pb.h"

namespace mstperf::evaluator {

// Checks a config; the error names the field ("config.req_min must be > 0, got -5").
absl::Status ValidateConfig(const mstperf::v1::EvaluationConfig& config);
// Checks one record; `field` is its path for the error, e.g. "records[3]".
absl::Status ValidateRecord(const mstperf::v1::RequestRecord& record, const std::string& field);

// Judges a whole iteration in the configured mode (config must be valid).
mstperf::v1::Verdict Judge(
    const mstperf::v1::EvaluationConfig& config,
    const google::protobuf::RepeatedPtrField<mstperf::v1::RequestRecord>& records);

class EvaluatorService final : public mstperf::v1::Evaluator::CallbackService {
 public:
  // Registers mstperf_evaluator_* families on `registry` (once, here).
  explicit EvaluatorService(prometheus::Registry& registry);

  grpc::ServerUnaryReactor* Evaluate(grpc::CallbackServerContext* context,
                                     const mstperf::v1::EvaluateRequest* request,
                                     mstperf::v1::Verdict* response) override;
  grpc::ServerBidiReactor<mstperf::v1::EvaluateStreamRequest, mstperf::v1::Verdict>*
  EvaluateStream(grpc::CallbackServerContext* context) override;

  // Counts a verdict and the time it took.
  void Record(const mstperf::v1::Verdict& verdict, double seconds);

 private:
  prometheus::Family<prometheus::Counter>& verdicts_;
  prometheus::Histogram& duration_;
};

}  // namespace mstperf::evaluator

#endif  // MSTPERF_SERVICES_EVALUATOR_SERVICE_H_
