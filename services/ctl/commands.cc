// run, status, list, cancel: mstperfctl as a client of the SearchController.
#include "services/ctl/commands.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "mstperf/v1/controller.grpc.pb.h"
#include "services/ctl/capacity.h"
#include "services/ctl/common.h"
#include "services/ctl/env_file.h"
#include "services/ctl/format.h"

namespace mstperf::ctl {
namespace {

using mstperf::v1::Experiment;
using mstperf::v1::ExperimentEvent;
using mstperf::v1::SearchController;

bool Terminal(mstperf::v1::ExperimentState s) {
  return s == mstperf::v1::EXPERIMENT_STATE_SUCCEEDED ||
         s == mstperf::v1::EXPERIMENT_STATE_FAILED || s == mstperf::v1::EXPERIMENT_STATE_CANCELLED;
}

std::map<std::string, double> Capacities(const CtlOptions& options, const Experiment& e) {
  if (!options.capacity) return {};
  return QueryCapacities(e.spec());
}

// Prints the events of one watch: a progress bar line rewritten in place on a TTY, plain lines
// otherwise.
class ProgressDisplay {
 public:
  explicit ProgressDisplay(const CtlOptions& options) : every_s_(options.progress_every_s) {
    if (options.progress == "bar") {
      bar_ = true;
    } else if (options.progress == "auto") {
      bar_ = isatty(STDOUT_FILENO) == 1;
    }
    quiet_ = options.progress == "none";
  }

  void Handle(const ExperimentEvent& ev) {
    const Experiment& e = ev.experiment();
    const mstperf::v1::PairResult* pair =
        static_cast<int>(ev.pair_index()) < e.pairs_size() ? &e.pairs(ev.pair_index()) : nullptr;
    switch (ev.kind()) {
      case ExperimentEvent::KIND_SNAPSHOT:
        if (static_cast<int>(e.current_pair()) < e.pairs_size()) {
          const auto& now = e.pairs(e.current_pair());
          req_min_ = now.current_req_min();
          // Joining a running search: say where it stands (its iteration may have started
          // before this watch).
          if (!snapshot_shown_ && e.state() == mstperf::v1::EXPERIMENT_STATE_RUNNING &&
              now.current_req_min() > 0) {
            Line(absl::StrCat("now: pair ", PairText(now.tokens()), " | ", StageName(now.stage()),
                              " | REQ_MIN ", FormatRate(now.current_req_min()), " | ",
                              now.iterations_size(), " iteration(s) done"));
          }
        }
        snapshot_shown_ = true;
        break;
      case ExperimentEvent::KIND_ITERATION_STARTED:
        if (pair == nullptr) break;
        req_min_ = ev.iteration().req_min();
        last_plain_ = -1e9;
        Line(FormatIterationStarted(*pair, ev.iteration()));
        break;
      case ExperimentEvent::KIND_PROGRESS:
        // The controller's "experiment running" notice carries no iteration progress.
        if (quiet_ || ev.progress().duration_s() <= 0) break;
        if (bar_) {
          std::cout << "\r\033[K  " << FormatProgress(ev.progress(), req_min_, true)
                    << std::flush;
          bar_shown_ = true;
        } else if (ev.progress().elapsed_s() - last_plain_ >= every_s_) {
          last_plain_ = ev.progress().elapsed_s();
          Line("  " + FormatProgress(ev.progress(), req_min_, false));
        }
        break;
      case ExperimentEvent::KIND_ITERATION_FINISHED:
        if (pair != nullptr) Line(FormatIterationFinished(*pair, ev.iteration()));
        break;
      case ExperimentEvent::KIND_PAIR_FINISHED:
        if (pair != nullptr) Line(FormatPairFinished(*pair));
        break;
      case ExperimentEvent::KIND_EXPERIMENT_FINISHED:
        Line(absl::StrCat("experiment ", e.id(), " ", StateName(e.state()),
                          ev.message().empty() ? "" : ": " + ev.message()));
        break;
      default:
        break;
    }
  }

  // Ends a bar line so the next output starts on a fresh line.
  void Finish() {
    if (bar_shown_) std::cout << "\r\033[K" << std::flush;
    bar_shown_ = false;
  }

