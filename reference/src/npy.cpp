// .npy format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
//   bytes 0-5   magic "\x93NUMPY"
//   bytes 6-7   version major, minor
//   v1.0:       uint16 little-endian header length, then the header (10-byte preamble)
//   v2.0, v3.0: uint32 little-endian header length, then the header (12-byte preamble)
//   header      Python dict literal {'descr': ..., 'fortran_order': ..., 'shape': (...), } padded with
//               spaces and a final '\n' so that preamble + header is a multiple of 64 bytes
//   data        product(shape) elements, raw, in the order given by fortran_order
// Bytes are decoded with explicit shifts, so the code does not depend on the host byte order.
#include "ringlab/npy.hpp"

#include <algorithm>
#include <bit>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <string_view>
#include <system_error>

#include "ringlab/errors.hpp"

namespace ringlab::npy {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kMagic{"\x93NUMPY", 6};
constexpr std::size_t kAlign = 64;         // numpy aligns the data start to 64 bytes
constexpr std::size_t kGrowthDigits = 21;  // numpy's GROWTH_AXIS_MAX_DIGITS: spare room after the dict
constexpr std::size_t kChunkElements = std::size_t{1} << 16;  // elements converted per read/write call

[[noreturn]] void fail(const fs::path& path, const std::string& what) {
  throw InputError(path.string() + ": " + what);
}

// Python repr of a shape tuple: (), (5,), (2, 3).
std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string text = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + (shape.size() == 1 ? ",)" : ")");
}

// Product of the dimensions, or nullopt if a dimension is negative or the product times
// item_size would not fit in int64 (so later byte counts cannot overflow either).
std::optional<std::int64_t> element_count(const std::vector<std::int64_t>& shape, std::int64_t item_size) {
  std::int64_t count = 1;
  for (const std::int64_t dim : shape) {
    if (dim < 0) return std::nullopt;
    if (dim != 0 && count > std::numeric_limits<std::int64_t>::max() / item_size / dim) return std::nullopt;
    count *= dim;
  }
  return count;
}

// Printable excerpt of untrusted bytes for error messages.
std::string escaped(std::string_view bytes, std::size_t limit = 120) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < bytes.size() && i < limit; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7f)
      out += static_cast<char>(c);
    else
      out += std::string("\\x") + kHex[c >> 4] + kHex[c & 0xf];
  }
  return bytes.size() > limit ? out + "..." : out;
}

std::uint64_t load_le(const unsigned char* bytes, std::size_t width) {
  std::uint64_t value = 0;
  for (std::size_t i = width; i-- > 0;) value = (value << 8) | bytes[i];
  return value;
}

// IEEE binary16 -> binary64, exact: sign 1 | exponent 5 (bias 15) | mantissa 10.
double half_to_double(std::uint16_t half) {
  std::uint64_t sign = std::uint64_t{half} >> 15 << 63;
  std::int64_t exponent = (half >> 10) & 0x1f;
  std::uint64_t mantissa = half & 0x3ff;
  if (exponent == 0x1f) return std::bit_cast<double>(sign | 0x7ffULL << 52 | mantissa << 42);  // inf/NaN
  if (exponent == 0) {
    if (mantissa == 0) return std::bit_cast<double>(sign);  // +-0
    exponent = 1;  // subnormal 0.m * 2^-14: normalise so the implicit leading 1 is bit 10
    while ((mantissa & 0x400) == 0) {
      mantissa <<= 1;
      --exponent;
    }
    mantissa &= 0x3ff;
  }
  return std::bit_cast<double>(sign | std::uint64_t(exponent - 15 + 1023) << 52 | mantissa << 42);
}

// A parsed Python literal from the header: str, int, bool, tuple or list.
struct Value {
  enum class Kind { string, integer, boolean, tuple, list } kind = Kind::string;
  std::string text;          // string
  std::int64_t integer = 0;  // integer
  bool boolean = false;      // boolean
  std::vector<Value> items;  // tuple, list
};

// Recursive-descent parser for the subset of Python literals numpy writes in headers.
class HeaderParser {
 public:
  HeaderParser(const fs::path& path, std::string_view text) : path_(path), text_(text) {}

  std::vector<std::pair<std::string, Value>> parse_dict() {
    std::vector<std::pair<std::string, Value>> entries;
    expect('{');
    while (!accept('}')) {
      Value key = parse_value(1);
      if (key.kind != Value::Kind::string) error("dict keys must be strings");
      expect(':');
      entries.emplace_back(key.text, parse_value(1));
      if (!accept(',')) {
        expect('}');
        break;
      }
    }
    skip_space();
    if (pos_ != text_.size()) error("unexpected text after the closing '}'");
    return entries;
  }

