#include "services/loadgen/prompts.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "services/loadgen/schedule.h"

namespace mstperf::loadgen {
namespace {

constexpr size_t kMaxWordBytes = 15;

void AppendWords(std::string_view text, std::vector<std::string>* words) {
  const absl::string_view t(text.data(), text.size());
  for (absl::string_view w : absl::StrSplit(t, absl::ByAnyChar(" \t\r\n\f\v"), absl::SkipEmpty())) {
    if (w.size() <= kMaxWordBytes) words->emplace_back(w);
  }
}

// Written for mstperf. Plain prose; the builder draws words and runs from it.
constexpr std::string_view kBuiltinCorpus = R"(
A load test is only as honest as the clock that drives it. When a client promises to send one
request every millisecond, it must keep that promise even when the server slows down, because a
client that waits for old answers before it sends new questions quietly lowers the load it
offers, and the server looks better than it is. The schedule is written before the first request
leaves, and every request carries two times: when it should have been sent and when it was.
The difference tells the reader whether the numbers describe the server or the client.
A model server answers in pieces. Each piece arrives as a small event on a long response, and
the time between pieces is what a person feels as the speed of the text on the screen. The first
piece comes after the whole prompt has been read, so long prompts make people wait before they
see anything at all. Later pieces come at the pace of the decoding steps, and that pace slows as
more requests share the same machine, because every step must serve every running request.
Capacity is therefore not one number. For short prompts and short answers a server may finish
thousands of requests each minute, while long prompts with long answers may bring it down to a
few dozen. The useful question is how many requests per minute it can take for a given shape of
work without building a queue that grows and grows. Below that rate, waiting times stay flat
from the start of a run to its end. Above it, every minute adds more waiting than the one before,
and the latency of the last request is far worse than the latency of the first.
To find that rate, the search starts low and doubles the load while the server keeps up. Once a
run fails, it splits the difference between the last good rate and the first bad one, again and
again, until the gap is small. Each run must be long enough to see a trend and short enough that
the whole search ends in reasonable time. Good tools stop a run early when the answer is already
clear, and they write down every request so that anyone can check the verdict later.
Prompts matter as well. If every request sends the same text, a server that remembers recent
prompts does almost no work for the reading step, and the measured capacity is a fantasy. Each
request should therefore carry its own words, in the same language as real traffic, with exactly
the number of tokens that the test claims. Only the server can say how many tokens a text has,
so a careful client asks it, counts, and builds every prompt to measure.
The answers need care too. A stream may end early, an event may be cut in two by the network, a
line may end with a carriage return, a comment may keep the connection alive, and the last event
may carry only the usage numbers. A good reader handles all of these without losing count, and
it marks a request as failed when the stream stops before the server said it was done. Errors
are part of the result: a server that answers quickly with errors is not a fast server.
Finally, the client must not become the bottleneck. It should reuse its connections, keep enough
of them warm for the expected number of requests in flight, and spend little work on each event.
When it cannot keep up, it must say so plainly, with counts of late and dropped requests, rather
than letting a slow client pass for a slow server.
)";

}  // namespace

absl::StatusOr<std::vector<std::string>> LoadCorpusWords(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt.corpus_path: cannot read \"", path, "\""));
  }
  std::vector<std::string> words;
  const bool jsonl = path.size() >= 6 && path.substr(path.size() - 6) == ".jsonl";
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!jsonl) {
      AppendWords(line, &words);
      continue;
    }
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    const nlohmann::json* text = nullptr;
    if (j.is_object()) {
      for (const char* key : {"text", "prompt"}) {
        if (auto it = j.find(key); it != j.end() && it->is_string()) {
          text = &*it;
          break;
        }
      }
    }
    if (text == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "prompt.corpus_path: line ", line_no, " of ", path,
          " is not a JSON object with a \"text\" or \"prompt\" string"));
    }
    AppendWords(text->get_ref<const std::string&>(), &words);
  }
  if (words.size() < 16) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt.corpus_path: ", path, " holds fewer than 16 usable words"));
  }
  return words;
}

std::vector<std::string> BuiltinCorpusWords() {
  std::vector<std::string> words;
  AppendWords(kBuiltinCorpus, &words);
  return words;
}

