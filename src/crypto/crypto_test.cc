#include "tracemark/crypto/crypto.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "tracemark/crypto/key_file.h"

namespace tracemark::crypto {
namespace {

std::string Hex(const Digest& d) { return HexEncode(d); }

std::vector<uint8_t> Repeat(uint8_t b, size_t n) { return std::vector<uint8_t>(n, b); }

TEST(Sha256, Fips180Abc) {
  EXPECT_EQ(Hex(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Hex(Sha256("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(HmacSha256, Rfc4231Case1And2) {
  auto key = Repeat(0x0b, 20);
  EXPECT_EQ(Hex(HmacSha256(key, AsBytes("Hi There"))),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(Hex(HmacSha256(AsBytes("Jefe"), AsBytes("what do ya want for nothing?"))),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(Hkdf, Rfc5869Case1) {
  auto ikm = Repeat(0x0b, 22);
  std::vector<uint8_t> salt, info;
  for (int i = 0; i <= 0x0c; ++i) salt.push_back(static_cast<uint8_t>(i));
  for (int i = 0xf0; i <= 0xf9; ++i) info.push_back(static_cast<uint8_t>(i));
  auto prk = HkdfExtract(salt, ikm);
  ASSERT_TRUE(prk.ok()) << prk.status().message();
  EXPECT_EQ(HexEncode(prk->span()),
            "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5");
  auto okm = HkdfExpand(prk->span(), info, 42);
  ASSERT_TRUE(okm.ok()) << okm.status().message();
  EXPECT_EQ(HexEncode(okm->span()),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c"
            "5db02d56ecc4c5bf34007208d5b887185865");
}

TEST(Hkdf, Rfc5869Case3EmptySaltAndInfo) {
  auto ikm = Repeat(0x0b, 22);
  auto prk = HkdfExtract({}, ikm);
  ASSERT_TRUE(prk.ok());
  EXPECT_EQ(HexEncode(prk->span()),
            "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04");
  auto okm = HkdfExpand(prk->span(), {}, 42);
  ASSERT_TRUE(okm.ok());
  EXPECT_EQ(HexEncode(okm->span()),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
            "9d201395faa4b61a96c8");
}

TEST(HmacSha256Key, MatchesOneShotAndHkdfExpandBlock) {
  auto key = Repeat(0x0b, 20);
  auto k = HmacSha256Key::Create(key);
  ASSERT_TRUE(k.ok());
  auto mac = (*k)->Mac(AsBytes("Hi "), AsBytes("There"));
  ASSERT_TRUE(mac.ok());
  EXPECT_EQ(Hex(*mac), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  // HKDF-Expand with L = 32 is HMAC(PRK, info || 0x01).
  SecretBytes prk(std::span<const uint8_t>(Sha256("prk").data(), 32));
  auto pk = HmacSha256Key::Create(prk.span());
  const uint8_t one = 1;
  auto block = (*pk)->Mac(AsBytes("label"), std::span<const uint8_t>(&one, 1));
  auto okm = HkdfExpand(prk.span(), AsBytes("label"), 32);
  ASSERT_TRUE(block.ok() && okm.ok());
  EXPECT_EQ(Hex(*block), HexEncode(okm->span()));
}

TEST(Hkdf, RejectsBadLengths) {
  SecretBytes prk(32);
  EXPECT_FALSE(HkdfExpand(prk.span(), {}, 0).ok());
  EXPECT_FALSE(HkdfExpand(prk.span(), {}, kHkdfMaxOutputBytes + 1).ok());
  EXPECT_FALSE(HkdfExpand(SecretBytes(16).span(), {}, 32).ok());
}

TEST(ConstantTimeEqual, ComparesContentAndLength) {
  std::vector<uint8_t> a{1, 2, 3}, b{1, 2, 3}, c{1, 2, 4}, d{1, 2};
  EXPECT_TRUE(ConstantTimeEqual(a, b));
  EXPECT_FALSE(ConstantTimeEqual(a, c));
  EXPECT_FALSE(ConstantTimeEqual(a, d));
}

TEST(RandomBytes, FillsAndDiffers) {
  std::vector<uint8_t> a(32), b(32);
  ASSERT_TRUE(RandomBytes(a).ok());
  ASSERT_TRUE(RandomBytes(b).ok());
  EXPECT_NE(a, b);
}

TEST(Hex, RoundTripAndErrors) {
  std::vector<uint8_t> v{0x00, 0xab, 0xff, 0x10};
  EXPECT_EQ(HexEncode(v), "00abff10");
  auto back = HexDecode("00ABff10");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(std::vector<uint8_t>(back->span().begin(), back->span().end()), v);
  EXPECT_FALSE(HexDecode("abc").ok());
  EXPECT_FALSE(HexDecode("zz").ok());
}

TEST(SecretBytes, Low64IsLittleEndian) {
  std::vector<uint8_t> v{1, 2, 3, 4, 5, 6, 7, 8, 9};
  EXPECT_EQ(SecretBytes(v).Low64(), 0x0807060504030201ull);
}

class KeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = std::string(TM_BINARY_DIR) + "/crypto_test_key_" + std::to_string(::getpid());
    ::unlink(path_.c_str());
  }
  void TearDown() override { ::unlink(path_.c_str()); }
  std::string path_;
};

TEST_F(KeyFileTest, CreateIsOwnerOnlyAndExclusive) {
  ASSERT_TRUE(CreateSecretFile(path_, "secret\n").ok());
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = CreateSecretFile(path_, "other");
  EXPECT_EQ(again.code(), StatusCode::kInvalidArgument);
  auto read = ReadSecretFile(path_);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, "secret\n");
}

TEST_F(KeyFileTest, RefusesGroupOrOtherReadable) {
  ASSERT_TRUE(CreateSecretFile(path_, "secret\n").ok());
  ASSERT_EQ(::chmod(path_.c_str(), 0644), 0);
  auto read = ReadSecretFile(path_);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(read.status().message().find("chmod 600"), std::string::npos);
  EXPECT_EQ(read.status().message().find("secret"), read.status().message().find("secret may"));
  ASSERT_EQ(::chmod(path_.c_str(), 0640), 0);
  EXPECT_FALSE(ReadSecretFile(path_).ok());
  ASSERT_EQ(::chmod(path_.c_str(), 0600), 0);
  EXPECT_TRUE(ReadSecretFile(path_).ok());
}

TEST_F(KeyFileTest, MissingFileIsNotFoundWithHint) {
  auto read = ReadSecretFile(path_);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kNotFound);
  EXPECT_NE(read.status().message().find("keyring init"), std::string::npos);
}

TEST_F(KeyFileTest, ReplaceKeepsOwnerOnlyMode) {
  ASSERT_TRUE(CreateSecretFile(path_, "v1").ok());
  ASSERT_TRUE(ReplaceSecretFile(path_, "v2").ok());
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(*ReadSecretFile(path_), "v2");
}

}  // namespace
}  // namespace tracemark::crypto
