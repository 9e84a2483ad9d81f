// Boost.Beast stays in this one translation unit (STYLE.md: heavy headers in few TUs).
#include "tracemark/probe/openai_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <simdjson.h>

namespace tracemark::probe {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// Bytes of an error response quoted in the error message (kept on one line).
constexpr size_t kErrorExcerptBytes = 200;

struct ParsedUrl {
  bool tls = false;
  std::string host;
  std::string port;
  std::string target;  // path of the chat-completions endpoint
};

Result<ParsedUrl> ParseUrl(const std::string& url) {
  ParsedUrl u;
  std::string rest;
  if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    u.tls = true;
    rest = url.substr(8);
  } else {
    return InvalidArgument("--suspect-url must start with http:// or https:// (got '" + url + "')");
  }
  const size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "" : rest.substr(slash);
  if (authority.empty() || authority.find('@') != std::string::npos) {
    return InvalidArgument("--suspect-url needs a host (and no user info): '" + url + "'");
  }
  const size_t colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(']') == std::string::npos) {
    u.host = authority.substr(0, colon);
    u.port = authority.substr(colon + 1);
  } else {
    u.host = authority;
    u.port = u.tls ? "443" : "80";
  }
  if (u.host.empty() || u.port.empty() ||
      u.port.find_first_not_of("0123456789") != std::string::npos) {
    return InvalidArgument("--suspect-url has a bad host or port: '" + url + "'");
  }
  while (!path.empty() && path.back() == '/') path.pop_back();
  const std::string kSuffix = "/chat/completions";
  if (path.size() >= kSuffix.size() && path.compare(path.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0) {
    u.target = path;
  } else if (path.size() >= 3 && path.compare(path.size() - 3, 3, "/v1") == 0) {
    u.target = path + kSuffix;
  } else {
    u.target = path + "/v1" + kSuffix;
  }
  return u;
}

class OpenAiClient : public CompletionClient {
 public:
  OpenAiClient(ParsedUrl url, OpenAiEndpoint endpoint)
      : url_(std::move(url)), endpoint_(std::move(endpoint)) {}

  Result<std::string> Complete(const std::string& prompt, int32_t max_tokens) override {
    nlohmann::json body;
    body["model"] = endpoint_.model;
    body["messages"] = nlohmann::json::array({{{"role", "user"}, {"content", prompt}}});
    body["max_tokens"] = max_tokens;
    body["temperature"] = endpoint_.temperature;
    http::request<http::string_body> req{http::verb::post, url_.target, 11};
    req.set(http::field::host, url_.host);
    req.set(http::field::user_agent, "tracemark-probe");
    req.set(http::field::content_type, "application/json");
    if (!endpoint_.api_key.empty()) req.set(http::field::authorization, "Bearer " + endpoint_.api_key);
    req.body() = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    req.prepare_payload();

    std::string response_body;
    unsigned status = 0;
    try {
      asio::io_context io;
      tcp::resolver resolver(io);
      const auto endpoints = resolver.resolve(url_.host, url_.port);
      http::response_parser<http::string_body> parser;
      parser.body_limit(kMaxResponseBytes);
      beast::flat_buffer buffer;
      if (url_.tls) {
        asio::ssl::context tls(asio::ssl::context::tls_client);
        tls.set_default_verify_paths();
        tls.set_verify_mode(asio::ssl::verify_peer);
        beast::ssl_stream<beast::tcp_stream> stream(io, tls);
        if (!SSL_set_tlsext_host_name(stream.native_handle(), url_.host.c_str())) {
          return IoError("TLS: cannot set the server name for " + url_.host);
        }
        stream.set_verify_callback(asio::ssl::host_name_verification(url_.host));
        beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(kRequestTimeoutSeconds));
        beast::get_lowest_layer(stream).connect(endpoints);
        stream.handshake(asio::ssl::stream_base::client);
        http::write(stream, req);
        http::read(stream, buffer, parser);
        beast::error_code ec;
        stream.shutdown(ec);  // servers often close without a TLS close_notify
      } else {
        beast::tcp_stream stream(io);
        stream.expires_after(std::chrono::seconds(kRequestTimeoutSeconds));
        stream.connect(endpoints);
        http::write(stream, req);
        http::read(stream, buffer, parser);
        beast::error_code ec;
        stream.socket().shutdown(tcp::socket::shutdown_both, ec);
      }
      status = parser.get().result_int();
      response_body = std::move(parser.get().body());
    } catch (const std::exception& e) {
      return IoError("request to " + endpoint_.url + " failed: " + e.what());
    }
    if (status != 200) {
      std::string excerpt = response_body.substr(0, kErrorExcerptBytes);
      std::replace_if(excerpt.begin(), excerpt.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
      return IoError("the suspect endpoint answered HTTP " + std::to_string(status) + ": " + excerpt);
    }
    simdjson::dom::parser json;
    simdjson::dom::element doc;
    if (json.parse(response_body).get(doc) != simdjson::SUCCESS) {
      return IoError("the suspect endpoint's answer is not JSON");
    }
    std::string_view content;
    if (doc["choices"].at(0)["message"]["content"].get(content) != simdjson::SUCCESS) {
      return IoError("the suspect endpoint's answer has no choices[0].message.content");
    }
    return std::string(content);
  }

 private:
  ParsedUrl url_;
  OpenAiEndpoint endpoint_;
};

}  // namespace

Result<std::unique_ptr<CompletionClient>> MakeOpenAiClient(const OpenAiEndpoint& endpoint) {
  TM_ASSIGN_OR_RETURN(ParsedUrl url, ParseUrl(endpoint.url));
  if (endpoint.model.empty()) return InvalidArgument("--suspect-model is required with --suspect-url");
  return std::unique_ptr<CompletionClient>(new OpenAiClient(std::move(url), endpoint));
}

}  // namespace tracemark::probe
