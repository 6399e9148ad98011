#include "services/simulator/simulation.h"

#include <algorithm>
#include <limits>
#include <unordered_map>

namespace mstperf::simulator {

OpenLoopResult SimulateOpenLoop(const EngineParams& params, const OpenLoopSpec& spec) {
  Engine engine(params);
  OpenLoopResult r;
  const double end_ms = spec.duration_s * 1000.0;
  const double half_ms = end_ms / 2;
  const double gap_ms = 60000.0 / spec.rate_req_per_min;
  struct Times {
    double arrival = 0;
    double first = -1;
  };
  std::unordered_map<SeqId, Times> times;
  std::vector<TokenEvent> events;
  double ttft_sum = 0, e2e_sum = 0;
  int64_t second_half_completed = 0;
  int64_t next_arrival_index = 0;
  double step_end = std::numeric_limits<double>::infinity();
  int next_second = 0;

  auto sample_seconds_until = [&](double t) {
    while (next_second * 1000.0 <= t && next_second * 1000.0 <= end_ms) {
      r.waiting_per_second.push_back(engine.num_waiting());
      ++next_second;
    }
  };
  auto start_step = [&](double now) {
    step_end = now + engine.StartStep(now);
    r.step_durations_ms.push_back(engine.step_duration_ms());
    r.max_waiting = std::max(r.max_waiting, engine.num_waiting());
    r.max_running = std::max(r.max_running, engine.num_running());
  };

  while (true) {
    const double next_arrival = next_arrival_index * gap_ms;
    const double now = std::min(next_arrival, step_end);
    if (now >= end_ms) break;
    sample_seconds_until(now);
    if (step_end <= next_arrival) {
      // Step end first (ties: the step ends, then the arrival waits for the next step start,
      // which happens at this same instant).
      events.clear();
      engine.FinishStep(&events);
      for (const TokenEvent& e : events) {
        Times& t = times[e.id];
        if (e.generated == 1) {
          t.first = now;
          if (!e.finished) continue;
        }
        if (e.finished) {
          ++r.completed;
          ttft_sum += t.first - t.arrival;
          e2e_sum += now - t.arrival;
          if (now >= half_ms) ++second_half_completed;
          times.erase(e.id);
        }
      }
      step_end = std::numeric_limits<double>::infinity();
      if (engine.HasWork()) start_step(now);
    } else {
      const SeqId id = static_cast<SeqId>(next_arrival_index++);
      times[id].arrival = now;
      (void)engine.Submit(id, spec.input_tokens, spec.output_tokens);
      ++r.submitted;
      if (!engine.in_step()) start_step(now);
    }
  }
  sample_seconds_until(end_ms);
  r.waiting_at_end = engine.num_waiting();
  if (r.completed > 0) {
    r.mean_ttft_ms = ttft_sum / r.completed;
    r.mean_e2e_ms = e2e_sum / r.completed;
  }
  r.second_half_throughput_req_per_min =
      second_half_completed / ((end_ms - half_ms) / 60000.0);
  return r;
}

}  // namespace mstperf::simulator