  [[noreturn]] void error(const std::string& what) const {
    fail(path_, "malformed .npy header (" + what + " at character " + std::to_string(pos_) + ") in \"" +
                    escaped(text_) +
                    "\"; expected a Python dict like "
                    "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }");
  }

 private:
  void skip_space() {
    while (pos_ < text_.size() && std::string_view(" \t\r\n").find(text_[pos_]) != std::string_view::npos)
      ++pos_;
  }
  bool accept(char c) {
    skip_space();
    return pos_ < text_.size() && text_[pos_] == c ? (++pos_, true) : false;
  }
  void expect(char c) {
    if (!accept(c)) error(std::string("expected '") + c + "'");
  }
  bool accept_word(std::string_view word) {
    skip_space();
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  Value parse_value(int depth) {
    if (depth > 32) error("nesting too deep");
    skip_space();
    if (pos_ >= text_.size()) error("unexpected end of header");
    Value value;
    const char c = text_[pos_];
    if (c == '\'' || c == '"') {  // string literal; escapes never occur in valid headers
      const std::size_t end = text_.find(c, pos_ + 1);
      if (end == std::string_view::npos) error("unterminated string");
      value.kind = Value::Kind::string;
      value.text = std::string(text_.substr(pos_ + 1, end - pos_ - 1));
      if (value.text.find('\\') != std::string::npos) error("escape sequences are not supported");
      pos_ = end + 1;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      value.kind = Value::Kind::integer;
      const bool negative = c == '-';
      if (negative) ++pos_;
      if (pos_ >= text_.size() || text_[pos_] < '0' || text_[pos_] > '9') error("expected digits");
      std::uint64_t magnitude = 0;
      for (; pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9'; ++pos_) {
        magnitude = magnitude * 10 + std::uint64_t(text_[pos_] - '0');
        if (magnitude > std::uint64_t(std::numeric_limits<std::int64_t>::max())) error("integer too large");
      }
      if (pos_ < text_.size() && (text_[pos_] == 'L' || text_[pos_] == 'l')) ++pos_;  // Python 2 long suffix
      value.integer = negative ? -std::int64_t(magnitude) : std::int64_t(magnitude);
    } else if (accept_word("True")) {
      value.kind = Value::Kind::boolean;
      value.boolean = true;
    } else if (accept_word("False")) {
      value.kind = Value::Kind::boolean;
    } else if (c == '(' || c == '[') {
      ++pos_;
      const char close = c == '(' ? ')' : ']';
      bool trailing_comma = false;
      while (!accept(close)) {
        value.items.push_back(parse_value(depth + 1));
        trailing_comma = accept(',');
        if (!trailing_comma) {
          expect(close);
          break;
        }
      }
      // Python: "(5)" is just 5 in parentheses, "(5,)" and "()" are tuples.
      if (c == '(' && value.items.size() == 1 && !trailing_comma) return std::move(value.items.front());
      value.kind = c == '(' ? Value::Kind::tuple : Value::Kind::list;
    } else {
      error("unexpected character '" + escaped(text_.substr(pos_, 1)) + "'");
    }
    return value;
  }

  const fs::path& path_;
  std::string_view text_;
  std::size_t pos_ = 0;
};

constexpr std::string_view kSupported =
    "supported dtypes are float16, float32 and float64 in little-endian byte order ('<f2', '<f4', '<f8')";

std::int64_t item_size(DType dtype) { return dtype == DType::float16 ? 2 : dtype == DType::float32 ? 4 : 8; }

DType parse_descr(const fs::path& path, const Value& descr) {
  if (descr.kind == Value::Kind::list)
    fail(path, "structured dtypes are not supported; " + std::string(kSupported));
  if (descr.kind != Value::Kind::string) fail(path, "'descr' in the .npy header must be a string");
  const std::string& d = descr.text;
  if (d == "<f2") return DType::float16;
  if (d == "<f4") return DType::float32;
  if (d == "<f8") return DType::float64;
  if (d == ">f2" || d == ">f4" || d == ">f8")
    fail(path, "big-endian dtype '" + d + "' is not supported; convert with .astype('<" + d.substr(1) +
                   "') before numpy.save (" + std::string(kSupported) + ")");
  fail(path, "unsupported dtype '" + escaped(d) + "'; " + std::string(kSupported) +
                 "; convert with .astype('<f8') before numpy.save");
}

}  // namespace

