#ifndef MSTPERF_SERVICES_SIMULATOR_SIMULATION_H_
#define MSTPERF_SERVICES_SIMULATOR_SIMULATION_H_

// Drives an Engine on a simulated clock with an open-loop arrival process: the reference the
// live server is checked against, and the evidence that the closed-form capacity is right.
// Pure: no I/O, no real time.

#include <vector>

#include "services/simulator/engine.h"

namespace mstperf::simulator {

struct OpenLoopSpec {
  int input_tokens = 0;
  int output_tokens = 1;
  // Offered rate; arrivals are evenly spaced at 60000 / rate ms.
  double rate_req_per_min = 60;
  double duration_s = 60;
};

struct OpenLoopResult {
  int64_t submitted = 0;
  int64_t completed = 0;
  // Completions per minute between duration/2 and duration (past the warm-up).
  double second_half_throughput_req_per_min = 0;
  // Mean over requests completed; arrival to first / last token, ms.
  double mean_ttft_ms = 0;
  double mean_e2e_ms = 0;
  // Waiting-queue length sampled at each step start, after admission.
  int max_waiting = 0;
  int max_running = 0;
  int waiting_at_end = 0;
  // Waiting-queue length at each whole second (index = second).
  std::vector<int> waiting_per_second;
  // Every step's duration, ms (for jitter checks).
  std::vector<double> step_durations_ms;
};

// Runs until `duration_s` of simulated time; requests still in the engine then are not counted
// as completed.
OpenLoopResult SimulateOpenLoop(const EngineParams& params, const OpenLoopSpec& spec);

}  // namespace mstperf::simulator

#endif  // MSTPERF_SERVICES_SIMULATOR_SIMULATION_H_
