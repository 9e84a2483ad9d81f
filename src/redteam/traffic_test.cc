#include "tracemark/redteam/traffic.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "tracemark/redteam/http_client.h"

namespace tracemark::redteam {
namespace {

TEST(ParseResetDuration, OpenAiDurations) {
  EXPECT_DOUBLE_EQ(*ParseResetDuration("0s"), 0);
  EXPECT_DOUBLE_EQ(*ParseResetDuration("250ms"), 0.25);
  EXPECT_DOUBLE_EQ(*ParseResetDuration("6s"), 6);
  EXPECT_DOUBLE_EQ(*ParseResetDuration("1m30s"), 90);
  EXPECT_DOUBLE_EQ(*ParseResetDuration("2"), 2);
  EXPECT_FALSE(ParseResetDuration("").has_value());
  EXPECT_FALSE(ParseResetDuration("soon").has_value());
  EXPECT_FALSE(ParseResetDuration("5x").has_value());
}

TEST(ParseBaseUrl, HostPortPrefix) {
  Result<BaseUrl> b = ParseBaseUrl("http://127.0.0.1:8080/v1/");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->host, "127.0.0.1");
  EXPECT_EQ(b->port, "8080");
  EXPECT_EQ(b->prefix, "");
  EXPECT_FALSE(ParseBaseUrl("https://example.com").ok());
  EXPECT_FALSE(ParseBaseUrl("http://host:abc").ok());
}

TEST(ParseChatResponse, JsonAndStream) {
  ChatResult r;
  ASSERT_TRUE(ParseChatResponse(R"({"choices":[{"message":{"role":"assistant","content":"Hi there"},)"
                                R"("finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":2}})",
                                false, &r)
                  .ok());
  EXPECT_EQ(r.text, "Hi there");
  EXPECT_EQ(r.finish_reason, "length");
  EXPECT_EQ(r.completion_tokens, 2);
  ChatResult s;
  const std::string sse =
      "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"usage\":null}\n\n"
      "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}],\"usage\":null}\n\n"
      "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n"
      "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n"
      "data: [DONE]\n\n";
  ASSERT_TRUE(ParseChatResponse(sse, true, &s).ok());
  EXPECT_EQ(s.text, "Hello");
  EXPECT_EQ(s.finish_reason, "stop");
  EXPECT_EQ(s.completion_tokens, 2);
  ChatResult t;
  EXPECT_FALSE(ParseChatResponse("data: {\"choices\":[]}\n\n", true, &t).ok());  // no [DONE]
}

TEST(HarvestPrompt, DeterministicElicitingAndSweeping) {
  std::set<std::string> templates;
  std::set<std::pair<double, double>> settings;
  int eliciting = 0;
  for (uint64_t i = 0; i < 200; ++i) {
    const PromptSpec p = HarvestPrompt(9, i, {}, 0.0, 0.5);
    const PromptSpec q = HarvestPrompt(9, i, {}, 0.0, 0.5);
    ASSERT_EQ(p.messages.back().content, q.messages.back().content);
    EXPECT_EQ(p.kind, "harvest");
    templates.insert(p.template_id);
    settings.insert({p.temperature, p.top_p});
    const std::string& m = p.messages.back().content;
    if (m.find("step by step") != std::string::npos || m.find("rubric") != std::string::npos) ++eliciting;
  }
  EXPECT_EQ(templates.size(), 4u);
  EXPECT_GE(settings.size(), 24u);  // a sampling-parameter sweep
  EXPECT_EQ(eliciting, 200);
  EXPECT_NE(HarvestPrompt(9, 0, {}, 0, 0).messages.back().content,
            HarvestPrompt(10, 0, {}, 0, 0).messages.back().content);
  const PromptSpec b = HarvestPrompt(9, 3, {"knitting"}, 1.0, 0);
  EXPECT_EQ(b.kind, "benign");
  EXPECT_EQ(b.messages.size(), 3u);  // an ordinary-looking conversation
  EXPECT_EQ(b.topic, "knitting");
}

TEST(LoadKeys, PlainAndLabelled) {
  const std::string path = std::filesystem::temp_directory_path() / ("tm_keys_" + std::to_string(::getpid()));
  {
    std::ofstream f(path);
    f << "# accounts\ntm-abc-123\n\n7 tm-def-456\n";
  }
  Result<std::vector<ApiAccount>> k = LoadKeys(path);
  ASSERT_TRUE(k.ok());
  ASSERT_EQ(k->size(), 2u);
  EXPECT_EQ((*k)[0].label, "key2");
  EXPECT_EQ((*k)[0].key, "tm-abc-123");
  EXPECT_EQ((*k)[1].label, "7");
  EXPECT_EQ((*k)[1].key, "tm-def-456");
  std::filesystem::remove(path);
  EXPECT_FALSE(LoadKeys(path).ok());
}

// A tiny OpenAI-like server on a loopback socket: the answer depends on the API key.
class FakeServer {
 public:
  using Handler = std::function<std::string(const std::string& key, const std::string& body)>;
  explicit FakeServer(Handler h) : handler_(std::move(h)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::listen(fd_, 64);
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    accept_ = std::thread([this] { AcceptLoop(); });
  }
  ~FakeServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    accept_.join();
    for (std::thread& t : conns_) t.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  static std::string Response(int status, const std::string& body, const std::string& extra_headers = "") {
    return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n" + extra_headers + "\r\n" + body;
  }

