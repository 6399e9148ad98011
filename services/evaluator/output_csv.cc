#include "services/evaluator/output_csv.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace mstperf::evaluator {
namespace {

constexpr char kTimestampFormat[] = "%Y%m%dT%H%M%S";
const char* const kColumns[] = {"received_timestamp", "complete_response_time", "success_rate",
                                "success", "worker_idx", "request_idx"};

void SortByReceived(std::vector<OutputRow>& rows) {
  std::stable_sort(rows.begin(), rows.end(), [](const OutputRow& a, const OutputRow& b) {
    return a.received_unix_s < b.received_unix_s;
  });
}

absl::Status CellError(int line, absl::string_view column, absl::string_view message) {
  return absl::InvalidArgumentError(
      absl::StrCat("output.csv line ", line, ", column ", column, ": ", message));
}

}  // namespace

std::string PythonFloat(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), x);
  std::string s(buf, end);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string FormatReceivedTimestamp(int64_t unix_s) {
  return absl::FormatTime(kTimestampFormat, absl::FromUnixSeconds(unix_s), absl::UTCTimeZone());
}

absl::StatusOr<int64_t> ParseReceivedTimestamp(absl::string_view text) {
  // Parsed by hand: absl::ParseTime's %Y takes every digit it sees, and the format has no
  // separators between the fields.
  auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a UTC time of the form YYYYMMDDTHHMMSS"));
  };
  if (text.size() != 15 || text[8] != 'T') return bad();
  auto field = [&](size_t pos, size_t len, int* out) {
    int v = 0;
    for (size_t i = pos; i < pos + len; ++i) {
      if (text[i] < '0' || text[i] > '9') return false;
      v = v * 10 + (text[i] - '0');
    }
    *out = v;
    return true;
  };
  int y, mo, d, h, mi, se;
  if (!field(0, 4, &y) || !field(4, 2, &mo) || !field(6, 2, &d) || !field(9, 2, &h) ||
      !field(11, 2, &mi) || !field(13, 2, &se)) {
    return bad();
  }
  const absl::CivilSecond cs(y, mo, d, h, mi, se);
  // CivilSecond normalizes out-of-range fields (month 13 -> next year); reject those.
  if (cs.year() != y || cs.month() != mo || cs.day() != d || cs.hour() != h ||
      cs.minute() != mi || cs.second() != se) {
    return bad();
  }
  return absl::ToUnixSeconds(absl::FromCivil(cs, absl::UTCTimeZone()));
}

absl::StatusOr<std::vector<OutputRow>> ParseOutputCsv(absl::string_view text) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  if (lines.empty() || absl::StripAsciiWhitespace(lines[0]).empty()) {
    return absl::InvalidArgumentError("output.csv line 1: missing header");
  }
  std::map<std::string, int> index;
  std::vector<absl::string_view> header = absl::StrSplit(lines[0], ',');
  for (size_t i = 0; i < header.size(); ++i) {
    std::string name(absl::StripAsciiWhitespace(header[i]));
    if (i == 0 && absl::StartsWith(name, "\xEF\xBB\xBF")) name = name.substr(3);  // UTF-8 BOM
    index.emplace(name, static_cast<int>(i));
  }
  for (const char* required : {"received_timestamp", "complete_response_time"}) {
    if (!index.count(required)) {
      return absl::InvalidArgumentError(
          absl::StrCat("output.csv line 1: header lacks the column ", required));
    }
  }
  auto col = [&](const char* name) { return index.count(name) ? index[name] : -1; };
  const int c_ts = col("received_timestamp"), c_lat = col("complete_response_time"),
            c_rate = col("success_rate"), c_ok = col("success"), c_worker = col("worker_idx"),
            c_req = col("request_idx");

  std::vector<OutputRow> rows;
  rows.reserve(lines.size());
  std::vector<absl::string_view> cells;  // reused: one allocation for the whole file
  for (size_t li = 1; li < lines.size(); ++li) {
    const int line = static_cast<int>(li) + 1;
    absl::string_view raw = lines[li];
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    if (absl::StripAsciiWhitespace(raw).empty()) continue;
    cells.clear();
    for (absl::string_view cell : absl::StrSplit(raw, ',')) cells.push_back(cell);
    if (cells.size() != header.size()) {
      return absl::InvalidArgumentError(absl::StrCat("output.csv line ", line, ": ", cells.size(),
                                                     " fields, the header has ", header.size()));
    }
    auto cell = [&](int c) { return absl::StripAsciiWhitespace(cells[static_cast<size_t>(c)]); };
    OutputRow row;
    absl::StatusOr<int64_t> ts = ParseReceivedTimestamp(cell(c_ts));
    if (!ts.ok()) return CellError(line, "received_timestamp", ts.status().message());
    row.received_unix_s = *ts;
    if (!absl::SimpleAtod(cell(c_lat), &row.latency_ms) || !std::isfinite(row.latency_ms) ||
        row.latency_ms < 0) {
      return CellError(line, "complete_response_time",
                       absl::StrCat("'", cell(c_lat), "' is not a non-negative number"));
    }
    if (c_rate >= 0) {
      if (!absl::SimpleAtod(cell(c_rate), &row.success_rate_pct) ||
          !(row.success_rate_pct >= 0 && row.success_rate_pct <= 100)) {
        return CellError(line, "success_rate",
                         absl::StrCat("'", cell(c_rate), "' is not a percentage"));
      }
    } else {
      row.success_rate_pct = std::nan("");
    }
    if (c_ok >= 0) {
      if (!absl::SimpleAtob(cell(c_ok), &row.success)) {
        return CellError(line, "success", absl::StrCat("'", cell(c_ok), "' is not True/False"));
      }
    } else {
      row.success = true;
    }
    for (auto [c, name, field] : {std::tuple{c_worker, "worker_idx", &row.worker_idx},
                                  std::tuple{c_req, "request_idx", &row.request_idx}}) {
      if (c < 0) continue;
      if (!absl::SimpleAtoi(cell(c), field) || *field < 0) {
        return CellError(line, name,
                         absl::StrCat("'", cell(c), "' is not a non-negative integer"));
      }
    }
    rows.push_back(row);
  }
  // A file without a success_rate column: compute it as the original's convert step would.
  if (c_rate < 0 && !rows.empty()) {
    size_t ok = 0;
    for (const OutputRow& r : rows) ok += r.success;
    const double rate = static_cast<double>(ok) / static_cast<double>(rows.size()) * 100.0;
    for (OutputRow& r : rows) r.success_rate_pct = rate;
  }
  return rows;
}

