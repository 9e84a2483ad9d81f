// Open-loop HTTP load generator for OpenAI-compatible gateways (bench/gateway/README.md).
//
// rate mode: sends POST requests at a constant arrival rate (--rps) for --duration seconds over a
// pool of keep-alive connections; a request whose scheduled time finds no free connection waits
// for one and its latency still counts from the scheduled time (no coordinated omission). Prints
// one JSON line: end-to-end latency percentiles measured from the scheduled time and from the
// actual send, and the same minus --engine-ms (the mock engine's fixed time: tokens x latency),
// i.e. the latency the gateway adds.
//
// streams mode (--streams N): opens N connections, each sends one streaming request, and counts
// how many streams are held open at once (first SSE event received, [DONE] not yet), how many
// complete, and the time to first event.
//
// One thread (Boost.Asio); the percentiles are exact (every sample is kept).
#include <sys/resource.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr size_t kReadChunk = 16 << 10;
constexpr size_t kMaxResponseBytes = 64 << 20;

struct Config {
  std::string host = "127.0.0.1";
  std::string port = "8080";
  std::string path = "/v1/chat/completions";
  std::string key;
  std::string model = "mock";
  int max_tokens = 16;
  double rps = 1000;
  double duration_s = 10;
  double warmup_s = 2;
  int connections = 256;
  double engine_ms = 0;
  int streams = 0;  // > 0: streams mode
  double stream_hold_s = 0;
};

struct Conn {
  explicit Conn(net::io_context& ioc) : socket(ioc) {}
  tcp::socket socket;
  std::string buf;
  bool open = false;
};

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string BuildRequest(const Config& c, bool stream) {
  std::string body = "{\"model\":\"" + c.model + "\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello there, how are you?\"}]," +
                     "\"max_tokens\":" + std::to_string(c.max_tokens) + (stream ? ",\"stream\":true" : "") + "}";
  std::string req = "POST " + c.path + " HTTP/1.1\r\nHost: " + c.host + ":" + c.port +
                    "\r\nContent-Type: application/json\r\nAuthorization: Bearer " + c.key +
                    "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  return req;
}

// Reads one HTTP/1.1 response (Content-Length or chunked); returns the status, 0 on I/O error.
// In streams mode `on_first_data` is called once when the first SSE "data:" arrives.
template <class OnData>
net::awaitable<int> ReadResponse(Conn& c, OnData on_first_data, bool* keep_alive) {
  boost::system::error_code ec;
  size_t header_end = std::string::npos;
  while ((header_end = c.buf.find("\r\n\r\n")) == std::string::npos) {
    const size_t old = c.buf.size();
    c.buf.resize(old + kReadChunk);
    const size_t n = co_await c.socket.async_read_some(net::buffer(c.buf.data() + old, kReadChunk),
                                                       net::redirect_error(net::use_awaitable, ec));
    c.buf.resize(old + n);
    if (ec || c.buf.size() > kMaxResponseBytes) co_return 0;
  }
  const std::string head = Lower(std::string_view(c.buf).substr(0, header_end));
  int status = 0;
  if (head.size() > 12) status = std::atoi(head.c_str() + 9);
  *keep_alive = head.find("connection: close") == std::string::npos;
  const bool chunked = head.find("transfer-encoding: chunked") != std::string::npos;
  size_t content_length = 0;
  if (size_t p = head.find("content-length:"); p != std::string::npos) {
    content_length = std::strtoull(head.c_str() + p + 15, nullptr, 10);
  }
  size_t pos = header_end + 4;
  bool seen_data = false;
  auto complete = [&]() -> size_t {  // bytes of the full response, 0 if incomplete
    if (!seen_data && c.buf.find("data:", pos) != std::string::npos) {
      seen_data = true;
      on_first_data();
    }
    if (!chunked) return c.buf.size() >= pos + content_length ? pos + content_length : 0;
    const size_t end = c.buf.find("\r\n0\r\n\r\n", pos > 2 ? pos - 2 : 0);
    if (end != std::string::npos) return end + 7;
    if (c.buf.compare(pos, 5, "0\r\n\r\n") == 0) return pos + 5;
    return 0;
  };
  size_t total = 0;
  while ((total = complete()) == 0) {
    const size_t old = c.buf.size();
    c.buf.resize(old + kReadChunk);
    const size_t n = co_await c.socket.async_read_some(net::buffer(c.buf.data() + old, kReadChunk),
                                                       net::redirect_error(net::use_awaitable, ec));
    c.buf.resize(old + n);
    if (ec || c.buf.size() > kMaxResponseBytes) co_return 0;
  }
  c.buf.erase(0, total);
  co_return status;
}

net::awaitable<bool> Connect(Conn& c, const tcp::resolver::results_type& eps) {
  boost::system::error_code ec;
  if (c.socket.is_open()) c.socket.close(ec);
  co_await net::async_connect(c.socket, eps, net::redirect_error(net::use_awaitable, ec));
  if (ec) co_return false;
  c.socket.set_option(tcp::no_delay(true), ec);
  c.buf.clear();
  c.open = true;
  co_return true;
}

double Percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return v[i];
}

// ---- rate mode ----
struct RateRun {
  RateRun(const Config& c, net::io_context& io, tcp::resolver::results_type e, std::string r)
      : cfg(c), ioc(io), eps(std::move(e)), request(std::move(r)) {}
  Config cfg;
  net::io_context& ioc;
  tcp::resolver::results_type eps;
  std::string request;
  std::vector<std::unique_ptr<Conn>> conns;
  std::vector<Conn*> idle;
  std::deque<Clock::time_point> pending;
  Clock::time_point t0;
  Clock::time_point measure_from;
  std::vector<double> lat_sched_ms, lat_send_ms;
  uint64_t sent = 0, ok = 0, non200 = 0, io_errors = 0, outstanding = 0, reconnects = 0;
  bool dispatch_done = false;

  net::awaitable<void> Worker(Conn* c, Clock::time_point sched) {
    for (;;) {
      const Clock::time_point send_t = Clock::now();
      int status = 0;
      bool keep = true;
      // A kept-alive connection the server closed while idle fails at once: reconnect and send
      // again, as HTTP clients do (counted in `reconnects`, not as an error).
      for (int attempt = 0; attempt < 2 && status == 0; ++attempt) {
        const bool reused = c->open;
        if (!c->open && !co_await Connect(*c, eps)) break;
        boost::system::error_code ec;
        co_await net::async_write(c->socket, net::buffer(request), net::redirect_error(net::use_awaitable, ec));
        if (!ec) status = co_await ReadResponse(*c, [] {}, &keep);
        if (status == 0) {
          c->open = false;
          if (!reused) break;
          ++reconnects;
        }
      }
      const Clock::time_point done = Clock::now();
      if (status == 0) {
        ++io_errors;
        c->open = false;
      } else if (status != 200) {
        ++non200;
      } else {
        ++ok;
      }
      if (!keep) c->open = false;
      if (sched >= measure_from) {
        lat_sched_ms.push_back(std::chrono::duration<double, std::milli>(done - sched).count());
        lat_send_ms.push_back(std::chrono::duration<double, std::milli>(done - send_t).count());
      }
      --outstanding;
      if (pending.empty()) {
        idle.push_back(c);
        co_return;
      }
      sched = pending.front();
      pending.pop_front();
    }
  }

  void Pump() {
    while (!pending.empty() && !idle.empty()) {
      Conn* c = idle.back();
      idle.pop_back();
      const Clock::time_point sched = pending.front();
      pending.pop_front();
      net::co_spawn(ioc, Worker(c, sched), net::detached);
    }
  }

  net::awaitable<void> Dispatch() {
    for (auto& c : conns) {
      if (!co_await Connect(*c, eps)) {
        std::fprintf(stderr, "gateway_load: cannot connect to %s:%s\n", cfg.host.c_str(), cfg.port.c_str());
        std::exit(1);
      }
    }
    net::steady_timer timer(ioc);
    const auto period = std::chrono::duration<double>(1.0 / cfg.rps);
    const uint64_t total = static_cast<uint64_t>((cfg.warmup_s + cfg.duration_s) * cfg.rps);
    t0 = Clock::now();
    measure_from = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cfg.warmup_s));
    for (uint64_t i = 0; i < total; ++i) {
      const Clock::time_point sched = t0 + std::chrono::duration_cast<Clock::duration>(period * static_cast<double>(i));
      if (sched > Clock::now()) {
        timer.expires_at(sched);
        boost::system::error_code ec;
        co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
      }
      pending.push_back(sched);
      ++sent;
      ++outstanding;
      Pump();
    }
    dispatch_done = true;
  }
};

int RunRate(const Config& cfg) {
  net::io_context ioc(1);
  tcp::resolver resolver(ioc);
  RateRun run(cfg, ioc, resolver.resolve(cfg.host, cfg.port), BuildRequest(cfg, false));
  for (int i = 0; i < cfg.connections; ++i) {
    run.conns.push_back(std::make_unique<Conn>(ioc));
    run.idle.push_back(run.conns.back().get());
  }
  net::co_spawn(ioc, run.Dispatch(), net::detached);
  const auto start = Clock::now();
  const double limit_s = cfg.warmup_s + cfg.duration_s + 30;
  while (!(run.dispatch_done && run.outstanding == 0)) {
    ioc.run_for(std::chrono::milliseconds(100));
    if (std::chrono::duration<double>(Clock::now() - start).count() > limit_s) break;
  }
  const double wall = std::chrono::duration<double>(Clock::now() - run.t0).count();
  std::vector<double> added_sched(run.lat_sched_ms), added_send(run.lat_send_ms);
  for (double& v : added_sched) v -= cfg.engine_ms;
  for (double& v : added_send) v -= cfg.engine_ms;
  std::printf(
      "{\"mode\":\"rate\",\"target_rps\":%.0f,\"achieved_rps\":%.1f,\"sent\":%llu,\"ok\":%llu,\"non_200\":%llu,"
      "\"io_errors\":%llu,\"reconnects\":%llu,\"unfinished\":%llu,\"samples\":%zu,\"connections\":%d,\"engine_ms\":%.3f,"
      "\"e2e_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f},"
      "\"added_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f},"
      "\"added_from_send_ms\":{\"p50\":%.3f,\"p99\":%.3f}}\n",
      cfg.rps, static_cast<double>(run.ok + run.non200) / wall, static_cast<unsigned long long>(run.sent),
      static_cast<unsigned long long>(run.ok), static_cast<unsigned long long>(run.non200),
      static_cast<unsigned long long>(run.io_errors), static_cast<unsigned long long>(run.reconnects),
      static_cast<unsigned long long>(run.outstanding),
      run.lat_sched_ms.size(), cfg.connections, cfg.engine_ms, Percentile(run.lat_sched_ms, 0.5),
      Percentile(run.lat_sched_ms, 0.9), Percentile(run.lat_sched_ms, 0.99), Percentile(run.lat_sched_ms, 0.999),
      Percentile(run.lat_sched_ms, 1.0), Percentile(added_sched, 0.5), Percentile(added_sched, 0.9),
      Percentile(added_sched, 0.99), Percentile(added_sched, 0.999), Percentile(added_send, 0.5),
      Percentile(added_send, 0.99));
  return run.ok == run.sent ? 0 : 3;
}

