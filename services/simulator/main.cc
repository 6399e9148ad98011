// mstperf-simulator: an OpenAI-compatible inference-engine simulator with a known capacity.
// See server.h for the endpoints and engine.h for the model.
#include <string>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/time/time.h"
#include "services/common/init.h"
#include "services/common/log.h"
#include "services/common/server.h"
#include "services/simulator/server.h"

// Common flags, defined by services/common (server.cc).
ABSL_DECLARE_FLAG(std::string, host);
ABSL_DECLARE_FLAG(std::string, ready_file);
ABSL_DECLARE_FLAG(double, shutdown_grace_s);

ABSL_FLAG(int, port, 8000, "HTTP port for the OpenAI API and /metrics; 0 = any free port.");
ABSL_FLAG(int, threads, 1, "Event-loop threads.");
ABSL_FLAG(std::string, model, "mstperf-sim", "Model name served by /v1/models.");
ABSL_FLAG(int, max_model_len, 4096, "Context length: prompt + completion tokens.");
ABSL_FLAG(int, max_num_seqs, 32, "Most sequences running in one step.");
ABSL_FLAG(double, step_base_ms, 10.0, "a: fixed time of an engine step, ms.");
ABSL_FLAG(double, step_per_seq_ms, 0.5, "b: step time per running sequence, ms.");
ABSL_FLAG(double, prefill_per_token_ms, 0.05,
          "c: step time per prompt token admitted (prefilled) in the step, ms.");
ABSL_FLAG(int64_t, kv_cache_tokens, 65536,
          "KV cache in tokens; a sequence holds prompt + max_tokens. 0 = unlimited.");
ABSL_FLAG(double, jitter, 0.0, "Step times are multiplied by 1 + jitter * U(-1, 1).");
ABSL_FLAG(uint64_t, seed, 1, "Seed of the step jitter and of the pseudo-EOS.");
ABSL_FLAG(double, eos_probability, 0.0,
          "Without ignore_eos, each token after min_tokens ends the completion with this "
          "probability; 0 = always run to max_tokens.");
ABSL_FLAG(int64_t, max_body_bytes, 8 << 20, "Larger request bodies get 413.");
ABSL_FLAG(double, max_step_lag_ms, 100.0,
          "How far the step schedule may fall behind the real clock before time is dropped.");

ABSL_FLAG(bool, coalesce_late_steps, true,
          "When the server falls behind the model's timeline, write the tokens of all overdue "
          "steps together (one write per stream); false = one round of writes per step.");

int main(int argc, char** argv) {
  mstperf::InitProcess(argc, argv, "simulator",
                       "mstperf-simulator [--port=8000] [--max_num_seqs=32] ...");
  mstperf::simulator::ServerOptions options;
  options.host = absl::GetFlag(FLAGS_host);
  options.port = absl::GetFlag(FLAGS_port);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.serving.model = absl::GetFlag(FLAGS_model);
  options.serving.max_model_len = absl::GetFlag(FLAGS_max_model_len);
  options.engine.max_num_seqs = absl::GetFlag(FLAGS_max_num_seqs);
  options.engine.step_base_ms = absl::GetFlag(FLAGS_step_base_ms);
  options.engine.step_per_seq_ms = absl::GetFlag(FLAGS_step_per_seq_ms);
  options.engine.prefill_per_token_ms = absl::GetFlag(FLAGS_prefill_per_token_ms);
  options.engine.kv_cache_tokens = absl::GetFlag(FLAGS_kv_cache_tokens);
  options.engine.jitter = absl::GetFlag(FLAGS_jitter);
  options.engine.seed = absl::GetFlag(FLAGS_seed);
  options.seed = absl::GetFlag(FLAGS_seed);
  options.eos_probability = absl::GetFlag(FLAGS_eos_probability);
  options.max_body_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_max_body_bytes));
  options.max_step_lag_ms = absl::GetFlag(FLAGS_max_step_lag_ms);
  options.coalesce_late_steps = absl::GetFlag(FLAGS_coalesce_late_steps);

  if (absl::Status s = mstperf::simulator::ValidateEngineParams(options.engine); !s.ok()) {
    MSTPERF_LOG(Error) << "bad engine flags: " << s.message();
    return 2;
  }
  if (options.threads < 1 || options.serving.max_model_len < 2 || options.max_body_bytes < 1 ||
      options.eos_probability < 0 || options.eos_probability > 1) {
    MSTPERF_LOG(Error) << "need --threads >= 1, --max_model_len >= 2, --max_body_bytes >= 1, "
                          "--eos_probability in [0, 1]";
    return 2;
  }

  mstperf::simulator::SimulatorServer server(options);
  if (absl::Status s = server.Start(); !s.ok()) {
    MSTPERF_LOG(Error) << s;
    return 1;
  }
  MSTPERF_LOG(Info) << "simulator serving model " << options.serving.model << " on "
                    << options.host << ":" << server.port();
  const std::string ready_file = absl::GetFlag(FLAGS_ready_file);
  if (!ready_file.empty()) {
    if (absl::Status s = mstperf::WriteReadyFile(
            ready_file, {{"http_port", server.port()}, {"metrics_port", server.port()}});
        !s.ok()) {
      MSTPERF_LOG(Error) << s;
      return 1;
    }
  }
  const int sig = mstperf::WaitForTerminationSignal();
  const absl::Duration grace = absl::Seconds(absl::GetFlag(FLAGS_shutdown_grace_s));
  MSTPERF_LOG(Info) << "signal " << sig << ": draining (grace " << absl::FormatDuration(grace)
                    << ")";
  server.Shutdown(grace);
  MSTPERF_LOG(Info) << "stopped";
  return 0;
}
