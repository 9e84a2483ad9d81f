// `tracemark keyring {init,rotate,show} FILE`: create a keyring (256-bit master secret from the OS
// CSPRNG, mode 0600), add a key version, or list versions by fingerprint. Secrets are never
// printed. Format and derivation: docs/formats/keyring.md.
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "tracemark/watermark/keyring.h"
#include "tracemark/watermark/scheme.h"

namespace tracemark::cli {
namespace {

struct KeyringArgs {
  std::string path;
  std::string scheme;
};

void PrintVersion(const watermark::Keyring& ring, int version, const char* verb, const std::string& path) {
  const watermark::KeyVersion* v = ring.Find(version);
  auto fp = ring.Fingerprint(version);
  std::printf("%s %s: version %d (active), scheme %s, fingerprint %s\n", verb, path.c_str(), version,
              watermark::PublicSchemeSpec(v->scheme).c_str(), fp.ok() ? fp->c_str() : "?");
}

Status RunInit(const KeyringArgs& a) {
  const std::string scheme = a.scheme.empty() ? std::string(watermark::kDefaultSchemeSpec) : a.scheme;
  TM_ASSIGN_OR_RETURN(watermark::Keyring ring, watermark::Keyring::Create(a.path, scheme));
  PrintVersion(ring, ring.active_version(), "created", a.path);
  return Status::Ok();
}

Status RunRotate(const KeyringArgs& a) {
  TM_ASSIGN_OR_RETURN(watermark::Keyring ring, watermark::Keyring::Load(a.path));
  TM_RETURN_IF_ERROR(ring.Rotate(a.path, a.scheme));
  PrintVersion(ring, ring.active_version(), "rotated", a.path);
  return Status::Ok();
}

Status RunShow(const KeyringArgs& a) {
  TM_ASSIGN_OR_RETURN(watermark::Keyring ring, watermark::Keyring::Load(a.path));
  std::fputs(ring.Describe().c_str(), stdout);
  return Status::Ok();
}

}  // namespace

void AddKeyringCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("keyring", "Create, rotate and inspect watermark keyrings");
  cmd->require_subcommand(1);
  auto args = std::make_shared<KeyringArgs>();

  auto* init = cmd->add_subcommand("init", "Create FILE (mode 0600) with a fresh 256-bit master secret");
  init->add_option("FILE", args->path, "Keyring file to create (must not exist)")->required();
  init->add_option("--scheme", args->scheme,
                   "Watermark scheme spec: gumbel (default), kgw-lefthash, kgw-selfhash, synthid, synthid-hf, "
                   "optionally with :key=value,... (docs/watermark.md)");
  init->callback([args, exit_code] {
    const Status s = RunInit(*args);
    *exit_code = s.ok() ? 0 : ReportError("keyring init", s);
  });

  auto* rotate = cmd->add_subcommand("rotate", "Add a new active key version; old versions stay verifiable");
  rotate->add_option("FILE", args->path, "Keyring file")->required();
  rotate->add_option("--scheme", args->scheme, "Scheme spec of the new version (default: the active one's)");
  rotate->callback([args, exit_code] {
    const Status s = RunRotate(*args);
    *exit_code = s.ok() ? 0 : ReportError("keyring rotate", s);
  });

  auto* show = cmd->add_subcommand("show", "List key versions by fingerprint (never prints secrets)");
  show->add_option("FILE", args->path, "Keyring file")->required();
  show->callback([args, exit_code] {
    const Status s = RunShow(*args);
    *exit_code = s.ok() ? 0 : ReportError("keyring show", s);
  });
}

}  // namespace tracemark::cli
