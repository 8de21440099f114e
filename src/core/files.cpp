#include "core/files.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <vector>

namespace owl::core {
namespace {

// Maps every page of a read-only file mapping now, in 2 MiB pages where the page cache holds the
// file in 2 MiB folios (MADV_HUGEPAGE also makes the kernel read it into such folios when it is
// not cached yet). A model's weights are streamed whole for every token, one 4 KiB page after
// another; with 2 MiB pages the TLB covers them and a step reads them faster. Hints only: a
// kernel without them maps 4 KiB pages, as MAP_POPULATE would.
void map_all_pages(void* addr, size_t size) {
#ifdef MADV_HUGEPAGE
  ::madvise(addr, size, MADV_HUGEPAGE);
#endif
#ifdef MADV_POPULATE_READ
  if (::madvise(addr, size, MADV_POPULATE_READ) == 0) return;
#endif
  const long page = ::sysconf(_SC_PAGESIZE);
  const auto* p = static_cast<const volatile uint8_t*>(addr);
  for (size_t i = 0; i < size; i += static_cast<size_t>(page)) (void)p[i];
}

// Files at least this large are dropped from the page cache once written (see commit()).
constexpr uint64_t kDropCacheBytes = uint64_t{64} << 20;
// Written bytes handed to the disk at a time while a file is being written.
constexpr uint64_t kWriteBackBytes = uint64_t{32} << 20;

}  // namespace

Result<MappedFile> MappedFile::open(const std::string& path, bool populate) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error("{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return make_error("{}: cannot stat: {}", path, std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error("{}: not a regular file", path);
  }
  MappedFile file;
  file.path_ = path;
  file.size_ = static_cast<size_t>(st.st_size);
  if (file.size_ > 0) {
    void* addr = ::mmap(nullptr, file.size_, PROT_READ, MAP_SHARED, fd, 0);
    if (addr == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      return make_error("{}: cannot mmap {} bytes: {}", path, file.size_, std::strerror(err));
    }
    file.data_ = static_cast<const uint8_t*>(addr);
    if (populate) map_all_pages(addr, file.size_);
  }
  ::close(fd);
  return file;
}

size_t MappedFile::resident_bytes() const {
  if (data_ == nullptr || size_ == 0) return 0;
  const auto page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> in_core((size_ + page - 1) / page);
  if (::mincore(const_cast<uint8_t*>(data_), size_, in_core.data()) != 0) return 0;
  size_t pages = 0;
  for (unsigned char c : in_core) pages += c & 1u;
  return std::min(size_, pages * page);
}

void MappedFile::release(const void* p, size_t bytes) const {
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = std::max(reinterpret_cast<uintptr_t>(p), reinterpret_cast<uintptr_t>(data_));
  const auto end = std::min(reinterpret_cast<uintptr_t>(p) + bytes, reinterpret_cast<uintptr_t>(data_) + size_);
  const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
  if (data_ == nullptr || last <= first) return;
  ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(other.data_), size_(other.size_), path_(std::move(other.path_)) {
  other.data_ = nullptr;
  other.size_ = 0;
}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    reset();
    data_ = other.data_;
    size_ = other.size_;
    path_ = std::move(other.path_);
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

MappedFile::~MappedFile() { reset(); }

void MappedFile::reset() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

Result<AtomicFile> AtomicFile::create(const std::string& path, unsigned mode) {
  struct stat st{};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return make_error("{}: is a directory, not a file", path);
  std::string temp = path + ".tmp.XXXXXX";
  const int fd = ::mkstemp(temp.data());
  if (fd < 0) return make_error("{}: cannot create temporary file: {}", path, std::strerror(errno));
  ::fchmod(fd, static_cast<mode_t>(mode));
  return AtomicFile(path, temp, fd);
}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept
    : path_(std::move(other.path_)),
      temp_path_(std::move(other.temp_path_)),
      fd_(other.fd_),
      offset_(other.offset_),
      written_back_(other.written_back_),
      committed_(other.committed_) {
  other.fd_ = -1;
  other.committed_ = true;
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_path_.c_str());
}

Status AtomicFile::write(const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error("{}: write failed at offset {}: {}", path_, offset_, std::strerror(errno));
    }
    p += n;
    size -= static_cast<size_t>(n);
    offset_ += static_cast<uint64_t>(n);
  }
#ifdef SYNC_FILE_RANGE_WRITE
  // Large files start going to disk while the rest is still being written, so that commit()'s
  // fsync finds little left to do (a hint: it waits for nothing, and failure is harmless).
  if (offset_ - written_back_ >= kWriteBackBytes) {
    ::sync_file_range(fd_, static_cast<off_t>(written_back_), static_cast<off_t>(offset_ - written_back_), SYNC_FILE_RANGE_WRITE);
    written_back_ = offset_;
  }
#endif
  return {};
}

Status AtomicFile::write_zeros(size_t size) {
  static const char kZeros[256] = {};
  while (size > 0) {
    const size_t n = size < sizeof(kZeros) ? size : sizeof(kZeros);
    OWL_TRY(write(kZeros, n));
    size -= n;
  }
  return {};
}

Status AtomicFile::commit() {
  if (::fsync(fd_) != 0) return make_error("{}: fsync failed: {}", path_, std::strerror(errno));
  if (offset_ >= kDropCacheBytes) {
    // The written pages sit in the page cache in small folios, and a mapping of them could only
    // use 4 KiB pages. The data is on disk (fsync above): drop the cached copy so that the first
    // load reads the file into 2 MiB folios (map_all_pages). Only a hint; failure is harmless.
    ::posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED);
  }
  if (::close(fd_) != 0) {
    fd_ = -1;
    return make_error("{}: close failed: {}", path_, std::strerror(errno));
  }
  fd_ = -1;
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    return make_error("{}: cannot rename from {}: {}", path_, temp_path_, std::strerror(errno));
  }
  committed_ = true;
  return {};
}

Status write_file_atomic(const std::string& path, std::string_view text) {
  auto f = AtomicFile::create(path);
  if (!f) return f.error();
  OWL_TRY(f->write(text));
  return f->commit();
}

Result<std::string> read_file(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return make_error("{}: is a directory, not a file", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("{}: cannot open: {}", path, std::strerror(errno));
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) return make_error("{}: read failed", path);
  return out.str();
}

Result<std::string> read_input(const std::string& path) {
  if (path != "-") return read_file(path);
  std::ostringstream out;
  out << std::cin.rdbuf();
  if (std::cin.bad()) return make_error("standard input: read failed");
  return out.str();
}

Status check_output_path(const std::string& path) {
  if (path.empty()) return make_error("the output path is empty");
  struct stat st{};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return make_error("{}: is a directory, not a file", path);
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  if (::stat(dir.c_str(), &st) != 0) return make_error("{}: directory {} does not exist", path, dir);
  if (!S_ISDIR(st.st_mode)) return make_error("{}: {} is not a directory", path, dir);
  if (::access(dir.c_str(), W_OK) != 0) return make_error("{}: cannot write in {}: {}", path, dir, std::strerror(errno));
  return {};
}

}  // namespace owl::core
