#ifndef MSTPERF_SERVICES_SIMULATOR_SERVER_H_
#define MSTPERF_SERVICES_SIMULATOR_SERVER_H_

// The simulator's HTTP front: an event-driven Boost.Beast server that drives one Engine with
// the real steady clock and speaks vLLM's OpenAI-compatible protocol.
//
// Endpoints: POST /v1/completions, POST /v1/chat/completions (SSE when "stream": true),
// GET /v1/models, POST /tokenize, GET /health, GET /metrics (Prometheus text),
// GET /sim/capacity?input_tokens=&output_tokens= (the closed form, see engine.h).
//
// Timing: a step's tokens are written when the step ends. Steps are scheduled on the model's
// own timeline (the next step starts when the previous one was due to end), so a late timer
// does not lower the capacity; only a lag beyond max_step_lag_ms is given up.
//
// Threads: with threads == 1 (the default) everything runs on one thread without locks; with
// more, each connection and the engine get their own strand.

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "services/simulator/engine.h"
#include "services/simulator/openai.h"

namespace mstperf::simulator {

struct ServerOptions {
  // Bind address and port; port 0 picks a free one.
  std::string host = "0.0.0.0";
  int port = 8000;
  // Threads running the event loop.
  int threads = 1;
  ServingConfig serving;
  EngineParams engine;
  // Larger request bodies get 413.
  size_t max_body_bytes = 8 << 20;
  // Per-token probability of the pseudo-EOS when a request does not set ignore_eos; 0 = every
  // request runs to max_tokens.
  double eos_probability = 0;
  // Seeds the pseudo-EOS (with the request's own "seed" when it has one).
  uint64_t seed = 1;
  // How far the step schedule may fall behind the real clock before time is given up.
  double max_step_lag_ms = 100;
  // When behind, run the steps already due at once and write their tokens together (one
  // write per stream). Off: every step is its own round of writes, however late.
  bool coalesce_late_steps = true;
};

class SimulatorServer {
 public:
  explicit SimulatorServer(ServerOptions options);
  ~SimulatorServer();
  SimulatorServer(const SimulatorServer&) = delete;
  SimulatorServer& operator=(const SimulatorServer&) = delete;

  // Binds, listens and starts the event-loop threads.
  absl::Status Start();
  int port() const;

  // Stops accepting; requests in flight run to their end (new ones get 503) for up to
  // `grace`, then the loop stops. Idempotent; the destructor calls it with no grace.
  void Shutdown(absl::Duration grace);

  class Impl;  // public so that the connection class in server.cc can name it

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace mstperf::simulator

#endif  // MSTPERF_SERVICES_SIMULATOR_SERVER_H_