 private:
  void AcceptLoop() {
    while (!stop_) {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      conns_.emplace_back([this, c] { Serve(c); });
    }
  }
  void Serve(int c) {
    std::string buf;
    char tmp[4096];
    while (true) {
      size_t hdr_end;
      while ((hdr_end = buf.find("\r\n\r\n")) == std::string::npos) {
        const ssize_t n = ::recv(c, tmp, sizeof(tmp), 0);
        if (n <= 0) {
          ::close(c);
          return;
        }
        buf.append(tmp, n);
      }
      const std::string head = buf.substr(0, hdr_end);
      size_t content_length = 0;
      std::string key;
      for (size_t p = 0; p < head.size();) {
        size_t e = head.find("\r\n", p);
        if (e == std::string::npos) e = head.size();
        std::string line = head.substr(p, e - p);
        std::string lower = line;
        for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (lower.starts_with("content-length:")) content_length = std::stoul(line.substr(15));
        if (lower.starts_with("authorization: bearer ")) key = line.substr(22);
        p = e + 2;
      }
      while (buf.size() < hdr_end + 4 + content_length) {
        const ssize_t n = ::recv(c, tmp, sizeof(tmp), 0);
        if (n <= 0) {
          ::close(c);
          return;
        }
        buf.append(tmp, n);
      }
      const std::string body = buf.substr(hdr_end + 4, content_length);
      buf.erase(0, hdr_end + 4 + content_length);
      const std::string resp = handler_(key, body);
      ::send(c, resp.data(), resp.size(), MSG_NOSIGNAL);
    }
  }
  Handler handler_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread accept_;
  std::vector<std::thread> conns_;
};

std::string Completion(const std::string& text, bool stream) {
  if (!stream) {
    return FakeServer::Response(
        200, nlohmann::json({{"choices", {{{"message", {{"content", text}}}, {"finish_reason", "length"}}}},
                             {"usage", {{"prompt_tokens", 10}, {"completion_tokens", 4}}}})
                 .dump(),
        "x-ratelimit-remaining-requests: 100\r\nx-ratelimit-reset-requests: 0s\r\n");
  }
  const std::string sse = "data: {\"choices\":[{\"delta\":{\"content\":\"" + text +
                          "\"},\"finish_reason\":\"length\"}]}\n\ndata: {\"choices\":[],\"usage\":"
                          "{\"prompt_tokens\":10,\"completion_tokens\":4}}\n\ndata: [DONE]\n\n";
  return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: " + std::to_string(sse.size()) +
         "\r\n\r\n" + sse;
}

TEST(RunHarvest, RoundRobinPacingAndSuspension) {
  std::mutex mu;
  std::map<std::string, int> calls;
  std::vector<double> ok_times;
  const auto t0 = std::chrono::steady_clock::now();
  FakeServer server([&](const std::string& key, const std::string& body) {
    std::lock_guard<std::mutex> lock(mu);
    const int n = ++calls[key];
    if (body.empty()) {  // GET /v1/models
      return FakeServer::Response(200, R"({"object":"list","data":[{"id":"m1","object":"model"}]})");
    }
    if (key == "k-susp" && n >= 2) {
      return FakeServer::Response(
          403, R"({"error":{"message":"suspended","type":"access_denied","param":null,"code":"account_suspended"}})");
    }
    if (key == "k-limited" && n == 2) {
      return FakeServer::Response(
          429, R"({"error":{"message":"slow down","type":"requests","param":null,"code":"rate_limit_exceeded"}})",
          "Retry-After: 1\r\nx-ratelimit-reset-requests: 300ms\r\n");
    }
    const bool stream = nlohmann::json::parse(body).value("stream", false);
    ok_times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return Completion("text from " + key, stream);
  });
  const std::filesystem::path out = std::filesystem::temp_directory_path() / ("tm_harvest_" + std::to_string(::getpid()) + ".jsonl");
  HarvestOptions o;
  o.base_url = server.url();
  o.accounts = {{"a", "k-limited"}, {"b", "k-susp"}};
  o.out_path = out.string();
  o.requests = 12;
  o.concurrency = 2;
  o.seed = 4;
  o.benign_mix = 0.25;
  Result<HarvestStats> st = RunHarvest(o);
  ASSERT_TRUE(st.ok()) << st.status().message();
  EXPECT_EQ(st->completions, 12);
  EXPECT_EQ(st->accounts_suspended, 1);
  EXPECT_EQ(st->accounts_stopped, 1);
  EXPECT_EQ(st->rate_limited, 1);
  EXPECT_GT(st->benign_completions, 0);
  EXPECT_EQ(st->harvest_completions + st->benign_completions, 12);
  EXPECT_EQ(st->completion_tokens, 48);
  ASSERT_EQ(st->accounts.size(), 2u);
  EXPECT_EQ(st->accounts[1].stopped, "account_suspended");
  EXPECT_EQ(st->accounts[1].completions, 1);  // one answer, then 403
  EXPECT_EQ(st->accounts[0].completions, 11);
  EXPECT_TRUE(st->accounts[0].stopped.empty());
  // The 429 said "retry after 1 s": the limited account waited before its next request.
  EXPECT_GT(st->wall_s, 0.9);
  std::ifstream in(out);
  int lines = 0, streamed = 0;
  std::set<std::string> ids;
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    ++lines;
    ids.insert(j["id"].get<std::string>());
    EXPECT_EQ(j["text"], "text from " + std::string(j["account"] == "a" ? "k-limited" : "k-susp"));
    streamed += j["stream"].get<bool>() ? 1 : 0;
    EXPECT_FALSE(j["prompt"].get<std::string>().empty());
  }
  EXPECT_EQ(lines, 12);
  EXPECT_EQ(ids.size(), 12u);
  EXPECT_GT(streamed, 0);
  std::filesystem::remove(out);
}

