#include "tracemark/redteam/http_client.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <simdjson.h>

namespace tracemark::redteam {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// Most SSE events a streamed response may carry (a bound on the parse loop).
constexpr size_t kMaxSseEvents = 1 << 20;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

Result<BaseUrl> ParseBaseUrl(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (!url.starts_with(kScheme)) {
    return InvalidArgument("--base-url must start with http:// (TLS is not supported): " + std::string(url));
  }
  url.remove_prefix(kScheme.size());
  BaseUrl b;
  const size_t slash = url.find('/');
  std::string_view hostport = url.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : url.substr(slash);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (path.ends_with("/v1")) path.remove_suffix(3);
  b.prefix = std::string(path);
  const size_t colon = hostport.rfind(':');
  if (colon == std::string_view::npos) {
    b.host = std::string(hostport);
    b.port = "80";
  } else {
    b.host = std::string(hostport.substr(0, colon));
    b.port = std::string(hostport.substr(colon + 1));
  }
  if (b.host.empty() || b.port.empty()) return InvalidArgument("--base-url has no host or port: " + std::string(url));
  for (char c : b.port) {
    if (c < '0' || c > '9') return InvalidArgument("--base-url port is not a number: " + b.port);
  }
  return b;
}

std::string_view HttpResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return {};
}

struct HttpClient::Impl {
  BaseUrl base;
  std::string user_agent;
  int timeout_s;
  asio::io_context io;
  std::optional<tcp::socket> socket;

  Status Connect() {
    socket.reset();
    beast::error_code ec;
    tcp::resolver resolver(io);
    auto results = resolver.resolve(base.host, base.port, ec);
    if (ec) return IoError("resolving " + base.host + ": " + ec.message());
    tcp::socket s(io);
    asio::connect(s, results, ec);
    if (ec) return IoError("connecting to " + base.host + ":" + base.port + ": " + ec.message());
    timeval tv{};
    tv.tv_sec = timeout_s;
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    s.set_option(tcp::no_delay(true), ec);
    socket.emplace(std::move(s));
    return Status::Ok();
  }

  // One exchange on the current connection; false in *retryable when a reused connection failed
  // before any response byte (the server closed it while idle).
  Result<HttpResponse> Exchange(std::string_view method, std::string_view path, std::string_view bearer,
                                std::string_view body, bool* retryable) {
    *retryable = false;
    http::request<http::string_body> req;
    req.method(method == "POST" ? http::verb::post : http::verb::get);
    req.target(base.prefix + std::string(path));
    req.version(11);
    req.set(http::field::host, base.host + ":" + base.port);
    req.set(http::field::user_agent, user_agent);
    req.set(http::field::accept, "application/json, text/event-stream");
    if (!bearer.empty()) req.set(http::field::authorization, "Bearer " + std::string(bearer));
    if (method == "POST") {
      req.set(http::field::content_type, "application/json");
      req.body() = std::string(body);
      req.prepare_payload();
    }
    req.keep_alive(true);
    beast::error_code ec;
    http::write(*socket, req, ec);
    if (ec) {
      *retryable = true;
      return IoError("sending request: " + ec.message());
    }
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxResponseBodyBytes);
    http::read(*socket, buffer, parser, ec);
    if (ec) {
      *retryable = ec == http::error::end_of_stream || ec == asio::error::connection_reset ||
                   ec == asio::error::eof;
      return IoError("reading response: " + ec.message());
    }
    HttpResponse r;
    const auto& msg = parser.get();
    r.status = static_cast<int>(msg.result_int());
    for (const auto& field : msg) {
      r.headers.emplace_back(Lower(std::string_view(field.name_string().data(), field.name_string().size())),
                             std::string(field.value()));
    }
    r.body = msg.body();
    if (!msg.keep_alive()) socket.reset();
    return r;
  }
};

HttpClient::HttpClient(BaseUrl base, std::string user_agent, int timeout_s) : impl_(std::make_unique<Impl>()) {
  impl_->base = std::move(base);
  impl_->user_agent = std::move(user_agent);
  impl_->timeout_s = timeout_s;
}

HttpClient::~HttpClient() = default;

