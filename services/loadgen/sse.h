#ifndef MSTPERF_SERVICES_LOADGEN_SSE_H_
#define MSTPERF_SERVICES_LOADGEN_SSE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"

namespace mstperf::loadgen {

// One server-sent event: its `event:` name (empty when none) and its data (several `data:`
// lines joined by '\n'). The views are valid only during the callback.
struct SseEvent {
  std::string_view event;
  std::string_view data;
};

// Incremental parser of a text/event-stream (the WHATWG rules that matter here): bytes arrive
// in arbitrary pieces (an event split across reads, several events in one read); lines end in
// "\n", "\r\n" or "\r" (even when a "\r\n" is split across reads); lines starting with ':' are
// comments (": ping" keep-alives); `event:` names the event; a blank line dispatches it; `id:`
// and `retry:` are ignored. Pure: no I/O, no clock. Memory: the partial line and the event being
// assembled (bounded by the largest event), reused across events.
class SseParser {
 public:
  using Callback = absl::FunctionRef<void(const SseEvent&)>;

  void Feed(std::string_view bytes, Callback on_event);
  // End of stream: dispatches an event whose blank line never came (a server that closes
  // right after its last data line). Returns true when a partial line or event was pending.
  bool Finish(Callback on_event);

  // Back to the state of a new stream, keeping the buffers' capacity (a parser is reused for
  // many requests).
  void Reset();

  uint64_t events() const { return events_; }

 private:
  // `in_piece`: the line points into the bytes of the current Feed (not into partial_), so a
  // single-line event's data can be passed on without a copy.
  void Line(std::string_view line, bool in_piece, Callback on_event);
  void Dispatch(Callback on_event);

  std::string partial_;  // the unfinished line carried over from the previous Feed
  // The data being assembled: a view into the current piece while it is one line of it (the
  // common case, no copy), else (several lines, or a piece ended before the blank line) data_.
  std::string data_;
  std::string_view data_view_;
  bool data_is_view_ = false;
  std::string event_;
  bool has_data_ = false;
  bool skip_lf_ = false;  // previous piece ended in '\r': a leading '\n' belongs to it
  uint64_t events_ = 0;
};

// What one OpenAI-style streaming chunk (`data:` JSON of /v1/completions or
// /v1/chat/completions) says, as far as timing and counting need.
struct ChunkInfo {
  bool done = false;        // the data was "[DONE]"
  bool malformed = false;   // not a JSON object (or truncated)
  bool error = false;       // an error object: {"error": ...} or {"object": "error", ...}
  std::string error_message;
  bool has_usage = false;   // a non-null "usage" object with completion_tokens
  uint32_t prompt_tokens = 0;
  uint32_t completion_tokens = 0;
  uint32_t choices = 0;         // elements of "choices"
  uint32_t content_deltas = 0;  // choices with non-empty text / delta.content / reasoning
  bool finished = false;        // some choice has a non-null finish_reason

  bool operator==(const ChunkInfo&) const = default;
};

// The validating walker (ChunkScanner's fallback, and the reference for its fast path): one pass
// over the bytes, no allocation (except an error message), validating the JSON structure and reading only the fields above; strings are skipped with their escapes,
// so field names inside generated text never confuse it.
ChunkInfo ScanChunk(std::string_view data);

// ScanChunk for the chunks of one stream, much cheaper for the common case. Consecutive chunks
// of a server share their shape byte for byte except in a few values (the text, the usage
// counts; the id from one request to the next). The scanner keeps the last chunk the walker
// (ScanChunk) accepted as a template: its bytes and the position, kind and role of every scalar
// value, with the values seen to change marked "thawed". A new chunk is accepted by the fast
// path only when it is the template's bytes exactly, except that each thawed value is replaced
// by a value of the same kind (a complete JSON string, or an unsigned integer without leading
// zeros). Such a chunk is valid JSON with the template's structure and keys, so its ChunkInfo
// is the template's with the thawed values' contributions (content, usage numbers) recomputed.
// Anything else (a new shape, a value of another kind, whitespace moved, truncation, a
// top-level "object" value that now says "error") goes to the walker, which then updates the
// template. The results are always exactly ScanChunk's (tested on every shape).
// Pure; memory: one chunk's bytes and its values, ~0.8 KiB for vLLM's chunks (no template is
// kept from chunks above 16 KiB).
class ChunkScanner {
 public:
  ChunkInfo Scan(std::string_view data);

  // Chunks answered by the template, and by the walker.
  uint64_t fast() const { return fast_; }
  uint64_t walked() const { return walked_; }

  // One scalar value of the template (public for the walker in sse.cc).
  struct Value {
    enum Kind : uint8_t { kString, kNumber, kNull, kTrue, kFalse };
    enum Role : uint8_t { kNone, kText, kCompletion, kPrompt, kObject };
    uint32_t begin, end;  // byte range, quotes included
    uint8_t kind;
    uint8_t role;
    uint8_t choice;  // the choice a kText value belongs to
    bool thawed;
  };

 private:
  bool Match(std::string_view data, ChunkInfo* info) const;
  void Learn(std::string_view data, const ChunkInfo& info, int completion_writer,
             int prompt_writer);

  bool usable_ = false;
  std::string template_;
  std::vector<Value> values_;
  std::vector<Value> scratch_;
  std::vector<uint32_t> thawed_;  // indices into values_, in order
  ChunkInfo base_;
  uint64_t frozen_content_ = 0;  // choices whose content is non-empty in a frozen value
  int completion_writer_ = -1;   // the value that sets completion_tokens (-1: not a thawed one)
  int prompt_writer_ = -1;
  uint64_t fast_ = 0;
  uint64_t walked_ = 0;
};

// The same with a full nlohmann::json parse: the reference the scanner is tested (and
// benchmarked) against.
ChunkInfo ParseChunkJson(std::string_view data);

// Turns chunks into token counts. Tokens come from increases of usage.completion_tokens when
// the server sends usage with its content chunks (vLLM's continuous_usage_stats), so one chunk
// may carry several tokens; otherwise one token per content delta. A final usage-only chunk
// (empty choices) after plain content chunks sets the totals without inventing a chunk.
class TokenCounter {
 public:
  // Returns the tokens this chunk carried (0 for none).
  uint32_t OnChunk(const ChunkInfo& chunk);

  uint32_t prompt_tokens() const { return prompt_tokens_; }
  // From usage when the server sent it, else the count of tokens seen.
  uint32_t completion_tokens() const { return usage_seen_ ? usage_completion_ : counted_; }
  uint32_t counted() const { return counted_; }
  bool finished() const { return finished_; }

 private:
  bool usage_seen_ = false;
  uint32_t usage_completion_ = 0;
  uint32_t prompt_tokens_ = 0;
  uint32_t counted_ = 0;
  bool finished_ = false;
};

}  // namespace mstperf::loadgen

#endif  // MSTPERF_SERVICES_LOADGEN_SSE_H_
