// A small, strict reader and writer for NumPy .npy files (the format of numpy.save / numpy.load).
//
// read:  format versions 1.0, 2.0 and 3.0; dtypes '<f2', '<f4', '<f8' (little-endian IEEE floats);
//        C order only. Every value is widened exactly to double.
// write: '<f8', C order, format 1.0 (2.0 only when the header does not fit a 16-bit length),
//        header bytes identical to what numpy.save writes.
// Every failure is a ringlab::InputError whose message starts with the file path.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace ringlab::npy {

// Element types accepted on read; all are stored little-endian in the file.
enum class DType { float16, float32, float64 };

// "float16", "float32" or "float64".
std::string to_string(DType dtype);

struct Array {
  std::vector<std::int64_t> shape;  // empty for a 0-d array
  DType dtype = DType::float64;     // the dtype stored in the file
  std::vector<double> values;       // C order (last index fastest), converted to double exactly

  // Product of shape (1 for a 0-d array).
  std::int64_t size() const;
};

// Reads a .npy file. Throws InputError naming the path and the problem.
Array read(const std::filesystem::path& path);

// Writes values (C order) as '<f8' with the given shape. values.size() must equal the product of shape.
// Writes a temporary file in the same directory and renames it, so a failure never leaves a partial file.
// Throws InputError on a size mismatch, an invalid shape or an I/O failure.
void write(const std::filesystem::path& path, std::span<const double> values,
           const std::vector<std::int64_t>& shape);

}  // namespace ringlab::npy