Result<HttpResponse> HttpClient::Request(std::string_view method, std::string_view path, std::string_view bearer,
                                         std::string_view json_body) {
  const bool reused = impl_->socket.has_value();
  if (!reused) TM_RETURN_IF_ERROR(impl_->Connect());
  bool retryable = false;
  Result<HttpResponse> r = impl_->Exchange(method, path, bearer, json_body, &retryable);
  if (r.ok()) return r;
  impl_->socket.reset();
  if (!(reused && retryable)) return r.status();
  TM_RETURN_IF_ERROR(impl_->Connect());
  r = impl_->Exchange(method, path, bearer, json_body, &retryable);
  if (!r.ok()) impl_->socket.reset();
  return r;
}

std::optional<double> ParseResetDuration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  double total = 0;
  size_t i = 0;
  bool any = false;
  while (i < text.size()) {
    size_t j = i;
    while (j < text.size() && (std::isdigit(static_cast<unsigned char>(text[j])) || text[j] == '.')) ++j;
    if (j == i) return std::nullopt;
    double v = 0;
    const auto [ptr, ec] = std::from_chars(text.data() + i, text.data() + j, v);
    if (ec != std::errc() || ptr != text.data() + j) return std::nullopt;
    std::string_view unit;
    size_t k = j;
    while (k < text.size() && std::isalpha(static_cast<unsigned char>(text[k]))) ++k;
    unit = text.substr(j, k - j);
    if (unit.empty() || unit == "s") {
      total += v;
    } else if (unit == "ms") {
      total += v / 1000;
    } else if (unit == "m") {
      total += v * 60;
    } else if (unit == "h") {
      total += v * 3600;
    } else {
      return std::nullopt;
    }
    any = true;
    i = k;
    if (unit.empty() && i < text.size()) return std::nullopt;
  }
  if (!any || !std::isfinite(total) || total < 0) return std::nullopt;
  return total;
}

std::string ChatRequestJson(const ChatRequest& request) {
  nlohmann::ordered_json j;
  j["model"] = request.model;
  nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
  for (const ChatMessage& m : request.messages) msgs.push_back({{"role", m.role}, {"content", m.content}});
  j["messages"] = std::move(msgs);
  j["max_tokens"] = request.max_tokens;
  j["temperature"] = request.temperature;
  j["top_p"] = request.top_p;
  if (request.seed) j["seed"] = *request.seed;
  if (request.stream) {
    j["stream"] = true;
    j["stream_options"] = {{"include_usage", true}};
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

void ReadUsage(simdjson::dom::element doc, ChatResult* out) {
  simdjson::dom::element usage;
  if (doc["usage"].get(usage) != simdjson::SUCCESS || !usage.is_object()) return;
  int64_t v = 0;
  if (usage["prompt_tokens"].get(v) == simdjson::SUCCESS) out->prompt_tokens = v;
  if (usage["completion_tokens"].get(v) == simdjson::SUCCESS) out->completion_tokens = v;
}

Status ParseError(simdjson::dom::element doc, ChatResult* out) {
  simdjson::dom::element err;
  if (doc["error"].get(err) != simdjson::SUCCESS || !err.is_object()) {
    return InvalidArgument("error response without an error object");
  }
  std::string_view s;
  if (err["code"].get(s) == simdjson::SUCCESS) out->error_code = std::string(s);
  if (err["type"].get(s) == simdjson::SUCCESS) out->error_type = std::string(s);
  if (err["message"].get(s) == simdjson::SUCCESS) out->error_message = std::string(s);
  return Status::Ok();
}

}  // namespace

Status ParseChatResponse(std::string_view body, bool stream, ChatResult* out) {
  simdjson::dom::parser parser;
  if (!stream) {
    simdjson::dom::element doc;
    if (parser.parse(body.data(), body.size()).get(doc) != simdjson::SUCCESS) {
      return InvalidArgument("response is not JSON");
    }
    simdjson::dom::array choices;
    if (doc["choices"].get(choices) != simdjson::SUCCESS || choices.size() == 0) {
      return InvalidArgument("response has no choices");
    }
    simdjson::dom::element c0 = choices.at(0);
    std::string_view content;
    if (c0["message"]["content"].get(content) == simdjson::SUCCESS) out->text = std::string(content);
    std::string_view finish;
    if (c0["finish_reason"].get(finish) == simdjson::SUCCESS) out->finish_reason = std::string(finish);
    ReadUsage(doc, out);
    return Status::Ok();
  }
  // SSE: events separated by blank lines; we read the "data:" lines.
  size_t pos = 0;
  size_t events = 0;
  bool done = false;
  while (pos < body.size() && events < kMaxSseEvents) {
    size_t eol = body.find('\n', pos);
    if (eol == std::string_view::npos) eol = body.size();
    std::string_view line = body.substr(pos, eol - pos);
    pos = eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.starts_with("data:")) continue;
    ++events;
    line.remove_prefix(5);
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    if (line == "[DONE]") {
      done = true;
      break;
    }
    simdjson::dom::element doc;
    if (parser.parse(line.data(), line.size()).get(doc) != simdjson::SUCCESS) {
      return InvalidArgument("SSE event is not JSON");
    }
    simdjson::dom::element err;
    if (doc["error"].get(err) == simdjson::SUCCESS) {
      TM_RETURN_IF_ERROR(ParseError(doc, out));
      return IoError("stream ended with an error event: " + out->error_message);
    }
    simdjson::dom::array choices;
    if (doc["choices"].get(choices) == simdjson::SUCCESS && choices.size() > 0) {
      simdjson::dom::element c0 = choices.at(0);
      std::string_view piece;
      if (c0["delta"]["content"].get(piece) == simdjson::SUCCESS) out->text.append(piece);
      std::string_view finish;
      if (c0["finish_reason"].get(finish) == simdjson::SUCCESS) out->finish_reason = std::string(finish);
    }
    ReadUsage(doc, out);
  }
  if (!done) return IoError("stream ended without [DONE]");
  return Status::Ok();
}

