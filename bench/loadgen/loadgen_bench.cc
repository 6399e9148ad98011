// Benchmarks of the load generator (see bench/loadgen/run.sh for how they are run and pinned).
//   open    : open-loop rate sweep through a running mstperf-loadgen (gRPC), summary per rate
//   closed  : closed-loop completed requests/s of the runner vs a bare libcurl-multi loop
//   parse   : SSE parse + chunk scan vs SSE parse + full nlohmann parse, events/s
//   memory  : heap per in-flight request and per recorded token
#include <malloc.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <curl/curl.h>
#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "mstperf/v1/loadgen.grpc.pb.h"
#include "services/loadgen/runner.h"
#include "services/loadgen/sse.h"

ABSL_FLAG(std::string, loadgen, "127.0.0.1:50052", "open: the loadgen's gRPC address");
ABSL_FLAG(int, loadgen_pid, 0, "open: the loadgen's pid, for its CPU time");
ABSL_FLAG(std::string, url, "http://127.0.0.1:8080", "the target");
ABSL_FLAG(std::string, rates, "2000,5000", "open: requests per second, comma-separated");
ABSL_FLAG(double, duration, 5, "seconds per measurement");
ABSL_FLAG(int, out_tokens, 128, "max_tokens sent (the static target ignores it)");
ABSL_FLAG(int, concurrency, 64, "closed: requests kept in flight");
ABSL_FLAG(std::string, body_file, "", "parse: the SSE body to parse");
ABSL_FLAG(bool, runner_only, false, "closed: skip the bare loop");
ABSL_FLAG(bool, bare_only, false, "closed: skip the runner (to profile the bare loop)");
ABSL_FLAG(int, rounds, 1, "closed: bare/runner pairs, alternated");
ABSL_FLAG(bool, http2, false, "closed/memory: HTTP/2 (prior knowledge in clear)");
ABSL_FLAG(std::string, arrival, "constant", "open: constant or poisson");

namespace mstperf::loadgen {
namespace {

// CPU time (user + system) of this process, and of the calling thread.
double ProcessCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double CpuSeconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), {});
  auto fields = absl::StrSplit(s.substr(s.rfind(')') + 2), ' ');
  std::vector<std::string> f(fields.begin(), fields.end());
  return (std::stod(f[11]) + std::stod(f[12])) / sysconf(_SC_CLK_TCK);
}

int Open() {
  auto stub = v1::LoadGenerator::NewStub(
      grpc::CreateChannel(absl::GetFlag(FLAGS_loadgen), grpc::InsecureChannelCredentials()));
  std::printf("%8s %8s %8s %8s %9s %9s %9s %8s %6s %s\n", "rate/s", "planned", "sent",
              "dropped", "lag_p50us", "lag_p99us", "lag_maxus", "late", "cpu%", "warnings");
  for (absl::string_view rate_text : absl::StrSplit(absl::GetFlag(FLAGS_rates), ',')) {
    const double rate = std::stod(std::string(rate_text));
    v1::IterationSpec spec;
    spec.set_iteration_id("bench");
    spec.mutable_target()->set_url(absl::GetFlag(FLAGS_url));
    spec.mutable_target()->set_model("static");
    spec.mutable_tokens()->mutable_input()->set_min(64);
    spec.mutable_tokens()->mutable_output()->set_min(absl::GetFlag(FLAGS_out_tokens));
    spec.set_req_min(rate * 60);
    spec.set_duration_s(absl::GetFlag(FLAGS_duration));
    spec.set_arrival(absl::GetFlag(FLAGS_arrival) == "poisson" ? v1::ARRIVAL_POISSON
                                                               : v1::ARRIVAL_CONSTANT);
    spec.set_batch_size(1024);
    grpc::ClientContext ctx;
    const int pid = absl::GetFlag(FLAGS_loadgen_pid);
    double cpu0 = 0;
    absl::Time t0;
    auto reader = stub->RunIteration(&ctx, spec);
    v1::IterationEvent ev;
    v1::IterationSummary summary;
    uint64_t records = 0;
    while (reader->Read(&ev)) {
      if (ev.has_started() && pid) {
        cpu0 = CpuSeconds(pid);
        t0 = absl::Now();
      }
      records += ev.records().records_size();
      if (ev.has_summary()) summary = ev.summary();
    }
    const double cpu = pid ? (CpuSeconds(pid) - cpu0) / absl::ToDoubleSeconds(absl::Now() - t0) : 0;
    grpc::Status st = reader->Finish();
    if (!st.ok()) {
      std::printf("%8.0f  failed: %s\n", rate, st.error_message().c_str());
      continue;
    }
    std::string warnings;
    for (const auto& w : summary.warnings()) warnings += "[" + w + "] ";
    std::printf("%8.0f %8llu %8llu %8llu %9.0f %9.0f %9.0f %8llu %6.1f %s\n", rate,
                static_cast<unsigned long long>(records),
                static_cast<unsigned long long>(summary.totals().sent()),
                static_cast<unsigned long long>(summary.totals().dropped()),
                summary.send_lag_us().p50(), summary.send_lag_us().p99(),
                summary.send_lag_us().max(), static_cast<unsigned long long>(summary.late_sends()),
                cpu * 100, warnings.c_str());
    std::fflush(stdout);
  }
  return 0;
}

