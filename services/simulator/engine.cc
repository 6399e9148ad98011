#include "services/simulator/engine.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace mstperf::simulator {

absl::Status ValidateEngineParams(const EngineParams& p) {
  if (p.max_num_seqs < 1) return absl::InvalidArgumentError("max_num_seqs must be >= 1");
  if (!(p.step_base_ms >= 0)) return absl::InvalidArgumentError("step_base_ms must be >= 0");
  if (!(p.step_per_seq_ms >= 0)) {
    return absl::InvalidArgumentError("step_per_seq_ms must be >= 0");
  }
  if (!(p.prefill_per_token_ms >= 0)) {
    return absl::InvalidArgumentError("prefill_per_token_ms must be >= 0");
  }
  if (p.step_base_ms + p.step_per_seq_ms <= 0) {
    return absl::InvalidArgumentError(
        "step_base_ms + step_per_seq_ms must be > 0 (a step must take time)");
  }
  if (p.kv_cache_tokens < 0) return absl::InvalidArgumentError("kv_cache_tokens must be >= 0");
  if (!(p.jitter >= 0 && p.jitter < 1)) {
    return absl::InvalidArgumentError("jitter must be in [0, 1)");
  }
  return absl::OkStatus();
}

namespace {

absl::Status ValidatePair(const EngineParams& p, int input_tokens, int output_tokens) {
  if (input_tokens < 0) return absl::InvalidArgumentError("input_tokens must be >= 0");
  if (output_tokens < 1) return absl::InvalidArgumentError("output_tokens must be >= 1");
  if (p.kv_cache_tokens > 0 &&
      static_cast<int64_t>(input_tokens) + output_tokens > p.kv_cache_tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("input_tokens + output_tokens (", input_tokens + output_tokens,
                     ") exceed the KV cache of ", p.kv_cache_tokens, " tokens"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Capacity> ComputeCapacity(const EngineParams& p, int in, int out) {
  if (absl::Status s = ValidatePair(p, in, out); !s.ok()) return s;
  Capacity c;
  c.max_concurrency = p.max_num_seqs;
  c.bound_by = "max_num_seqs";
  if (p.kv_cache_tokens > 0) {
    const int64_t by_kv = p.kv_cache_tokens / (static_cast<int64_t>(in) + out);
    if (by_kv < p.max_num_seqs) {
      c.max_concurrency = static_cast<int>(by_kv);
      c.bound_by = "kv_cache_tokens";
    }
  }
  const double n = c.max_concurrency;
  const double a = p.step_base_ms, b = p.step_per_seq_ms, pc = p.prefill_per_token_ms;
  c.full_batch_step_ms = a + b * n;
  const double ms_per_n_requests = out * (a + b * n) + pc * in * n;
  c.capacity_req_per_min = 60000.0 * n / ms_per_n_requests;
  c.capacity_tokens_per_s = c.capacity_req_per_min / 60.0 * out;
  c.unloaded_ttft_ms = a + b + pc * in;
  c.unloaded_e2e_ms = c.unloaded_ttft_ms + (out - 1) * (a + b);
  return c;
}

Engine::Engine(const EngineParams& params) : params_(params), rng_(params.seed) {
  running_.reserve(params.max_num_seqs);
}

absl::Status Engine::Submit(SeqId id, int input_tokens, int output_tokens) {
  if (absl::Status s = ValidatePair(params_, input_tokens, output_tokens); !s.ok()) return s;
  waiting_.push_back(Seq{id, input_tokens, output_tokens});
  return absl::OkStatus();
}

void Engine::Cancel(SeqId id) {
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
    if (it->id == id) {
      waiting_.erase(it);
      return;
    }
  }
  for (Seq& s : running_) {
    if (s.id == id) s.cancelled = true;
  }
}

bool Engine::Fits(const Seq& seq) const {
  if (static_cast<int>(running_.size()) >= params_.max_num_seqs) return false;
  if (params_.kv_cache_tokens == 0) return true;
  return kv_used_ + seq.input_tokens + seq.output_tokens <= params_.kv_cache_tokens;
}

double Engine::StartStep(double now_ms) {
  int64_t prefill = 0;
  while (!waiting_.empty() && Fits(waiting_.front())) {
    Seq& s = waiting_.front();
    kv_used_ += s.input_tokens + s.output_tokens;
    prefill += s.input_tokens;
    running_.push_back(s);
    waiting_.pop_front();
  }
  in_step_ = true;
  step_batch_ = static_cast<int>(running_.size());
  step_prefill_tokens_ = prefill;
  step_start_ms_ = now_ms;
  double d = params_.step_base_ms + params_.step_per_seq_ms * step_batch_ +
             params_.prefill_per_token_ms * static_cast<double>(prefill);
  if (params_.jitter > 0) {
    // Mean-preserving multiplicative noise: capacity is unchanged in expectation.
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    d *= 1.0 + params_.jitter * u(rng_);
  }
  step_duration_ms_ = d;
  return d;
}

void Engine::FinishStep(std::vector<TokenEvent>* events) {
  in_step_ = false;
  size_t kept = 0;
  for (size_t i = 0; i < running_.size(); ++i) {
    Seq& s = running_[i];
    bool leaves = s.cancelled;
    if (!s.cancelled) {
      ++s.generated;
      const bool finished = s.generated >= s.output_tokens;
      events->push_back(TokenEvent{s.id, s.generated, finished});
      leaves = finished;
    }
    if (leaves) {
      kv_used_ -= s.input_tokens + s.output_tokens;
    } else {
      if (kept != i) running_[kept] = s;
      ++kept;
    }
  }
  running_.resize(kept);
}

double Engine::kv_usage() const {
  if (params_.kv_cache_tokens > 0) {
    return static_cast<double>(kv_used_) / static_cast<double>(params_.kv_cache_tokens);
  }
  return static_cast<double>(running_.size()) / params_.max_num_seqs;
}

}  // namespace mstperf::simulator