TEST(RunHarvest, EndsWhenEveryAccountIsSuspended) {
  FakeServer server([](const std::string&, const std::string& body) {
    if (body.empty()) return FakeServer::Response(200, R"({"data":[{"id":"m1"}]})");
    return FakeServer::Response(
        403, R"({"error":{"message":"suspended","type":"access_denied","param":null,"code":"account_suspended"}})");
  });
  HarvestOptions o;
  o.base_url = server.url();
  o.accounts = {{"a", "k1"}, {"b", "k2"}, {"c", "k3"}};
  o.requests = 100;
  Result<HarvestStats> st = RunHarvest(o);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->completions, 0);
  EXPECT_EQ(st->accounts_suspended, 3);
  EXPECT_LT(st->requests_sent, 20);
}

TEST(RunBenign, MultiTurnSessionsCarryHistory) {
  std::mutex mu;
  size_t max_messages = 0;
  FakeServer server([&](const std::string&, const std::string& body) {
    if (body.empty()) return FakeServer::Response(200, R"({"data":[{"id":"m1"}]})");
    const nlohmann::json j = nlohmann::json::parse(body);
    {
      std::lock_guard<std::mutex> lock(mu);
      max_messages = std::max(max_messages, j["messages"].size());
    }
    return Completion("ok", j.value("stream", false));
  });
  BenignOptions o;
  o.base_url = server.url();
  o.accounts = {{"u1", "k1"}, {"u2", "k2"}, {"u3", "k3"}};
  o.sessions = 12;
  o.concurrency = 3;
  o.think_scale = 0.01;
  Result<BenignStats> st = RunBenign(o);
  ASSERT_TRUE(st.ok()) << st.status().message();
  EXPECT_EQ(st->sessions, 12);
  EXPECT_GE(st->completions, 12);
  EXPECT_EQ(st->refused, 0);
  EXPECT_GE(max_messages, 3u);  // user, assistant, user: the reply went back into the history
}

}  // namespace
}  // namespace tracemark::redteam
