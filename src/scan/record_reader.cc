// Plain-text and JSONL record readers (see record_reader.h).
#include "tracemark/scan/record_reader.h"

#include <simdjson.h>

#include <algorithm>
#include <vector>

#include "fmt/format.h"
#include "tracemark/scan/byte_source.h"
#include "tracemark/scan/line_reader.h"

namespace tracemark::scan {
namespace {

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool IsBlank(std::string_view s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '\f' && c != '\v') return false;
  }
  return true;
}

// Deepest bracket nesting outside strings. simdjson's on-demand API skips unread values without
// applying its depth limit, so the limit is checked here, in one pass over the line.
size_t JsonNesting(std::string_view text) {
  size_t depth = 0, max_depth = 0;
  bool in_string = false, escape = false;
  for (char c : text) {
    if (in_string) {
      if (escape) {
        escape = false;
      } else if (c == '\\') {
        escape = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return max_depth;
}

const char* StreamErrorKind(const Status& s) {
  switch (s.code()) {
    case StatusCode::kResourceExhausted: return kErrDecompressionLimit;
    case StatusCode::kIoError: return kErrIo;
    default: return kErrCorruptStream;
  }
}

std::string DefaultDocId(const std::string& name, uint64_t line) {
  return fmt::format("{}:{}", name, line);
}

class FileRecordReader final : public RecordReader {
 public:
  FileRecordReader(std::unique_ptr<ByteSource> source, std::string name, RecordOptions options)
      : source_(std::move(source)),
        name_(std::move(name)),
        options_(std::move(options)),
        lines_(source_.get(), options_.limits.max_line_bytes, options_.limits.read_chunk_bytes) {
    jsonl_ = options_.format == InputFormat::kJsonl ||
             (options_.format == InputFormat::kAuto && LooksLikeJsonl(name_));
    whole_file_ = options_.whole_file && !jsonl_;
  }

  Outcome Next(const Filter& wanted, Record* record, ReadError* error) override {
    if (finished_) return Outcome::kEnd;
    if (whole_file_) return NextWholeFile(wanted, record, error);
    Line line;
    for (;;) {
      if (!lines_.Next(&line)) {
        finished_ = true;
        if (!lines_.status().ok()) {
          const uint64_t index = lines_.lines();
          *error = ReadError{StreamErrorKind(lines_.status()), index, index + 1,
                             source_->raw_offset(), true, lines_.status().message()};
          return Outcome::kError;
        }
        return Outcome::kEnd;
      }
      const uint64_t index = line.number - 1;
      if (wanted && !wanted(index)) continue;
      if (line.too_long) {
        *error = ReadError{kErrLineTooLong, index, line.number, line.offset, false,
                           fmt::format("line of {} bytes is over the limit of {} bytes "
                                       "(max_line_bytes); skipped",
                                       line.length, options_.limits.max_line_bytes)};
        return Outcome::kError;
      }
      if (IsBlank(line.text)) continue;
      record->index = index;
      record->line = line.number;
      record->offset = line.offset;
      std::string message;
      const char* kind = jsonl_ ? ParseJson(line.text, record, &message)
                                : ParseText(line.text, record, &message);
      if (kind != nullptr) {
        *error = ReadError{kind, index, line.number, line.offset, false, std::move(message)};
        return Outcome::kError;
      }
      if (record->text.empty()) continue;  // e.g. a chat with no assistant message
      return Outcome::kRecord;
    }
  }

  uint64_t raw_offset() const override { return source_->raw_offset(); }
  uint64_t raw_size() const override { return source_->raw_size(); }

 private:
  const char* ParseText(std::string_view text, Record* record, std::string* message) {
    if (!IsValidUtf8(text)) {
      *message = "line is not valid UTF-8";
      return kErrInvalidUtf8;
    }
    record->doc_id = DefaultDocId(name_, record->line);
    record->text.assign(text);
    return nullptr;
  }

  Outcome NextWholeFile(const Filter& wanted, Record* record, ReadError* error) {
    finished_ = true;
    if (wanted && !wanted(0)) return Outcome::kEnd;
    const size_t cap = options_.limits.max_document_bytes;
    std::string text;
    std::vector<char> chunk(std::max<size_t>(options_.limits.read_chunk_bytes, 16));
    uint64_t total = 0;
    for (;;) {
      Result<size_t> got = source_->Read(chunk.data(), chunk.size());
      if (!got.ok()) {
        *error = ReadError{StreamErrorKind(got.status()), 0, 1, source_->raw_offset(), true,
                           got.status().message()};
        return Outcome::kError;
      }
      if (*got == 0) break;
      total += *got;
      if (total <= cap) text.append(chunk.data(), *got);
    }
    if (total > cap) {
      *error = ReadError{kErrDocumentTooLong, 0, 1, 0, false,
                         fmt::format("document of {} bytes is over the limit of {} bytes "
                                     "(max_document_bytes); skipped",
                                     total, cap)};
      return Outcome::kError;
    }
    if (IsBlank(text)) return Outcome::kEnd;
    if (!IsValidUtf8(text)) {
      *error = ReadError{kErrInvalidUtf8, 0, 1, 0, false, "file is not valid UTF-8"};
      return Outcome::kError;
    }
    record->index = 0;
    record->line = 1;
    record->offset = 0;
    record->doc_id = name_;
    record->text = std::move(text);
    return Outcome::kRecord;
  }

  // Appends a message's content (a string, or an array of {"type":"text","text":...} parts).
  const char* AppendContent(simdjson::ondemand::value content, std::string* out,
                            std::string* message) {
    simdjson::ondemand::json_type type;
    if (content.type().get(type)) return Invalid(message, "bad message content");
    if (type == simdjson::ondemand::json_type::string) {
      std::string_view s;
      if (content.get_string().get(s)) return Invalid(message, "bad message content string");
      if (!out->empty() && !s.empty()) out->push_back('\n');
      out->append(s);
      return nullptr;
    }
    if (type == simdjson::ondemand::json_type::null) return nullptr;
    if (type != simdjson::ondemand::json_type::array) {
      *message = "message content is neither a string nor an array of parts";
      return kErrMissingField;
    }
    simdjson::ondemand::array parts;
    if (content.get_array().get(parts)) return Invalid(message, "bad content array");
    for (auto part_result : parts) {
      simdjson::ondemand::object part;
      if (part_result.get_object().get(part)) return Invalid(message, "content part is not an object");
      for (auto f : part) {
        std::string_view key;
        if (f.unescaped_key().get(key)) return Invalid(message, "bad key in content part");
        if (key != "text") continue;
        std::string_view s;
        if (f.value().get_string().get(s)) return Invalid(message, "content part text is not a string");
        if (!out->empty() && !s.empty()) out->push_back('\n');
        out->append(s);
      }
    }
    return nullptr;
  }

  const char* ParseMessages(simdjson::ondemand::value value, std::string* out,
                            std::string* message) {
    simdjson::ondemand::array messages;
    if (value.get_array().get(messages)) return Invalid(message, "bad messages array");
    size_t count = 0;
    for (auto msg_result : messages) {
      if (++count > kMaxChatMessages) {
        *message = fmt::format("more than {} chat messages (kMaxChatMessages)", kMaxChatMessages);
        return kErrInvalidJson;
      }
      simdjson::ondemand::object msg;
      if (msg_result.get_object().get(msg)) return Invalid(message, "chat message is not an object");
      // Keys may come in any order: collect the role, keep the content in a scratch string.
      bool role_ok = options_.all_roles;
      bool has_role = false;
      scratch_.clear();
      for (auto f : msg) {
        std::string_view key;
        if (f.unescaped_key().get(key)) return Invalid(message, "bad key in chat message");
        simdjson::ondemand::value v;
        if (f.value().get(v)) return Invalid(message, "bad value in chat message");
        if (key == "role" && !has_role) {
          std::string_view role;
          if (v.get_string().get(role)) return Invalid(message, "chat role is not a string");
          has_role = true;
          if (role == "assistant") role_ok = true;
        } else if (key == "content") {
          if (const char* k = AppendContent(v, &scratch_, message)) return k;
        }
      }
      if (role_ok && !scratch_.empty()) {
        if (!out->empty()) out->push_back('\n');
        out->append(scratch_);
      }
    }
    return nullptr;
  }

  static const char* Invalid(std::string* message, std::string_view what) {
    *message = fmt::format("invalid JSON: {}", what);
    return kErrInvalidJson;
  }

  const char* ParseJson(std::string_view text, Record* record, std::string* message) {
    if (!parser_ready_) {
      if (parser_.allocate(options_.limits.max_line_bytes + 1, options_.limits.max_json_depth)) {
        *message = "cannot allocate the JSON parser";
        return kErrInvalidJson;
      }
      parser_ready_ = true;
    }
    if (JsonNesting(text) > options_.limits.max_json_depth) {
      *message = fmt::format("JSON nesting deeper than {} (max_json_depth)",
                             options_.limits.max_json_depth);
      return kErrInvalidJson;
    }
    padded_.resize(text.size() + simdjson::SIMDJSON_PADDING);
    std::copy(text.begin(), text.end(), padded_.begin());
    simdjson::ondemand::document doc;
    auto err = parser_.iterate(padded_.data(), text.size(), padded_.size()).get(doc);
    if (err == simdjson::UTF8_ERROR) {
      *message = "record is not valid UTF-8";
      return kErrInvalidUtf8;
    }
    if (err) return Invalid(message, simdjson::error_message(err));
    simdjson::ondemand::object obj;
    if ((err = doc.get_object().get(obj))) {
      return Invalid(message, err == simdjson::INCORRECT_TYPE ? "record is not a JSON object"
                                                             : simdjson::error_message(err));
    }
    bool have_text = false;
    bool have_id = false;
    record->text.clear();
    for (auto field_result : obj) {
      simdjson::ondemand::field field;
      if ((err = std::move(field_result).get(field))) return Invalid(message, simdjson::error_message(err));
      std::string_view key;
      if ((err = field.unescaped_key().get(key))) return Invalid(message, simdjson::error_message(err));
      simdjson::ondemand::value value = field.value();
      if (key == "id" && !have_id) {
        simdjson::ondemand::json_type type;
        if ((err = value.type().get(type))) return Invalid(message, simdjson::error_message(err));
        std::string_view id;
        if (type == simdjson::ondemand::json_type::string) {
          if ((err = value.get_string().get(id))) return Invalid(message, simdjson::error_message(err));
        } else if (type == simdjson::ondemand::json_type::number) {
          id = value.raw_json_token();
          while (!id.empty() && (id.back() == ' ' || id.back() == '\t' || id.back() == '\r' ||
                                 id.back() == '\n')) {
            id.remove_suffix(1);
          }
        }
        if (!id.empty() && id.size() <= kMaxDocIdBytes) {
          record->doc_id.assign(id);
          have_id = true;
        }
      } else if (key == options_.field && !have_text) {
        simdjson::ondemand::json_type type;
        if ((err = value.type().get(type))) return Invalid(message, simdjson::error_message(err));
        if (type == simdjson::ondemand::json_type::string) {
          std::string_view s;
          if ((err = value.get_string().get(s))) return Invalid(message, simdjson::error_message(err));
          record->text.assign(s);
        } else if (type == simdjson::ondemand::json_type::array) {
          if (const char* k = ParseMessages(value, &record->text, message)) return k;
        } else {
          *message = fmt::format("field \"{}\" is neither a string nor a chat messages array",
                                 options_.field);
          return kErrMissingField;
        }
        have_text = true;
      }
    }
    // simdjson 3.0 has no document::at_end(): current_location() is OUT_OF_BOUNDS at the end.
    if (doc.current_location().error() != simdjson::OUT_OF_BOUNDS) {
      return Invalid(message, "trailing content after the record");
    }
    if (!have_text) {
      *message = fmt::format("record has no field \"{}\"", options_.field);
      return kErrMissingField;
    }
    if (!have_id) record->doc_id = DefaultDocId(name_, record->line);
    return nullptr;
  }

  std::unique_ptr<ByteSource> source_;
  std::string name_;
  RecordOptions options_;
  LineReader lines_;
  bool jsonl_ = false;
  bool whole_file_ = false;
  bool finished_ = false;
  simdjson::ondemand::parser parser_;
  bool parser_ready_ = false;
  std::string padded_;
  std::string scratch_;
};

}  // namespace

bool LooksLikeJsonl(std::string_view name) {
  for (std::string_view ext : {".zst", ".zstd", ".gz"}) {
    if (EndsWith(name, ext)) {
      name.remove_suffix(ext.size());
      break;
    }
  }
  return EndsWith(name, ".jsonl") || EndsWith(name, ".ndjson") || EndsWith(name, ".json");
}

bool IsValidUtf8(std::string_view text) {
  return simdjson::validate_utf8(text.data(), text.size());
}

Result<std::unique_ptr<RecordReader>> RecordReader::OpenFile(const std::string& path,
                                                             const RecordOptions& options) {
  TM_ASSIGN_OR_RETURN(auto source, OpenFileSource(path, options.limits));
  return std::unique_ptr<RecordReader>(
      std::make_unique<FileRecordReader>(std::move(source), path, options));
}

Result<std::unique_ptr<RecordReader>> RecordReader::OpenMemory(std::string_view data,
                                                               const std::string& name,
                                                               const RecordOptions& options) {
  TM_ASSIGN_OR_RETURN(auto source, OpenMemorySource(data, options.limits));
  return std::unique_ptr<RecordReader>(
      std::make_unique<FileRecordReader>(std::move(source), name, options));
}

}  // namespace tracemark::scan