RunOptions BenchOptions() {
  RunOptions o;
  o.target.base_url = absl::GetFlag(FLAGS_url);
  o.target.model = "static";
  o.target.http2 = absl::GetFlag(FLAGS_http2);
  BodyTemplate body(o.target, true);
  o.make_body = [body](const ScheduledRequest& r) {
    return body.Build("Text: a short prompt for the benchmark", r.output_tokens);
  };
  o.max_send_lag = absl::ZeroDuration();
  return o;
}

Schedule Endless() {
  ScheduleSpec s;
  s.kind = ArrivalKind::kConstant;
  s.rate_per_s = 1e6;
  s.duration_s = 1e4;
  s.output_min = s.output_max = absl::GetFlag(FLAGS_out_tokens);
  return *Schedule::Create(s);
}

struct Closed {
  double req_per_s = 0;
  double cpu_us_per_req = 0;  // CPU time of the process per completed request
};

// The runner in closed loop: every response fully parsed, timed and recorded.
Closed ClosedRunner() {
  RunOptions o = BenchOptions();
  o.closed_loop_concurrency = absl::GetFlag(FLAGS_concurrency);
  o.closed_loop_for = absl::Seconds(absl::GetFlag(FLAGS_duration));
  o.warm_connections = o.closed_loop_concurrency;
  Runner runner(std::move(o), Endless());
  uint64_t ok = 0, failed = 0, chunks = 0;
  std::string first_error;
  const double cpu0 = ProcessCpuSeconds();
  const absl::Time t0 = absl::Now();
  absl::Status s = runner.Run([&](RequestResult&& r) {
    r.success ? ++ok : ++failed;
    if (!r.success && first_error.empty()) first_error = r.error;
    chunks += r.chunk_offset_us.size();
  });
  const double wall = absl::ToDoubleSeconds(absl::Now() - t0);
  const double cpu = ProcessCpuSeconds() - cpu0;
  std::printf("runner     : %8.0f req/s  %10.0f token events/s  cpu %3.0f%%  %6.1f us CPU/req  "
              "failed %llu  connections %llu\n",
              ok / wall, chunks / wall, 100 * cpu / wall, 1e6 * cpu / std::max<uint64_t>(ok, 1),
              static_cast<unsigned long long>(failed),
              static_cast<unsigned long long>(runner.counters().connections_opened.load()));
  if (!first_error.empty()) std::printf("             first error: %s\n", first_error.c_str());
  std::fflush(stdout);
  return {ok / wall, 1e6 * cpu / std::max<uint64_t>(ok, 1)};
}

