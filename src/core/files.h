// File access for untrusted inputs and crash-safe outputs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"

namespace owl::core {

// A read-only memory map of a whole file. Movable, not copyable; unmaps on destruction.
class MappedFile {
 public:
  // `populate` maps every page up front: one pass in the kernel instead of a page fault per
  // 4 KiB on first touch, in 2 MiB pages where the kernel can, which is what loading a model for
  // inference wants.
  static Result<MappedFile> open(const std::string& path, bool populate = false);
  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Bytes of the mapping in memory now (mincore): what a first read finds without going to disk.
  size_t resident_bytes() const;
  // Unmaps the whole pages inside [p, p + bytes) from this process (MADV_DONTNEED): they stop
  // counting in its resident memory and read back from the page cache (or the file) if touched.
  void release(const void* p, size_t bytes) const;

 private:
  void reset();
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

// Writes a file under a temporary name in the same directory and renames it over `path` only on
// commit() (after fsync), so a failed or interrupted write never leaves a partial file behind.
// A committed file of 64 MiB or more is dropped from the page cache (it is on disk), so that
// loading it next reads it into huge pages (see MappedFile::open).
// Not thread-safe; one writer per object.
class AtomicFile {
 public:
  static Result<AtomicFile> create(const std::string& path, unsigned mode = 0644);  // the file's permissions
  AtomicFile(AtomicFile&& other) noexcept;
  AtomicFile& operator=(AtomicFile&&) = delete;
  AtomicFile(const AtomicFile&) = delete;
  ~AtomicFile();  // removes the temporary file unless committed

  Status write(const void* data, size_t size);
  Status write(std::string_view bytes) { return write(bytes.data(), bytes.size()); }
  Status write_zeros(size_t size);
  uint64_t offset() const { return offset_; }
  Status commit();

 private:
  AtomicFile(std::string path, std::string temp_path, int fd)
      : path_(std::move(path)), temp_path_(std::move(temp_path)), fd_(fd) {}
  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  uint64_t offset_ = 0;
  uint64_t written_back_ = 0;  // bytes handed to the disk ahead of commit()'s fsync
  bool committed_ = false;
};

// Reads a whole file into a string (for small text inputs: configs, JSON, templates). A
// directory is an error, not an empty text.
Result<std::string> read_file(const std::string& path);

// Writes `text` to `path` through an AtomicFile: all of it or nothing.
Status write_file_atomic(const std::string& path, std::string_view text);

// read_file, where "-" reads standard input to its end (the convention of llama.cpp's -f).
Result<std::string> read_input(const std::string& path);

// Whether a file can be written at `path`, checked before the work that produces it: the path is
// not a directory, and its directory exists and is writable. The error names the path and why.
Status check_output_path(const std::string& path);

}  // namespace owl::core
