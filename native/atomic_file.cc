#include "atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <system_error>

namespace torch_dpo {

namespace {

std::atomic<unsigned long> written{0};

void Fsync(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "open " + path);
  const int result = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (result != 0) throw std::system_error(error, std::generic_category(), "fsync " + path);
}

}  // namespace

void WriteFileAtomic(const std::string& path, const std::function<void(const std::string& temporary)>& write) {
  const std::string temporary = path + ".partial-" + std::to_string(::getpid()) + "-" + std::to_string(++written);
  try {
    write(temporary);
    Fsync(temporary, O_RDONLY);
    std::filesystem::rename(temporary, path);
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    throw;
  }
  const std::filesystem::path folder = std::filesystem::path(path).parent_path();
  Fsync(folder.empty() ? "." : folder.string(), O_RDONLY | O_DIRECTORY);
}

}  // namespace torch_dpo
