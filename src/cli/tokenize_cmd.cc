// `tracemark tokenize --model GGUF`: reads UTF-8 text on stdin and prints one JSON array of token
// ids (BOS/EOS as the model's flags say; special-token text is plain text unless
// --parse-special).
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "text/unicode.h"
#include "tracemark/model/gguf.h"
#include "tracemark/text/tokenizer.h"

namespace tracemark::cli {
namespace {

// Largest stdin accepted (a corpus scanner, not this command, handles bigger inputs).
constexpr size_t kMaxTokenizeInputBytes = 256u << 20;
constexpr size_t kReadChunkBytes = 1u << 16;

struct TokenizeArgs {
  std::string model;
  bool parse_special = false;
  bool no_special = false;
};

Result<std::string> ReadStdin() {
  std::string data;
  std::vector<char> buf(kReadChunkBytes);
  while (true) {
    const size_t n = std::fread(buf.data(), 1, buf.size(), stdin);
    data.append(buf.data(), n);
    if (data.size() > kMaxTokenizeInputBytes) {
      return ResourceExhausted("stdin is larger than " + std::to_string(kMaxTokenizeInputBytes >> 20) +
                               " MiB; split the input");
    }
    if (n < buf.size()) break;
  }
  if (std::ferror(stdin)) return IoError("reading stdin failed");
  return data;
}

Status CheckUtf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    size_t len = 1;
    if (text::DecodeUtf8(s, i, &len) == text::kInvalidCodepoint) {
      return InvalidArgument("stdin is not valid UTF-8 (byte " + std::to_string(i) +
                             "); convert the text to UTF-8 first");
    }
    i += len;
  }
  return Status::Ok();
}

Status RunTokenize(const TokenizeArgs& a) {
  if (!std::filesystem::exists(a.model)) {
    return NotFound("model file '" + a.model + "' does not exist; pass a GGUF file with --model");
  }
  TM_ASSIGN_OR_RETURN(std::unique_ptr<gguf::GgufFile> file, gguf::GgufFile::Open(a.model));
  TM_ASSIGN_OR_RETURN(std::unique_ptr<text::Tokenizer> tok, text::Tokenizer::FromGguf(*file));
  TM_ASSIGN_OR_RETURN(const std::string input, ReadStdin());
  TM_RETURN_IF_ERROR(CheckUtf8(input));
  const std::vector<int32_t> ids = tok->Encode(input, !a.no_special, a.parse_special);
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ",";
    out += std::to_string(ids[i]);
  }
  out += "]\n";
  if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size() || std::fflush(stdout) != 0) {
    return IoError("writing stdout failed");
  }
  return Status::Ok();
}

}  // namespace

void AddTokenizeCommand(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<TokenizeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "tokenize", "Print the token ids of UTF-8 text on stdin as one JSON array");
  cmd->add_option("--model", args->model, "GGUF model (or vocab-only GGUF) file")->required();
  cmd->add_flag("--parse-special", args->parse_special,
                "Turn special-token text such as <|im_start|> into the special token");
  cmd->add_flag("--no-special", args->no_special, "Do not add BOS/EOS");
  cmd->callback([args, exit_code]() {
    const Status s = RunTokenize(*args);
    *exit_code = s.ok() ? 0 : ReportError("tokenize", s);
  });
}

}  // namespace tracemark::cli