// ---- streams mode ----
struct StreamRun {
  StreamRun(const Config& c, net::io_context& io, tcp::resolver::results_type e, std::string r)
      : cfg(c), ioc(io), eps(std::move(e)), request(std::move(r)) {}
  Config cfg;
  net::io_context& ioc;
  tcp::resolver::results_type eps;
  std::string request;
  int held = 0, max_held = 0, completed = 0, failed = 0, finished = 0;
  std::vector<double> ttft_ms;

  net::awaitable<void> One() {
    Conn c(ioc);
    const Clock::time_point t = Clock::now();
    bool counted = false;
    int status = 0;
    bool keep = true;
    if (co_await Connect(c, eps)) {
      boost::system::error_code ec;
      co_await net::async_write(c.socket, net::buffer(request), net::redirect_error(net::use_awaitable, ec));
      if (!ec) {
        status = co_await ReadResponse(
            c,
            [&] {
              counted = true;
              ++held;
              max_held = std::max(max_held, held);
              ttft_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t).count());
            },
            &keep);
      }
    }
    if (counted) --held;
    if (status == 200 && counted) {
      ++completed;
    } else {
      ++failed;
    }
    ++finished;
  }
};

int RunStreams(const Config& cfg) {
  net::io_context ioc(1);
  tcp::resolver resolver(ioc);
  StreamRun run(cfg, ioc, resolver.resolve(cfg.host, cfg.port), BuildRequest(cfg, true));
  const auto t0 = Clock::now();
  for (int i = 0; i < cfg.streams; ++i) net::co_spawn(ioc, run.One(), net::detached);
  while (run.finished < cfg.streams) {
    ioc.run_for(std::chrono::milliseconds(100));
    if (std::chrono::duration<double>(Clock::now() - t0).count() > cfg.stream_hold_s + 120) break;
  }
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf(
      "{\"mode\":\"streams\",\"streams\":%d,\"max_held_at_once\":%d,\"completed\":%d,\"failed\":%d,"
      "\"unfinished\":%d,\"wall_s\":%.2f,\"ttft_ms\":{\"p50\":%.2f,\"p99\":%.2f,\"max\":%.2f}}\n",
      cfg.streams, run.max_held, run.completed, run.failed, cfg.streams - run.finished, wall,
      Percentile(run.ttft_ms, 0.5), Percentile(run.ttft_ms, 0.99), Percentile(run.ttft_ms, 1.0));
  return run.completed == cfg.streams ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--host") cfg.host = v;
    else if (k == "--port") cfg.port = v;
    else if (k == "--path") cfg.path = v;
    else if (k == "--key") cfg.key = v;
    else if (k == "--model") cfg.model = v;
    else if (k == "--max-tokens") cfg.max_tokens = std::atoi(v);
    else if (k == "--rps") cfg.rps = std::atof(v);
    else if (k == "--duration") cfg.duration_s = std::atof(v);
    else if (k == "--warmup") cfg.warmup_s = std::atof(v);
    else if (k == "--connections") cfg.connections = std::atoi(v);
    else if (k == "--engine-ms") cfg.engine_ms = std::atof(v);
    else if (k == "--streams") cfg.streams = std::atoi(v);
    else if (k == "--stream-hold-s") cfg.stream_hold_s = std::atof(v);
    else {
      std::fprintf(stderr, "gateway_load: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (argc % 2 == 0 || cfg.rps <= 0 || cfg.connections < 1) {
    std::fprintf(stderr,
                 "usage: gateway_load --port P --key KEY [--model M] [--path /v1/chat/completions] [--max-tokens N]\n"
                 "       [--rps R --duration S --warmup S --connections C --engine-ms MS]  (rate mode)\n"
                 "       [--streams N --stream-hold-s S]                                     (streams mode)\n");
    return 2;
  }
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  return cfg.streams > 0 ? RunStreams(cfg) : RunRate(cfg);
}
