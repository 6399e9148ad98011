#ifndef MSTPERF_SERVICES_COMMON_STATUS_H_
#define MSTPERF_SERVICES_COMMON_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace mstperf {

// absl::Status is used inside the services; grpc::Status only at the service edge.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace mstperf

// Early return for absl::Status-returning code (Abseil 20220623 has no status macros).
#define MSTPERF_RETURN_IF_ERROR(expr)            \
  do {                                           \
    ::absl::Status _mstperf_status = (expr);     \
    if (!_mstperf_status.ok()) return _mstperf_status; \
  } while (0)

#endif  // MSTPERF_SERVICES_COMMON_STATUS_H_