 private:
  void Line(const std::string& text) {
    Finish();
    std::cout << text << std::endl;
  }

  bool bar_ = false;
  bool quiet_ = false;
  bool bar_shown_ = false;
  bool snapshot_shown_ = false;
  double every_s_;
  double last_plain_ = -1e9;
  double req_min_ = 0;
};

// Prints the final state; the exit code follows the experiment's state.
int PrintResult(const CtlOptions& options, const Experiment& e) {
  std::cout << "\n" << FormatMstTable(e, Capacities(options, e));
  if (!e.results_dir().empty()) {
    std::cout << "files: " << e.results_dir() << "/requests/<pair>/<timestamp>/\n";
  }
  switch (e.state()) {
    case mstperf::v1::EXPERIMENT_STATE_SUCCEEDED:
      return kExitOk;
    case mstperf::v1::EXPERIMENT_STATE_FAILED:
      return Fail(kExitFailed, absl::StrCat("experiment ", e.id(), " failed: ", e.error()));
    case mstperf::v1::EXPERIMENT_STATE_CANCELLED:
      return Fail(kExitFailed, absl::StrCat("experiment ", e.id(), " was cancelled"));
    default:
      return Fail(kExitFailed, absl::StrCat("experiment ", e.id(), " is ", StateName(e.state())));
  }
}

}  // namespace

int RunCommand(const CtlOptions& options) {
  auto text = ReadFile(options.env_file);
  if (!text.ok()) {
    return Fail(kExitUsage, absl::StrCat(text.status().message(),
                                         " (--env-file names the experiment's .env)"));
  }
  auto parsed = SpecFromEnvText(*text, options.env_file);
  if (!parsed.ok()) return Fail(kExitUsage, std::string(parsed.status().message()));
  for (const auto& w : parsed->warnings) std::cerr << "warning: " << w << "\n";

  auto stub = SearchController::NewStub(MakeChannel(options.controller));
  mstperf::v1::StartExperimentRequest start;
  *start.mutable_spec() = parsed->spec;
  start.set_experiment_id(options.experiment_id);
  Experiment experiment;
  {
    grpc::ClientContext ctx;
    // Waits a little for a controller that is still starting (make up, then run at once).
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    ctx.set_wait_for_ready(true);
    grpc::Status s = stub->StartExperiment(&ctx, start, &experiment);
    if (!s.ok()) {
      return Fail(ExitCodeFor(s), DescribeRpcError(s, "controller", options.controller));
    }
  }
  const std::string id = experiment.id();
  std::cout << "experiment " << id << " started: " << parsed->spec.tokens_size()
            << " pair(s) against " << parsed->spec.target().url();
  if (!experiment.results_dir().empty()) std::cout << ", results in " << experiment.results_dir();
  std::cout << std::endl;

  ProgressDisplay display(options);
  std::atomic<bool> detached{false};
  Experiment latest = experiment;
  // The watch is re-opened if the controller restarts (it resumes the experiment).
  absl::Time give_up = absl::InfiniteFuture();
  while (true) {
    grpc::ClientContext ctx;
    ctx.set_wait_for_ready(true);
    mstperf::v1::WatchExperimentRequest req;
    req.set_experiment_id(id);
    auto reader = stub->WatchExperiment(&ctx, req);
    grpc::Status status;
    {
      ScopedInterruptHandler on_ctrl_c([&] {
        detached = true;
        ctx.TryCancel();
      });
      ExperimentEvent ev;
      bool stop_reading = false;
      while (!stop_reading && reader->Read(&ev)) {
        give_up = absl::InfiniteFuture();
        latest = ev.experiment();
        display.Handle(ev);
        stop_reading = ev.kind() == ExperimentEvent::KIND_EXPERIMENT_FINISHED ||
                       Terminal(latest.state());
      }
      // Finish() waits for the server to end the stream; when we stop first, end it here.
      if (stop_reading) ctx.TryCancel();
      status = reader->Finish();
    }
    display.Finish();
    if (detached) {
      std::cout << "\ndetached: experiment " << id
                << " keeps running on the controller.\n  follow it:  mstperfctl status " << id
                << " --controller " << options.controller
                << "\n  cancel it:  mstperfctl cancel " << id << " --controller "
                << options.controller << std::endl;
      return kExitInterrupted;
    }
    if (Terminal(latest.state())) break;
    // The stream ended before the experiment did: ask for its state, and watch again while
    // the controller comes back (a restarted controller resumes it).
    grpc::ClientContext get_ctx;
    get_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    mstperf::v1::GetExperimentRequest get;
    get.set_experiment_id(id);
    Experiment now;
    grpc::Status gs = stub->GetExperiment(&get_ctx, get, &now);
    if (gs.ok()) {
      latest = now;
      if (Terminal(latest.state())) break;
      give_up = absl::InfiniteFuture();
    } else {
      if (give_up == absl::InfiniteFuture()) give_up = absl::Now() + absl::Seconds(60);
      if (absl::Now() > give_up) {
        return Fail(kExitFailed,
                    absl::StrCat(DescribeRpcError(gs, "controller", options.controller),
                                 "; the experiment may still be running: mstperfctl status ",
                                 id));
      }
      std::cerr << "lost the controller (" << (status.ok() ? gs : status).error_message()
                << "); retrying" << std::endl;
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
  }
  return PrintResult(options, latest);
}

int StatusCommand(const CtlOptions& options, const std::string& id_arg) {
  auto stub = SearchController::NewStub(MakeChannel(options.controller));
  std::string id = id_arg;
  if (id.empty()) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    mstperf::v1::ListExperimentsResponse list;
    grpc::Status s = stub->ListExperiments(&ctx, {}, &list);
    if (!s.ok()) return Fail(ExitCodeFor(s), DescribeRpcError(s, "controller", options.controller));
    if (list.experiments().empty()) return Fail(kExitFailed, "the controller has no experiments");
    auto latest = std::max_element(
        list.experiments().begin(), list.experiments().end(),
        [](const Experiment& a, const Experiment& b) {
          return a.created_unix_us() < b.created_unix_us();
        });
    id = latest->id();
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  mstperf::v1::GetExperimentRequest req;
  req.set_experiment_id(id);
  Experiment e;
  grpc::Status s = stub->GetExperiment(&ctx, req, &e);
  if (!s.ok()) return Fail(ExitCodeFor(s), DescribeRpcError(s, "controller", options.controller));
  std::cout << FormatExperimentStatus(e, Capacities(options, e));
  return e.state() == mstperf::v1::EXPERIMENT_STATE_FAILED ? kExitFailed : kExitOk;
}

int ListCommand(const CtlOptions& options) {
  auto stub = SearchController::NewStub(MakeChannel(options.controller));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  mstperf::v1::ListExperimentsResponse list;
  grpc::Status s = stub->ListExperiments(&ctx, {}, &list);
  if (!s.ok()) return Fail(ExitCodeFor(s), DescribeRpcError(s, "controller", options.controller));
  std::vector<Experiment> experiments(list.experiments().begin(), list.experiments().end());
  std::sort(experiments.begin(), experiments.end(), [](const Experiment& a, const Experiment& b) {
    return a.created_unix_us() < b.created_unix_us();
  });
  std::cout << FormatExperimentList(experiments);
  return kExitOk;
}

int CancelCommand(const CtlOptions& options, const std::string& id) {
  if (id.empty()) return Fail(kExitUsage, "cancel needs an experiment id: mstperfctl cancel ID");
  auto stub = SearchController::NewStub(MakeChannel(options.controller));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  mstperf::v1::CancelExperimentRequest req;
  req.set_experiment_id(id);
  Experiment e;
  grpc::Status s = stub->CancelExperiment(&ctx, req, &e);
  if (!s.ok()) return Fail(ExitCodeFor(s), DescribeRpcError(s, "controller", options.controller));
  std::cout << "experiment " << e.id() << ": " << StateName(e.state()) << "\n";
  return kExitOk;
}

int EnvHelpCommand() {
  std::vector<std::vector<std::string>> rows;
  for (const auto& d : EnvKeyDocs()) rows.push_back({d.key, d.default_value, d.meaning});
  std::cout << FormatTable({"key", "default", "meaning"}, rows);
  return kExitOk;
}

}  // namespace mstperf::ctl
