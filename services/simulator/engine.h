#ifndef MSTPERF_SERVICES_SIMULATOR_ENGINE_H_
#define MSTPERF_SERVICES_SIMULATOR_ENGINE_H_

// A continuous-batching inference engine model with no I/O and no clock of its own: the caller
// passes the time (milliseconds, any origin) and drives the steps. The same model runs under a
// simulated clock in tests and under the real steady clock in the HTTP server.
//
// The model (README "Simulator"):
//  - A sequence arrives with `input_tokens` and a target of `output_tokens` (>= 1) and joins a
//    FIFO waiting queue.
//  - A step starts whenever the engine is idle and has work, or when the previous step ends.
//    At its start the engine admits waiting sequences in FIFO order while fewer than
//    `max_num_seqs` are running and the KV budget holds the head of the queue (a sequence
//    reserves input + output tokens for its whole life; the queue never skips its head).
//  - Every running sequence, including the ones just admitted, gets one token at the end of
//    the step (admission prefills the prompt and produces the first token in the same step).
//  - Step time = step_base_ms + step_per_seq_ms * batch + prefill_per_token_ms * (prompt
//    tokens admitted in this step), times (1 + jitter * U(-1, 1)) from a seeded generator.
//  - A sequence leaves at the end of the step that gave it its last token.
//
// Capacity (requests per minute above which the queue grows without bound) for an in/out pair:
// at saturation every step runs a full batch of N = min(max_num_seqs, floor(kv / (in + out)))
// sequences and each request needs `out` step-slots plus one prefill, so
//   capacity = 60000 * N / (out * (a + b * N) + c * in * N)   [a, b, c in milliseconds].

#include <cstdint>
#include <deque>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace mstperf::simulator {

struct EngineParams {
  // Most sequences decoded in one step (vLLM's --max-num-seqs).
  int max_num_seqs = 32;
  // a: fixed cost of a step, milliseconds.
  double step_base_ms = 10.0;
  // b: cost per running sequence in a step, milliseconds.
  double step_per_seq_ms = 0.5;
  // c: cost per prompt token prefilled in a step, milliseconds.
  double prefill_per_token_ms = 0.05;
  // KV cache size in tokens; a sequence holds input + output tokens. 0 = unlimited.
  int64_t kv_cache_tokens = 65536;
  // Each step time is multiplied by 1 + jitter * U(-1, 1); 0 = deterministic. In [0, 1).
  double jitter = 0.0;
  // Seed of the jitter generator.
  uint64_t seed = 1;
};

// OK, or INVALID_ARGUMENT naming the bad field.
absl::Status ValidateEngineParams(const EngineParams& params);

// The closed-form figures of one in/out pair.
struct Capacity {
  // N: sequences running at saturation (slots or KV, whichever binds first).
  int max_concurrency = 0;
  // "max_num_seqs" or "kv_cache_tokens": which limit gives N.
  const char* bound_by = "";
  // Step time with a full batch and no prefill, milliseconds.
  double full_batch_step_ms = 0;
  // Requests per minute above which the waiting queue grows without bound.
  double capacity_req_per_min = 0;
  // Generated tokens per second at capacity.
  double capacity_tokens_per_s = 0;
  // One request alone on an idle engine: time to first token and to the last token, ms.
  double unloaded_ttft_ms = 0;
  double unloaded_e2e_ms = 0;
};

// INVALID_ARGUMENT when in < 0, out < 1, or in + out exceeds a nonzero KV budget.
absl::StatusOr<Capacity> ComputeCapacity(const EngineParams& params, int input_tokens,
                                         int output_tokens);

using SeqId = uint64_t;

// What a step did to one sequence.
struct TokenEvent {
  SeqId id = 0;
  // Tokens generated so far, including this step's.
  int generated = 0;
  // True when this was its last token; the sequence has left the engine.
  bool finished = false;
};

class Engine {
 public:
  explicit Engine(const EngineParams& params);  // params must be valid

  const EngineParams& params() const { return params_; }

  // Queues a sequence at the back of the waiting queue. INVALID_ARGUMENT if it could never run
  // (output_tokens < 1, input_tokens < 0, or input + output over a nonzero KV budget).
  // `id` must be unique among the sequences in the engine.
  absl::Status Submit(SeqId id, int input_tokens, int output_tokens);

  // Removes a sequence (its client went away). A waiting one leaves at once; a running one
  // leaves at the end of the current step without an event. Unknown ids are ignored.
  void Cancel(SeqId id);

  bool in_step() const { return in_step_; }
  bool HasWork() const { return !running_.empty() || !waiting_.empty(); }

  // Starts a step at `now_ms`: admits from the queue and returns the step's duration in ms.
  // Requires !in_step() && HasWork().
  double StartStep(double now_ms);
  // Ends the step started last: appends one event per running sequence (in admission order),
  // removes the finished and cancelled ones and frees their slot and KV tokens.
  void FinishStep(std::vector<TokenEvent>* events);

  int num_running() const { return static_cast<int>(running_.size()); }
  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  int64_t kv_tokens_used() const { return kv_used_; }
  // Used fraction of the KV budget in [0, 1]; with no budget, running / max_num_seqs.
  double kv_usage() const;

  // Figures of the current (or last) step.
  int step_batch() const { return step_batch_; }
  int64_t step_prefill_tokens() const { return step_prefill_tokens_; }
  double step_start_ms() const { return step_start_ms_; }
  double step_duration_ms() const { return step_duration_ms_; }

 private:
  struct Seq {
    SeqId id;
    int input_tokens;
    int output_tokens;
    int generated = 0;
    bool cancelled = false;
  };

  bool Fits(const Seq& seq) const;

  EngineParams params_;
  std::mt19937_64 rng_;
  std::deque<Seq> waiting_;
  std::vector<Seq> running_;
  int64_t kv_used_ = 0;
  bool in_step_ = false;
  int step_batch_ = 0;
  int64_t step_prefill_tokens_ = 0;
  double step_start_ms_ = 0;
  double step_duration_ms_ = 0;
};

}  // namespace mstperf::simulator

#endif  // MSTPERF_SERVICES_SIMULATOR_ENGINE_H_
