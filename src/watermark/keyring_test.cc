#include "tracemark/watermark/keyring.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>

#include "tracemark/base/file.h"
#include "tracemark/watermark/hook.h"

namespace tracemark::watermark {
namespace {

class KeyringTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = std::string(TM_BINARY_DIR) + "/keyring_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ::unlink(path_.c_str());
  }
  void TearDown() override { ::unlink(path_.c_str()); }
  std::string path_;
};

TEST_F(KeyringTest, CreateLoadRoundTrip) {
  auto ring = Keyring::Create(path_, "gumbel");
  ASSERT_TRUE(ring.ok()) << ring.status().message();
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto loaded = Keyring::Load(path_);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded->active_version(), 1);
  ASSERT_EQ(loaded->versions().size(), 1u);
  EXPECT_EQ(loaded->Serialize(), ring->Serialize());
  EXPECT_EQ(loaded->versions()[0].master.size(), kMasterSecretBytes);
  EXPECT_EQ(loaded->DeriveSchemeKeys(1)->provider_key, ring->DeriveSchemeKeys(1)->provider_key);
  // Refuses to overwrite.
  EXPECT_FALSE(Keyring::Create(path_, "gumbel").ok());
}

TEST_F(KeyringTest, TwoKeyringsDiffer) {
  auto a = Keyring::Create(path_, "gumbel");
  ASSERT_TRUE(a.ok());
  ::unlink(path_.c_str());
  auto b = Keyring::Create(path_, "gumbel");
  ASSERT_TRUE(b.ok());
  EXPECT_NE(a->DeriveSchemeKeys(1)->provider_key, b->DeriveSchemeKeys(1)->provider_key);
  EXPECT_NE(*a->Fingerprint(1), *b->Fingerprint(1));
}

TEST_F(KeyringTest, RefusesWorldReadableWithFixHint) {
  ASSERT_TRUE(Keyring::Create(path_, "gumbel").ok());
  ASSERT_EQ(::chmod(path_.c_str(), 0644), 0);
  auto loaded = Keyring::Load(path_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(loaded.status().message().find("chmod 600"), std::string::npos);
}

TEST_F(KeyringTest, RotationKeepsOldVersions) {
  auto ring = Keyring::Create(path_, "gumbel");
  ASSERT_TRUE(ring.ok());
  const auto v1_keys = *ring->DeriveSchemeKeys(1);
  ASSERT_TRUE(ring->Rotate(path_, "kgw-selfhash").ok());
  auto loaded = Keyring::Load(path_);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded->active_version(), 2);
  ASSERT_EQ(loaded->versions().size(), 2u);
  EXPECT_EQ(loaded->DeriveSchemeKeys(1)->provider_key, v1_keys.provider_key);
  EXPECT_EQ(loaded->Find(2)->scheme.rfind("kgw-selfhash", 0), 0u);
  EXPECT_NE(loaded->DeriveSchemeKeys(2)->provider_key, v1_keys.provider_key);
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(Keyring, DerivationIsDomainSeparated) {
  std::vector<uint8_t> secret(32, 7);
  auto ring = Keyring::FromSecret(secret, "gumbel");
  ASSERT_TRUE(ring.ok());
  auto other_scheme = Keyring::FromSecret(secret, "kgw-selfhash");
  const SchemeKeys k = *ring->DeriveSchemeKeys(1);
  std::set<uint64_t> seen{k.context_key, k.provider_key, other_scheme->DeriveSchemeKeys(1)->provider_key,
                          other_scheme->DeriveSchemeKeys(1)->context_key};
  for (uint64_t a = 0; a < 100; ++a) seen.insert(*ring->DeriveAccountKey(1, a));
  EXPECT_EQ(seen.size(), 104u);
  // Deterministic from the secret.
  EXPECT_EQ(*ring->DeriveAccountKey(1, 42), *Keyring::FromSecret(secret, "gumbel")->DeriveAccountKey(1, 42));
  EXPECT_FALSE(ring->DeriveAccountKey(2, 1).ok());
}

TEST(Keyring, AccountKeyIsHkdfOfDocumentedLabel) {
  std::vector<uint8_t> secret(32, 9);
  auto ring = Keyring::FromSecret(secret, "gumbel");
  ASSERT_TRUE(ring.ok());
  // docs/formats/keyring.md: PRK = HKDF-Extract("tracemark/keyring/v1", master);
  // account key = low 8 bytes (little endian) of HKDF-Expand(PRK, label, 32).
  auto prk = crypto::HkdfExtract(crypto::AsBytes("tracemark/keyring/v1"), secret);
  const std::string label = "tracemark/v1/account|version=1|scheme=" + ring->Find(1)->scheme + "|account=42";
  auto okm = crypto::HkdfExpand(prk->span(), crypto::AsBytes(label), 32);
  ASSERT_TRUE(okm.ok());
  EXPECT_EQ(*ring->DeriveAccountKey(1, 42), okm->Low64());
}

TEST(Keyring, DescribeNeverShowsSecrets) {
  std::vector<uint8_t> secret(32, 0xab);
  auto ring = Keyring::FromSecret(secret, "gumbel");
  ASSERT_TRUE(ring.ok());
  const std::string d = ring->Describe();
  EXPECT_EQ(d.find("abababab"), std::string::npos);
  EXPECT_NE(d.find("fingerprint"), std::string::npos);
  EXPECT_NE(ring->Serialize().find("abababab"), std::string::npos);  // the file itself has it
}

TEST(Keyring, ParseErrors) {
  const std::string hex(64, 'a');
  EXPECT_FALSE(Keyring::Parse("").ok());
  EXPECT_FALSE(Keyring::Parse("hello 1\n").ok());
  EXPECT_EQ(Keyring::Parse("tracemark-keyring 2\n").status().code(), StatusCode::kUnimplemented);
  EXPECT_FALSE(Keyring::Parse("tracemark-keyring 1\n").ok());  // no keys
  EXPECT_FALSE(Keyring::Parse("tracemark-keyring 1\nkey 1 t gumbel " + hex.substr(2) + "\n").ok());
  EXPECT_FALSE(Keyring::Parse("tracemark-keyring 1\nkey 1 t nope " + hex + "\n").ok());
  EXPECT_FALSE(Keyring::Parse("tracemark-keyring 1\nkey 1 t gumbel " + hex + "\nkey 1 t gumbel " + hex + "\n").ok());
  EXPECT_FALSE(Keyring::Parse("tracemark-keyring 1\nactive 3\nkey 1 t gumbel " + hex + "\n").ok());
  auto ok = Keyring::Parse("# c\ntracemark-keyring 1\nkey 1 t gumbel " + hex + "\n");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->active_version(), 1);
  // A bad secret is reported without echoing it.
  auto bad = Keyring::Parse("tracemark-keyring 1\nkey 1 t gumbel zz" + hex.substr(2) + "\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().find(hex.substr(2)), std::string::npos);
}

TEST(MakeWatermarkHook, RejectsAccountOutsidePayloadSpace) {
  std::vector<uint8_t> secret(32, 1);
  auto ring = Keyring::FromSecret(secret, "gumbel:payload=5");
  ASSERT_TRUE(ring.ok());
  EXPECT_TRUE(MakeWatermarkHook(*ring, (1u << 20) - 1).ok());
  EXPECT_FALSE(MakeWatermarkHook(*ring, 1u << 20).ok());
}

}  // namespace
}  // namespace tracemark::watermark
