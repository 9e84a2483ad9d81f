// `tracemark serve`: the OpenAI-compatible gateway (serve/server.h).
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "tracemark/serve/server.h"

namespace tracemark::cli {

void AddServeCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<serve::ServerOptions>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve a GGUF model through the OpenAI API with per-account watermarks");
  cmd->add_option("--model", o->model_path, "GGUF model file (required unless --engine mock)");
  cmd->add_option("--engine", o->engine, "model: the GGUF; mock: fixed-latency fake engine for gateway benchmarks")
      ->check(CLI::IsMember({"model", "mock"}))
      ->capture_default_str();
  cmd->add_option("--mock-token-latency-us", o->mock.token_latency_us, "Mock engine: microseconds per output token")
      ->check(CLI::Range(int64_t{0}, serve::kMaxMockTokenLatencyUs))
      ->capture_default_str();
  cmd->add_option("--mock-output-tokens", o->mock.output_tokens, "Mock engine: reply length in tokens (bytes)")
      ->check(CLI::Range(1, serve::kMaxMockOutputTokens))
      ->capture_default_str();
  cmd->add_option("--keyring", o->keyring_path, "Keyring file (tracemark keyring init)")->required();
  cmd->add_option("--db", o->db_url, "Ledger database URL (sqlite:PATH or postgresql://USER@HOST:PORT/DB)")->required();
  cmd->add_option("--redis", o->redis_url,
                  "Share per-account rate-limit buckets between replicas through Redis (redis://HOST:PORT)");
  cmd->add_option("--host", o->host, "Listen address")->capture_default_str();
  cmd->add_option("--port", o->port, "Listen port (0: any free port)")->capture_default_str();
  cmd->add_option("--admin-token-file", o->admin_token_file, "File holding the admin API bearer token (>= 16 chars)");
  cmd->add_option("--model-id", o->model_id, "Model id clients send (default: the file name without .gguf)");
  cmd->add_flag("--journal-fsync", o->journal_sync_commit,
                "fdatasync the usage journal before each response (power-loss safe; default: after write(), "
                "kill -9 safe, fdatasync every 200 ms)");
  cmd->add_option("--usage-journal", o->usage_journal_dir, "Usage journal directory, one per replica (default: <sqlite path>.usage-journal; required with PostgreSQL)");
  cmd->add_option("--slots", o->scheduler.slots, "Concurrent sequences batched together")->capture_default_str();
  cmd->add_option("--slot-context", o->scheduler.slot_context, "Tokens per sequence (prompt + completion)")
      ->capture_default_str();
  cmd->add_option("--threads", o->scheduler.threads, "Compute threads")->capture_default_str();
  cmd->add_flag("--demo-account", o->create_demo_account,
                "Create a 'demo' account when the ledger has none and print its key and a curl example");
  // Distillation monitor (docs/monitor.md, "Gateway integration").
  auto mode = std::make_shared<std::string>("shadow");
  cmd->add_option("--monitor", *mode, "Distillation monitor mode: shadow (score only), flag, throttle, suspend")
      ->check(CLI::IsMember({"shadow", "flag", "throttle", "suspend"}))
      ->capture_default_str();
  cmd->add_option("--monitor-interval-s", o->monitor_interval_s, "Seconds between monitor evaluations")
      ->check(CLI::Range(1, serve::kMaxMonitorIntervalSeconds))
      ->capture_default_str();
  cmd->add_option("--monitor-min-requests", o->monitor.min_requests,
                  "Requests before an account is scored (tuning; keep the default in production)")
      ->check(CLI::Range(1, 1 << 30))
      ->capture_default_str();
  cmd->add_option("--monitor-volume-tokens", o->monitor.volume_full_tokens,
                  "Decayed completion tokens at which the account volume factor reaches 1 (floor: a quarter)")
      ->check(CLI::Range(1.0, 1e12))
      ->capture_default_str();
  cmd->add_option("--monitor-stream-volume-tokens", o->monitor.stream_volume_full_tokens,
                  "The same for the templated sub-stream (floor: a fifth)")
      ->check(CLI::Range(1.0, 1e12))
      ->capture_default_str();
  cmd->callback([o, mode, exit_code] {
    // The floors keep the default ratios (15k/60k, 5k/25k) when the full volumes are changed.
    o->monitor.volume_floor_tokens = o->monitor.volume_full_tokens / 4;
    o->monitor.stream_volume_floor_tokens = o->monitor.stream_volume_full_tokens / 5;
    Result<serve::MonitorMode> m = serve::ParseMonitorMode(*mode);
    if (!m.ok()) {
      *exit_code = ReportError("serve", m.status());
      return;
    }
    o->monitor_mode = *m;
    if (o->engine == "model" && o->model_path.empty()) {
      *exit_code = ReportError("serve", InvalidArgument("--model is required (or use --engine mock)"));
      return;
    }
    o->on_listening = [](const std::string& host, uint16_t port) {
      std::fprintf(stderr, "tracemark serve: listening on http://%s:%u\n", host.c_str(), static_cast<unsigned>(port));
      std::fflush(stderr);
    };
    Status s = serve::RunServer(*o);
    *exit_code = s.ok() ? 0 : ReportError("serve", s);
  });
}

}  // namespace tracemark::cli