// The bare baseline: libcurl multi, closed loop, the write callback only counts events.
Closed ClosedBare() {
  const int concurrency = absl::GetFlag(FLAGS_concurrency);
  const std::string url = absl::GetFlag(FLAGS_url) + "/v1/completions";
  const std::string body = R"({"model":"static","prompt":"Text: a short prompt","max_tokens":128,"stream":true})";
  CURLM* multi = curl_multi_init();
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, static_cast<long>(concurrency * 2));
  struct Ctx {
    uint64_t events = 0;
  } ctx;
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");
  auto add = [&](CURL* e) {
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &ctx);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, +[](char* p, size_t s, size_t n, void* u) {
      auto* c = static_cast<Ctx*>(u);
      const char* end = p + s * n;
      for (const char* q = p; (q = static_cast<const char*>(std::memchr(q, '\n', end - q)));) {
        if (++q < end && *q == '\n') ++c->events;
      }
      return s * n;
    });
    curl_multi_add_handle(multi, e);
  };
  for (int i = 0; i < concurrency; ++i) add(curl_easy_init());
  uint64_t done = 0;
  const double cpu0 = ProcessCpuSeconds();
  const absl::Time t0 = absl::Now();
  const absl::Time end = t0 + absl::Seconds(absl::GetFlag(FLAGS_duration));
  int running = 1;
  while (absl::Now() < end) {
    curl_multi_perform(multi, &running);
    int q;
    while (CURLMsg* m = curl_multi_info_read(multi, &q)) {
      if (m->msg != CURLMSG_DONE) continue;
      CURL* e = m->easy_handle;
      curl_multi_remove_handle(multi, e);
      ++done;
      add(e);
    }
    curl_multi_poll(multi, nullptr, 0, 100, nullptr);
  }
  const double wall = absl::ToDoubleSeconds(absl::Now() - t0);
  const double cpu = ProcessCpuSeconds() - cpu0;
  std::printf("bare loop  : %8.0f req/s  %10.0f       events/s  cpu %3.0f%%  %6.1f us CPU/req\n",
              done / wall, ctx.events / wall, 100 * cpu / wall,
              1e6 * cpu / std::max<uint64_t>(done, 1));
  std::fflush(stdout);
  curl_multi_cleanup(multi);
  curl_slist_free_all(headers);
  return {done / wall, 1e6 * cpu / std::max<uint64_t>(done, 1)};
}

// Events per CPU-second (not wall time: the machine is shared, CPU time is what the parser
// costs), for four levels of work per event.
int Parse() {
  std::ifstream in(absl::GetFlag(FLAGS_body_file));
  const std::string body((std::istreambuf_iterator<char>(in)), {});
  const char* names[] = {"SSE framing only", "SSE + template scanner", "SSE + walker only",
                         "SSE + nlohmann parse"};
  for (int level = 0; level < 4; ++level) {
    uint64_t events = 0, tokens = 0;
    const double c0 = ThreadCpuSeconds();
    int reps = 0;
    // Like the runner's: one per handle, kept across the requests it serves.
    ChunkScanner scanner;
    while (ThreadCpuSeconds() - c0 < 1.0) {
      for (int k = 0; k < 50; ++k, ++reps) {
        SseParser p;
        TokenCounter c;
        // Feed in 1500-byte pieces, as reads from a socket would arrive.
        for (size_t off = 0; off < body.size(); off += 1500) {
          p.Feed(std::string_view(body).substr(off, 1500), [&](const SseEvent& e) {
            ++events;
            if (level == 1) tokens += c.OnChunk(scanner.Scan(e.data));
            if (level == 2) tokens += c.OnChunk(ScanChunk(e.data));
            if (level == 3) tokens += c.OnChunk(ParseChunkJson(e.data));
          });
        }
      }
    }
    const double s = ThreadCpuSeconds() - c0;
    std::printf("%-22s: %10.0f events per CPU-second, %.3f us per event (%.0f streams of %zu "
                "bytes, %llu tokens each)\n",
                names[level], events / s, 1e6 * s / events, reps / s, body.size(),
                static_cast<unsigned long long>(tokens / reps));
    if (level == 1) {
      std::printf("%-22s  %llu events by the template, %llu by the walker\n", "",
                  static_cast<unsigned long long>(scanner.fast()),
                  static_cast<unsigned long long>(scanner.walked()));
    }
  }
  return 0;
}