std::string FormatOutputCsv(const std::vector<OutputRow>& rows) {
  std::string out = absl::StrJoin(kColumns, ",") + "\n";
  out.reserve(rows.size() * 64);
  char lat[64];
  for (const OutputRow& r : rows) {
    std::snprintf(lat, sizeof(lat), "%.3f", r.latency_ms);
    absl::StrAppend(&out, FormatReceivedTimestamp(r.received_unix_s), ",", lat, ",",
                    PythonFloat(r.success_rate_pct), ",", r.success ? "True" : "False", ",",
                    r.worker_idx < 0 ? 0 : r.worker_idx, ",", r.request_idx, "\n");
  }
  return out;
}

OutputRow RowFromRecord(const mstperf::v1::RequestRecord& rec) {
  const int64_t sent = rec.sent_unix_us() != 0 ? rec.sent_unix_us() : rec.scheduled_unix_us();
  const int64_t end = rec.end_unix_us() != 0 ? rec.end_unix_us() : sent;
  OutputRow row;
  // Floor division: the original truncates the end time to the second.
  row.received_unix_s = end >= 0 ? end / 1000000 : -((-end + 999999) / 1000000);
  row.latency_ms = static_cast<double>(std::max<int64_t>(0, end - sent)) / 1000.0;
  row.success = rec.success() && rec.end_unix_us() != 0;
  row.worker_idx = rec.replica_idx();
  row.request_idx = static_cast<int64_t>(rec.request_idx());
  return row;
}

void FinishRows(std::vector<OutputRow>& rows) {
  size_t ok = 0;
  for (const OutputRow& r : rows) ok += r.success;
  const double rate =
      rows.empty() ? 0.0 : static_cast<double>(ok) / static_cast<double>(rows.size()) * 100.0;
  for (OutputRow& r : rows) r.success_rate_pct = rate;
  SortByReceived(rows);
}

std::string OutputCsvFromRecords(const std::vector<const mstperf::v1::RequestRecord*>& records,
                                 double success_rate_pct) {
  std::vector<OutputRow> rows;
  rows.reserve(records.size());
  for (const mstperf::v1::RequestRecord* rec : records) {
    rows.push_back(RowFromRecord(*rec));
    rows.back().success_rate_pct = success_rate_pct;
  }
  SortByReceived(rows);
  return FormatOutputCsv(rows);
}

std::vector<OutputRow> RowsFromRecords(const std::vector<mstperf::v1::RequestRecord>& records) {
  std::vector<OutputRow> rows;
  rows.reserve(records.size());
  for (const auto& rec : records) rows.push_back(RowFromRecord(rec));
  FinishRows(rows);
  return rows;
}

mstperf::v1::RequestRecord RecordFromRow(const OutputRow& row, uint64_t row_number) {
  mstperf::v1::RequestRecord rec;
  rec.set_request_idx(row.request_idx >= 0 ? static_cast<uint64_t>(row.request_idx) : row_number);
  rec.set_replica_idx(row.worker_idx >= 0 ? static_cast<uint32_t>(row.worker_idx) : 0);
  const int64_t end = row.received_unix_s * 1000000;
  const int64_t sent = end - std::llround(row.latency_ms * 1000.0);
  rec.set_scheduled_unix_us(sent);
  rec.set_sent_unix_us(sent);
  rec.set_end_unix_us(end);
  rec.set_success(row.success);
  if (!row.success) rec.set_error_kind(mstperf::v1::ERROR_KIND_OTHER);
  return rec;
}

}  // namespace mstperf::evaluator