void PromptBuilder::Index(const std::vector<std::string>& words, size_t max_vocabulary) {
  std::unordered_map<std::string, uint32_t> ids;
  sequence_.reserve(words.size());
  for (const std::string& w : words) {
    auto it = ids.find(w);
    if (it == ids.end()) {
      if (vocab_.size() >= max_vocabulary) continue;
      vocab_.push_back(w);
      it = ids.emplace(w, static_cast<uint32_t>(vocab_.size() - 1)).first;
    }
    sequence_.push_back(it->second);
  }
}

void PromptBuilder::Finalize() {
  one_token_.clear();
  for (uint32_t i = 0; i < vocab_.size(); ++i) {
    if (vocab_tokens_[i] == 1) one_token_.push_back(i);
  }
}

PromptBuilder PromptBuilder::Approximate(std::vector<std::string> words, bool chat) {
  PromptBuilder b;
  b.Index(words, 1u << 20);
  for (const std::string& w : b.vocab_) {
    b.vocab_tokens_.push_back(static_cast<uint32_t>(std::max<size_t>(1, (w.size() + 2) / 6)));
  }
  b.overhead_ = chat ? 12 : 2;  // a typical BOS + head, or a chat template's framing
  b.exact_ = false;
  b.Finalize();
  return b;
}

absl::StatusOr<PromptBuilder> PromptBuilder::Calibrate(std::vector<std::string> words, bool chat,
                                                       const TokenizeFn& tokenize,
                                                       size_t max_vocabulary) {
  PromptBuilder b;
  b.Index(words, max_vocabulary);
  if (b.vocab_.empty()) return absl::InvalidArgumentError("prompt corpus is empty");
  absl::StatusOr<uint32_t> head = tokenize(kHead, chat);
  if (!head.ok()) return head.status();
  b.overhead_ = *head;
  // tokens(" word") = tokens(head + " word") - tokens(head): the word in the position it will
  // have in a prompt, after other text, so tokenizers that treat a leading space specially
  // count it as they will in use.
  for (const std::string& w : b.vocab_) {
    absl::StatusOr<uint32_t> n = tokenize(std::string(kHead) + " " + w, chat);
    if (!n.ok()) return n.status();
    b.vocab_tokens_.push_back(*n > b.overhead_ ? *n - b.overhead_ : 1);
  }
  b.Finalize();
  b.exact_ = !b.one_token_.empty();
  if (!b.exact_) b.note_ = "no one-token word in the corpus to pad prompts with";
  // Check the additive model where it matters: whole prompts of several lengths.
  for (uint32_t target : {b.overhead_ + 1, b.overhead_ + 7, 64u, 301u, 1024u}) {
    if (!b.exact_) break;
    const std::string prompt = b.Build(0x5eed, target, target);
    absl::StatusOr<uint32_t> n = tokenize(prompt, chat);
    if (!n.ok()) return n.status();
    if (*n != target) {
      b.exact_ = false;
      b.note_ = absl::StrCat("a prompt built for ", target, " tokens has ", *n,
                             " in the target's tokenizer");
    }
  }
  return b;
}

std::string PromptBuilder::Build(uint64_t seed, uint64_t index, uint32_t tokens) const {
  std::string text(kHead);
  if (vocab_.empty()) return text;
  uint32_t remaining = tokens > overhead_ ? tokens - overhead_ : 0;
  text.reserve(remaining * 8 + 16);
  uint64_t rng = Mix64(seed ^ 0x70726f6d7074ULL) ^ Mix64(index);
  auto next = [&rng] { return rng = Mix64(rng); };
  auto append = [&](uint32_t id) {
    text.push_back(' ');
    text.append(vocab_[id]);
    remaining -= vocab_tokens_[id];
  };
  // A random opening makes the prompt unique from its first tokens, so no prefix cache block
  // is shared with another request.
  for (int i = 0; i < 4 && remaining > 0; ++i) {
    uint32_t id = static_cast<uint32_t>(next() % vocab_.size());
    if (vocab_tokens_[id] <= remaining) append(id);
  }
  size_t pos = next() % sequence_.size();
  for (size_t steps = 0; remaining > 0 && steps < sequence_.size() * 4; ++steps) {
    uint32_t id = sequence_[pos];
    if (vocab_tokens_[id] > remaining) break;
    append(id);
    if (++pos == sequence_.size()) pos = 0;
  }
  while (remaining > 0 && !one_token_.empty()) append(one_token_[next() % one_token_.size()]);
  return text;
}

}  // namespace mstperf::loadgen