int Memory() {
  // Requests in flight: open-loop against a slow target (the bench's nginx location that
  // sends its body at a limited rate), measured while they are all open.
  RunOptions o = BenchOptions();
  o.record_chunks = true;
  ScheduleSpec s;
  s.kind = ArrivalKind::kConstant;
  s.rate_per_s = 2000;
  s.duration_s = 1;
  s.output_min = s.output_max = 128;
  Runner runner(std::move(o), *Schedule::Create(s));
  std::vector<RequestResult> kept;
  size_t heap_before = mallinfo2().uordblks;
  std::thread sampler;
  size_t peak_in_flight = 0, heap_at_peak = 0;
  std::atomic<bool> done{false};
  sampler = std::thread([&] {
    while (!done) {
      const size_t n = runner.counters().in_flight.load();
      const size_t heap = mallinfo2().uordblks;
      if (n > peak_in_flight) {
        peak_in_flight = n;
        heap_at_peak = heap;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
  });
  uint64_t chunks = 0;
  absl::Status st = runner.Run([&](RequestResult&& r) {
    chunks += r.chunk_offset_us.size();
    kept.push_back(std::move(r));
  });
  done = true;
  sampler.join();
  const size_t heap_after = mallinfo2().uordblks;
  uint64_t ok = 0;
  for (const auto& r : kept) ok += r.success;
  std::printf("in flight  : peak %zu requests, heap +%.1f KiB per in-flight request "
              "(libcurl handle + connection + parser + record)\n",
              peak_in_flight, (heap_at_peak - heap_before) / 1024.0 / std::max<size_t>(1, peak_in_flight));
  // Records: what is kept per finished request and per token chunk.
  size_t vec_bytes = 0;
  for (const auto& r : kept) {
    vec_bytes += r.chunk_offset_us.capacity() * 4 + r.chunk_tokens.capacity() * 4;
  }
  std::printf("records    : %zu requests (%llu ok), %llu token chunks; chunk timeline %.1f bytes "
              "per token chunk; heap after %.1f KiB per kept record\n",
              kept.size(), static_cast<unsigned long long>(ok),
              static_cast<unsigned long long>(chunks), chunks ? double(vec_bytes) / chunks : 0.0,
              (heap_after - heap_before) / 1024.0 / std::max<size_t>(1, kept.size()));
  // The proto record streamed to the caller.
  if (!kept.empty()) {
    v1::RequestRecord rec;
    const auto& r = kept.front();
    rec.mutable_chunk_offset_us()->Add(r.chunk_offset_us.begin(), r.chunk_offset_us.end());
    rec.mutable_chunk_tokens()->Add(r.chunk_tokens.begin(), r.chunk_tokens.end());
    rec.set_sent_unix_us(r.sent_unix_us);
    rec.set_scheduled_unix_us(r.scheduled_unix_us);
    std::printf("wire       : %zu bytes per record of %zu chunks\n", rec.ByteSizeLong(),
                r.chunk_offset_us.size());
  }
  return st.ok() ? 0 : 1;
}

}  // namespace
}  // namespace mstperf::loadgen

int main(int argc, char** argv) {
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  curl_global_init(CURL_GLOBAL_ALL);
  const std::string mode = args.size() > 1 ? args[1] : "";
  if (mode == "open") return mstperf::loadgen::Open();
  if (mode == "closed") {
    // Rounds alternate the two, so that both see the same machine; the ratios are per round.
    std::vector<double> rate_ratio, cpu_ratio;
    for (int round = 0; round < absl::GetFlag(FLAGS_rounds); ++round) {
      mstperf::loadgen::Closed bare;
      if (!absl::GetFlag(FLAGS_runner_only)) bare = mstperf::loadgen::ClosedBare();
      if (absl::GetFlag(FLAGS_bare_only)) continue;
      const mstperf::loadgen::Closed runner = mstperf::loadgen::ClosedRunner();
      if (bare.req_per_s > 0) {
        rate_ratio.push_back(runner.req_per_s / bare.req_per_s);
        cpu_ratio.push_back(bare.cpu_us_per_req / runner.cpu_us_per_req);
        std::printf("round %d    : runner/bare %.0f%% of the completed req/s, %.0f%% by CPU per "
                    "request\n", round + 1, 100 * rate_ratio.back(), 100 * cpu_ratio.back());
      }
    }
    if (rate_ratio.size() > 1) {
      std::sort(rate_ratio.begin(), rate_ratio.end());
      std::sort(cpu_ratio.begin(), cpu_ratio.end());
      std::printf("median     : runner/bare %.0f%% of the completed req/s (range %.0f-%.0f%%), "
                  "%.0f%% by CPU per request\n",
                  100 * rate_ratio[rate_ratio.size() / 2], 100 * rate_ratio.front(),
                  100 * rate_ratio.back(), 100 * cpu_ratio[cpu_ratio.size() / 2]);
    }
    return 0;
  }
  if (mode == "parse") return mstperf::loadgen::Parse();
  if (mode == "memory") return mstperf::loadgen::Memory();
  std::fprintf(stderr, "usage: mstperf-loadgen-bench open|closed|parse|memory [flags]\n");
  return 2;
}