std::string to_string(DType dtype) {
  switch (dtype) {
    case DType::float16: return "float16";
    case DType::float32: return "float32";
    case DType::float64: return "float64";
  }
  return "unknown";
}

std::int64_t Array::size() const {
  std::int64_t count = 1;
  for (const std::int64_t dim : shape) count *= dim;
  return count;
}

Array read(const fs::path& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (status.type() == fs::file_type::not_found) fail(path, "file not found");
  if (ec) fail(path, "cannot access file: " + ec.message());
  if (fs::is_directory(status)) fail(path, "is a directory, not a .npy file");
  const std::uintmax_t file_size = fs::file_size(path, ec);
  if (ec) fail(path, "cannot determine file size: " + ec.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open file for reading");
  auto read_bytes = [&](std::string& buffer, std::size_t count) {
    buffer.resize(count);
    if (!in.read(buffer.data(), std::streamsize(count))) fail(path, "read error");
  };

  std::string preamble;
  read_bytes(preamble, std::min<std::uintmax_t>(file_size, 12));
  if (preamble.substr(0, 2) == "PK")
    fail(path, "is a zip archive (.npz?), not a .npy file; save each array with numpy.save");
  if (std::string_view(preamble).substr(0, 6) != kMagic)
    fail(path, "not a .npy file: bad magic string \"" + escaped(preamble.substr(0, 6)) +
                   "\" (expected \"\\x93NUMPY\")");
  const auto too_short = [&] {
    fail(path, "file is only " + std::to_string(file_size) + " bytes, too short for a .npy preamble");
  };
  if (preamble.size() < 8) too_short();
  const int major = static_cast<unsigned char>(preamble[6]), minor = static_cast<unsigned char>(preamble[7]);
  if (minor != 0 || major < 1 || major > 3)
    fail(path, "unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor) +
                   "; supported versions are 1.0, 2.0 and 3.0");
  const std::size_t length_width = major == 1 ? 2 : 4;  // v1.0: uint16 header length; v2.0/3.0: uint32
  if (file_size < 8 + length_width) too_short();
  const std::uint64_t header_length =
      load_le(reinterpret_cast<const unsigned char*>(preamble.data()) + 8, length_width);
  const std::uint64_t data_offset = 8 + length_width + header_length;
  in.seekg(std::streamoff(8 + length_width));  // a v1.0 header may start inside the 12 bytes read
  if (data_offset > file_size)
    fail(path, "truncated .npy header: it declares " + std::to_string(header_length) +
                   " header bytes but the file has only " + std::to_string(file_size) + " bytes in total");
  std::string header;
  read_bytes(header, header_length);

  // Header dict: exactly 'descr', 'fortran_order', 'shape', each once.
  HeaderParser parser(path, header);
  const auto entries = parser.parse_dict();
  std::map<std::string, const Value*> found;
  for (const auto& [key, value] : entries) {
    if (key != "descr" && key != "fortran_order" && key != "shape")
      parser.error("unexpected key '" + escaped(key) +
                   "'; the keys must be 'descr', 'fortran_order', 'shape'");
    if (!found.emplace(key, &value).second) parser.error("duplicate key '" + key + "'");
  }
  for (const std::string key : {"descr", "fortran_order", "shape"})
    if (!found.contains(key)) parser.error("missing key '" + key + "'");
  const Value* descr = found["descr"];
  const Value* fortran_order = found["fortran_order"];
  const Value* shape = found["shape"];

  Array array;
  array.dtype = parse_descr(path, *descr);
  const std::int64_t item_bytes = item_size(array.dtype);
  if (fortran_order->kind != Value::Kind::boolean)
    fail(path, "'fortran_order' in the .npy header must be True or False");
  if (fortran_order->boolean)
    fail(path, "Fortran-order arrays are not supported; save with numpy.ascontiguousarray (C order)");
  for (const Value& dim : shape->items) array.shape.push_back(dim.integer);
  if (shape->kind != Value::Kind::tuple || std::ranges::any_of(shape->items, [](const Value& dim) {
        return dim.kind != Value::Kind::integer || dim.integer < 0;
      }))
    fail(path, "'shape' in the .npy header must be a tuple of non-negative integers");
  const std::optional<std::int64_t> count = element_count(array.shape, item_bytes);
  if (!count)
    fail(path, "shape " + shape_string(array.shape) + " overflows: its byte count does not fit in 64 bits");

  // The data must be exactly count * item_size bytes: no truncation, no trailing garbage.
  const std::uint64_t expected = std::uint64_t(*count) * std::uint64_t(item_bytes);
  const std::uint64_t actual = file_size - data_offset;
  if (actual != expected)
    fail(path, std::string(actual < expected ? "truncated data" : "unexpected trailing bytes") + ": shape " +
                   shape_string(array.shape) + " of " + to_string(array.dtype) + " needs " +
                   std::to_string(expected) + " data bytes, but the file has " + std::to_string(actual) +
                   " bytes after the " + std::to_string(data_offset) + "-byte header");

  array.values.resize(std::size_t(*count));
  std::string chunk;
  for (std::size_t begin = 0; begin < array.values.size(); begin += kChunkElements) {
    const std::size_t n = std::min(kChunkElements, array.values.size() - begin);
    read_bytes(chunk, n * std::size_t(item_bytes));
    const auto* bytes = reinterpret_cast<const unsigned char*>(chunk.data());
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint64_t bits = load_le(bytes + i * std::size_t(item_bytes), std::size_t(item_bytes));
      double& out = array.values[begin + i];
      switch (array.dtype) {
        case DType::float16: out = half_to_double(std::uint16_t(bits)); break;
        case DType::float32: out = std::bit_cast<float>(std::uint32_t(bits)); break;  // widening is exact
        case DType::float64: out = std::bit_cast<double>(bits); break;
      }
    }
  }
  return array;
}

