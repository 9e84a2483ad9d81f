#include "tracemark/base/file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

namespace tracemark {
namespace {

std::string TempDir() {
  char tmpl[] = "/tmp/tm_file_test_XXXXXX";
  const char* d = ::mkdtemp(tmpl);
  EXPECT_NE(d, nullptr);
  return d;
}

TEST(FileTest, AtomicWriteThenMapAndRead) {
  const std::string path = TempDir() + "/a.bin";
  ASSERT_TRUE(WriteFileAtomic(path, "hello", 0600).ok());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto m = MappedFile::Open(path);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(std::string(reinterpret_cast<const char*>((*m)->data()), (*m)->size()), "hello");
  auto r = ReadFile(path, 5);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "hello");
}

TEST(FileTest, ReadRefusesOversizedFile) {
  const std::string path = TempDir() + "/big.txt";
  ASSERT_TRUE(WriteFileAtomic(path, std::string(100, 'x')).ok());
  auto r = ReadFile(path, 99);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
}

TEST(FileTest, MissingFileIsNotFound) {
  auto m = MappedFile::Open("/nonexistent/tracemark/file");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
  EXPECT_NE(m.status().message().find("/nonexistent/tracemark/file"), std::string::npos);
}

TEST(FileTest, DirectoryIsRejected) {
  auto m = MappedFile::Open("/tmp");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tracemark