Result<ChatResult> ChatCompletion(HttpClient& client, std::string_view api_key, const ChatRequest& request) {
  TM_ASSIGN_OR_RETURN(HttpResponse resp, client.Request("POST", "/v1/chat/completions", api_key,
                                                        ChatRequestJson(request)));
  ChatResult out;
  out.http_status = resp.status;
  auto int_header = [&](std::string_view name) -> std::optional<int64_t> {
    std::string_view v = resp.Header(name);
    int64_t x = 0;
    if (v.empty()) return std::nullopt;
    const auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
    if (ec != std::errc()) return std::nullopt;
    return x;
  };
  out.remaining_requests = int_header("x-ratelimit-remaining-requests");
  out.remaining_tokens = int_header("x-ratelimit-remaining-tokens");
  out.limit_requests = int_header("x-ratelimit-limit-requests");
  out.limit_tokens = int_header("x-ratelimit-limit-tokens");
  out.reset_requests_s = ParseResetDuration(resp.Header("x-ratelimit-reset-requests")).value_or(0);
  out.reset_tokens_s = ParseResetDuration(resp.Header("x-ratelimit-reset-tokens")).value_or(0);
  if (resp.status == 200) {
    TM_RETURN_IF_ERROR(ParseChatResponse(resp.body, request.stream, &out));
    return out;
  }
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(resp.body.data(), resp.body.size()).get(doc) == simdjson::SUCCESS) {
    (void)ParseError(doc, &out);
  }
  if (resp.status == 429) {
    double wait = ParseResetDuration(resp.Header("retry-after")).value_or(0);
    if (out.error_type == "requests") {
      wait = std::max(wait, out.reset_requests_s);
    } else if (out.error_type == "tokens") {
      wait = std::max(wait, out.reset_tokens_s);
    } else {
      wait = std::max({wait, out.reset_requests_s, out.reset_tokens_s});
    }
    out.retry_after_s = wait;
  }
  return out;
}

Result<std::string> FirstModelId(HttpClient& client, std::string_view api_key) {
  TM_ASSIGN_OR_RETURN(HttpResponse resp, client.Request("GET", "/v1/models", api_key, ""));
  if (resp.status != 200) {
    return IoError("GET /v1/models answered " + std::to_string(resp.status) + ": " + resp.body.substr(0, 200));
  }
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(resp.body.data(), resp.body.size()).get(doc) != simdjson::SUCCESS) {
    return IoError("GET /v1/models: response is not JSON");
  }
  simdjson::dom::array data;
  std::string_view id;
  if (doc["data"].get(data) != simdjson::SUCCESS || data.size() == 0 || data.at(0)["id"].get(id) != simdjson::SUCCESS) {
    return IoError("GET /v1/models: no model listed");
  }
  return std::string(id);
}

}  // namespace tracemark::redteam