void write(const fs::path& path, std::span<const double> values, const std::vector<std::int64_t>& shape) {
  const std::optional<std::int64_t> count = element_count(shape, 8);
  if (!count)
    fail(path, "cannot write shape " + shape_string(shape) +
                   ": dimensions must be non-negative and the byte count must fit in 64 bits");
  if (std::uint64_t(*count) != values.size())
    fail(path, "cannot write " + std::to_string(values.size()) + " values with shape " + shape_string(shape) +
                   ", which needs " + std::to_string(*count));

  // Same bytes as numpy.save: dict, growth spaces, then spaces and '\n' up to a multiple of 64.
  std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': " + shape_string(shape) + ", }";
  if (!shape.empty()) dict.append(kGrowthDigits - std::to_string(shape.front()).size(), ' ');
  std::size_t preamble = 10;  // v1.0: magic, version, uint16 length
  std::size_t padding = kAlign - (preamble + dict.size() + 1) % kAlign;
  if (dict.size() + 1 + padding > 0xffff) {  // too long for v1.0's uint16 length: use v2.0
    preamble = 12;
    padding = kAlign - (preamble + dict.size() + 1) % kAlign;
  }
  const std::uint64_t header_length = dict.size() + padding + 1;
  std::string bytes(kMagic);
  bytes += preamble == 10 ? '\x01' : '\x02';
  bytes += '\x00';
  for (std::size_t i = 0; i < preamble - 8; ++i) bytes += char((header_length >> (8 * i)) & 0xff);
  bytes += dict + std::string(padding, ' ') + '\n';

  // Temporary file next to the target so the final rename stays on one filesystem.
  std::random_device random;
  const fs::path temp = path.parent_path() / ("." + path.filename().string() + ".tmp" +
                                              std::to_string(random()) + std::to_string(random()));
  struct TempGuard {  // removes the temporary file unless the rename succeeded
    const fs::path& file;
    bool keep = false;
    ~TempGuard() {
      if (!keep) {
        std::error_code ignored;
        fs::remove(file, ignored);
      }
    }
  } guard{temp};
  std::ofstream out(temp, std::ios::binary | std::ios::trunc);
  if (!out) fail(path, "cannot create temporary file " + temp.string() + " for writing");
  out.write(bytes.data(), std::streamsize(bytes.size()));
  for (std::size_t begin = 0; begin < values.size(); begin += kChunkElements) {
    const std::size_t n = std::min(kChunkElements, values.size() - begin);
    bytes.assign(n * 8, '\0');
    for (std::size_t i = 0; i < n; ++i) {
      const auto bits = std::bit_cast<std::uint64_t>(values[begin + i]);
      for (std::size_t b = 0; b < 8; ++b) bytes[i * 8 + b] = char((bits >> (8 * b)) & 0xff);  // little-endian
    }
    out.write(bytes.data(), std::streamsize(bytes.size()));
  }
  out.close();
  if (out.fail()) fail(path, "write error (disk full?) while writing temporary file " + temp.string());
  std::error_code ec;
  fs::rename(temp, path, ec);
  if (ec) fail(path, "cannot move temporary file " + temp.string() + " into place: " + ec.message());
  guard.keep = true;
}

}  // namespace ringlab::npy
