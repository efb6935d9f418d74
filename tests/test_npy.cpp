#include "catch_compat.hpp"
#include "temp_dir.hpp"

// Tests for ringlab::npy: round trips, numpy-identical header bytes, hand-built files of every supported
// kind, and one rejection test per failure mode (each checks the message names the file and the problem).
// Files are built byte by byte here so the tests need no Python.

#include <bit>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "ringlab/errors.hpp"
#include "ringlab/npy.hpp"

namespace fs = std::filesystem;
namespace npy = ringlab::npy;
using namespace std::string_literals;

namespace {

using ringlab::testing::TempDir;

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

// `width` little-endian bytes of value.
std::string le(std::uint64_t value, std::size_t width) {
  std::string bytes;
  for (std::size_t i = 0; i < width; ++i) bytes += char((value >> (8 * i)) & 0xff);
  return bytes;
}

// A complete .npy file: magic, version major.0, header length, dict padded to a multiple of 64, data.
std::string npy_file(const std::string& dict, const std::string& data, int major = 1) {
  const std::size_t preamble = major == 1 ? 10 : 12;  // v1.0: uint16 length; v2.0/3.0: uint32
  const std::string header = dict + std::string(63 - (preamble + dict.size()) % 64, ' ') + '\n';
  return "\x93NUMPY"s + char(major) + '\0' + le(header.size(), preamble - 8) + header + data;
}

std::string f8_data(const std::vector<double>& values) {
  std::string bytes;
  for (const double v : values) bytes += le(std::bit_cast<std::uint64_t>(v), 8);
  return bytes;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

bool same_bits(double a, double b) {
  return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b);
}

// The message of the InputError that f throws; fails the test if it throws nothing.
template <class F>
std::string input_error(F&& f) {
  try {
    f();
  } catch (const ringlab::InputError& error) { return error.what(); }
  FAIL("expected ringlab::InputError, nothing was thrown");
  return "";
}

// Writes bytes to dir/name, reads it back expecting rejection, checks the message names the file.
std::string rejection(const TempDir& dir, const std::string& bytes, const std::string& name = "bad.npy") {
  const fs::path path = dir / name;
  write_bytes(path, bytes);
  const std::string message = input_error([&] { npy::read(path); });
  CHECK(contains(message, path.string()));
  return message;
}

void check_round_trip(const TempDir& dir, const std::vector<double>& values,
                      const std::vector<std::int64_t>& shape) {
  const fs::path path = dir / "round_trip.npy";
  npy::write(path, values, shape);
  const npy::Array array = npy::read(path);
  CHECK(array.dtype == npy::DType::float64);
  CHECK(array.shape == shape);
  REQUIRE(array.size() == std::int64_t(values.size()));
  REQUIRE(array.values.size() == values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    INFO("index " << i << " expected " << values[i] << " got " << array.values[i]);
    CHECK(same_bits(array.values[i], values[i]));
  }
}

}  // namespace

TEST_CASE("npy: DType names") {
  CHECK(npy::to_string(npy::DType::float16) == "float16");
  CHECK(npy::to_string(npy::DType::float32) == "float32");
  CHECK(npy::to_string(npy::DType::float64) == "float64");
}

TEST_CASE("npy: write then read round-trips shape and exact bits") {
  const TempDir dir;
  using limits = std::numeric_limits<double>;
  SECTION("1-d with special values") {
    check_round_trip(dir,
                     {0.0, -0.0, 1.0, -2.5, 0.1, 3.141592653589793, -1e-300, limits::denorm_min(),
                      -limits::denorm_min(), 1e-310, limits::min(), limits::max(), -limits::max(), 1e300,
                      limits::infinity(), -limits::infinity()},
                     {16});
  }
  SECTION("3-d") {
    std::vector<double> values;
    for (int i = 0; i < 24; ++i) values.push_back((i - 11) * 1.37e-5 + i * i * 1e10);
    check_round_trip(dir, values, {2, 3, 4});
  }
  SECTION("0-d") { check_round_trip(dir, {42.5}, {}); }
  SECTION("a zero dimension: header only, no data") {
    check_round_trip(dir, {}, {3, 0, 2});
    CHECK(fs::file_size(dir / "round_trip.npy") == 128);
  }
  SECTION("NaN stays NaN") {
    npy::write(dir / "nan.npy", std::vector<double>{limits::quiet_NaN()}, {1});
    CHECK(std::isnan(npy::read(dir / "nan.npy").values.at(0)));
  }
  SECTION("overwriting an existing file leaves exactly one file, no temporaries") {
    npy::write(dir / "a.npy", std::vector<double>{1.0, 2.0}, {2});
    npy::write(dir / "a.npy", std::vector<double>{3.0}, {1});
    CHECK(npy::read(dir / "a.npy").values == std::vector<double>{3.0});
    CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);
  }
}

TEST_CASE("npy: written headers are byte-identical to numpy.save") {
  const TempDir dir;
  // numpy.save header: dict, 21 - len(str(shape[0])) growth spaces, padding to a multiple of 64, '\n'.
  const auto numpy_header = [](const std::string& dict, std::size_t total, char length_byte) {
    std::string header = "\x93NUMPY\x01\x00"s + length_byte + '\0' + dict;
    header.resize(total - 1, ' ');
    return header + '\n';
  };
  SECTION("shape (2, 3)") {
    std::vector<double> values = {1.0, 2.0, 3.0, 4.0, 5.0, 6.0};
    npy::write(dir / "a.npy", values, {2, 3});
    const std::string bytes = read_bytes(dir / "a.npy");
    REQUIRE(bytes.size() == 128 + 6 * 8);
    CHECK(bytes.substr(0, 128) ==
          numpy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 128, 'v'));
    CHECK(bytes.substr(128, 8) == "\0\0\0\0\0\0\xf0\x3f"s);  // 1.0 little-endian
    CHECK(bytes.substr(128) == f8_data(values));
  }
  SECTION("1-d, 0-d, zero-size") {
    npy::write(dir / "b.npy", std::vector<double>(5, 0.0), {5});
    CHECK(read_bytes(dir / "b.npy").substr(0, 128) ==
          numpy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (5,), }", 128, 'v'));
    npy::write(dir / "c.npy", std::vector<double>{0.0}, {});
    CHECK(read_bytes(dir / "c.npy").substr(0, 128) ==
          numpy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", 128, 'v'));
    npy::write(dir / "d.npy", std::vector<double>{}, {0, 4});
    CHECK(read_bytes(dir / "d.npy") ==
          numpy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (0, 4), }", 128, 'v'));
  }
  SECTION("a header longer than 128 bytes pads to 192") {
    npy::write(dir / "e.npy", std::vector<double>{7.0}, std::vector<std::int64_t>(21, 1));
    const std::string shape = "(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)";
    CHECK(read_bytes(dir / "e.npy") ==
          numpy_header("{'descr': '<f8', 'fortran_order': False, 'shape': " + shape + ", }", 192, '\xb6') +
              f8_data({7.0}));
  }
}

TEST_CASE("npy: reads float16 exactly") {
  const TempDir dir;
  const std::vector<std::pair<std::uint16_t, double>> cases = {
      {0x3c00, 1.0},
      {0xc100, -2.5},
      {0x7bff, 65504.0},                      // largest finite
      {0x0001, std::ldexp(1.0, -24)},         // smallest subnormal
      {0x03ff, 1023 * std::ldexp(1.0, -24)},  // largest subnormal
      {0x0400, std::ldexp(1.0, -14)},         // smallest normal
      {0x3555, 0.333251953125},
      {0x8000, -0.0},
      {0x7c00, std::numeric_limits<double>::infinity()},
      {0xfc00, -std::numeric_limits<double>::infinity()},
  };
  std::string data;
  for (const auto& [bits, value] : cases) data += le(bits, 2);
  data += le(0x7e00, 2);  // NaN
  write_bytes(dir / "h.npy", npy_file("{'descr': '<f2', 'fortran_order': False, 'shape': (11,), }", data));
  const npy::Array array = npy::read(dir / "h.npy");
  CHECK(array.dtype == npy::DType::float16);
  CHECK(array.shape == std::vector<std::int64_t>{11});
  REQUIRE(array.values.size() == 11);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    INFO("fp16 bits " << cases[i].first);
    CHECK(same_bits(array.values[i], cases[i].second));
  }
  CHECK(std::isnan(array.values[10]));
}

TEST_CASE("npy: reads float32 exactly") {
  const TempDir dir;
  const std::vector<float> floats = {1.0f,
                                     -2.5f,
                                     0.1f,
                                     std::numeric_limits<float>::max(),
                                     std::numeric_limits<float>::denorm_min(),
                                     -std::numeric_limits<float>::infinity()};
  std::string data;
  for (const float f : floats) data += le(std::bit_cast<std::uint32_t>(f), 4);
  write_bytes(dir / "s.npy", npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", data));
  const npy::Array array = npy::read(dir / "s.npy");
  CHECK(array.dtype == npy::DType::float32);
  CHECK(array.shape == std::vector<std::int64_t>{2, 3});
  REQUIRE(array.values.size() == 6);
  CHECK(array.values[0] == 1.0);
  CHECK(array.values[1] == -2.5);
  CHECK(array.values[2] == 0.100000001490116119384765625);  // 0.1f widened exactly
  CHECK(array.values[3] == 0x1.fffffep127);
  CHECK(array.values[4] == std::ldexp(1.0, -149));
  CHECK(array.values[5] == -std::numeric_limits<double>::infinity());
}

TEST_CASE("npy: reads versions 2.0 and 3.0 and any valid header spelling") {
  const TempDir dir;
  const std::string data = f8_data({1.5, -2.0, 3.25, 4.0, 5.0, 6.0});
  const std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
  auto read_ok = [&](const std::string& bytes) {
    write_bytes(dir / "ok.npy", bytes);
    return npy::read(dir / "ok.npy");
  };
  SECTION("version 2.0") {
    const npy::Array array = read_ok(npy_file(dict, data, 2));
    CHECK(array.shape == std::vector<std::int64_t>{2, 3});
    CHECK(array.values == std::vector<double>{1.5, -2.0, 3.25, 4.0, 5.0, 6.0});
  }
  SECTION("version 3.0") { CHECK(read_ok(npy_file(dict, data, 3)).values.at(2) == 3.25); }
  SECTION("double quotes, other key order, no trailing comma, odd spaces") {
    const npy::Array array =
        read_ok(npy_file("{ \"shape\" :( 2 ,3 , ),\"fortran_order\":False,'descr':\"<f8\"}", data));
    CHECK(array.shape == std::vector<std::int64_t>{2, 3});
    CHECK(array.values.at(5) == 6.0);
  }
  SECTION("shapes (), (5,), (0,)") {
    CHECK(
        read_ok(npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", f8_data({9.0}))).values ==
        std::vector<double>{9.0});
    CHECK(read_ok(npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (5,), }", data.substr(0, 40)))
              .shape == std::vector<std::int64_t>{5});
    const npy::Array empty =
        read_ok(npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (0,), }", ""));
    CHECK(empty.size() == 0);
    CHECK(empty.values.empty());
  }
}

TEST_CASE("npy: rejects unusable files with a message naming the file and the problem") {
  const TempDir dir;
  const auto header = [](const std::string& descr, const std::string& fortran, const std::string& shape) {
    return "{'descr': " + descr + ", 'fortran_order': " + fortran + ", 'shape': " + shape + ", }";
  };
  const std::string f8_2x3 = f8_data({1, 2, 3, 4, 5, 6});

  SECTION("missing file") {
    const fs::path path = dir / "missing.npy";
    const std::string message = input_error([&] { npy::read(path); });
    CHECK(contains(message, path.string()));
    CHECK(contains(message, "file not found"));
  }
  SECTION("a directory") {
    const std::string message = input_error([&] { npy::read(dir.path); });
    CHECK(contains(message, dir.path.string()));
    CHECK(contains(message, "is a directory"));
  }
  SECTION("bad magic") {
    CHECK(contains(rejection(dir, "just some text, not numpy"), "bad magic string \"just s\""));
    CHECK(contains(rejection(dir, ""), "bad magic"));
    CHECK(contains(rejection(dir, "PK\x03\x04 zipped"), "zip archive"));
  }
  SECTION("file too short for the preamble") {
    CHECK(contains(rejection(dir, "\x93NUMPY\x01\x00\x10"s), "only 9 bytes, too short"));
    CHECK(contains(rejection(dir, "\x93NUMPY\x02\x00\x10\x00"s), "only 10 bytes, too short"));
  }
  SECTION("unsupported version") {
    std::string bytes = npy_file(header("'<f8'", "False", "(2, 3)"), f8_2x3);
    bytes[6] = '\x04';
    const std::string message = rejection(dir, bytes);
    CHECK(contains(message, "unsupported .npy format version 4.0"));
    CHECK(contains(message, "1.0, 2.0 and 3.0"));
    bytes[6] = '\x01';
    bytes[7] = '\x01';
    CHECK(contains(rejection(dir, bytes), "version 1.1"));
  }
  SECTION("Fortran order") {
    const std::string message = rejection(dir, npy_file(header("'<f8'", "True", "(2, 3)"), f8_2x3), "q.npy");
    CHECK(contains(message, "q.npy: Fortran-order arrays are not supported"));
    CHECK(contains(message, "numpy.ascontiguousarray"));
  }
  SECTION("big-endian") {
    const std::string message = rejection(dir, npy_file(header("'>f8'", "False", "(2, 3)"), f8_2x3));
    CHECK(contains(message, "big-endian dtype '>f8' is not supported"));
    CHECK(contains(message, ".astype('<f8')"));
    CHECK(contains(rejection(dir, npy_file(header("'>f4'", "False", "(2,)"), "12345678")), ".astype('<f4')"));
  }
  SECTION("other dtypes") {
    for (const std::string descr : {"<i4", "<i8", "|u1", "|b1", "<c16", "|O", "<U3", "=f8", "<f16"}) {
      INFO("descr " << descr);
      const std::string message = rejection(dir, npy_file(header("'" + descr + "'", "False", "(2,)"), ""));
      CHECK(contains(message, "unsupported dtype '" + descr + "'"));
      CHECK(contains(message, "float16, float32 and float64"));
      CHECK(contains(message, "little-endian"));
    }
    const std::string message =
        rejection(dir, npy_file(header("[('a', '<f8'), ('b', '<i4')]", "False", "(2,)"), ""));
    CHECK(contains(message, "structured dtypes are not supported"));
  }
  SECTION("truncated data") {
    const std::string message =
        rejection(dir, npy_file(header("'<f8'", "False", "(4,)"), f8_data({1, 2, 3})));
    CHECK(contains(message, "truncated data"));
    CHECK(contains(message, "needs 32 data bytes, but the file has 24"));
  }
  SECTION("trailing bytes") {
    const std::string message =
        rejection(dir, npy_file(header("'<f2'", "False", "(2,)"), "\x00\x3c\x00\x3c\x00"s));
    CHECK(contains(message, "unexpected trailing bytes"));
    CHECK(contains(message, "needs 4 data bytes, but the file has 5"));
  }
  SECTION("truncated header") {
    const std::string bytes = npy_file(header("'<f8'", "False", "(2, 3)"), f8_2x3);
    CHECK(contains(rejection(dir, bytes.substr(0, 60)), "truncated .npy header"));
  }
  SECTION("element count overflow") {
    CHECK(contains(rejection(dir, npy_file(header("'<f8'", "False", "(4294967296, 4294967296)"), "")),
                   "overflows"));
    CHECK(contains(rejection(dir, npy_file(header("'<f8'", "False", "(1152921504606846976, 8)"), "")),
                   "overflows"));
  }
  SECTION("malformed header") {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"not a dict", "expected '{'"},
        {"{'descr': '<f8', 'fortran_order': False}", "missing key 'shape'"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'extra': 1}", "unexpected key 'extra'"},
        {"{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (2,)}", "duplicate key 'descr'"},
        {"{'descr': '<f8", "unterminated string"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2,)} x",
         "unexpected text after the closing '}'"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2.5,)}", "expected ')'"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,)}", "integer too large"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2,) 'x': 1}", "expected '}'"},
        {"{1: '<f8'}", "dict keys must be strings"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': " + std::string(100, '(') + "}",
         "nesting too deep"},
        {"{'descr': '<f8', 'fortran_order': 0, 'shape': (2,)}",
         "'fortran_order' in the .npy header must be True or False"},
        {"{'descr': 8, 'fortran_order': False, 'shape': (2,)}",
         "'descr' in the .npy header must be a string"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2)}",
         "'shape' in the .npy header must be a tuple"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': [2]}",
         "'shape' in the .npy header must be a tuple"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (-1,)}", "non-negative integers"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': ('2',)}", "non-negative integers"},
    };
    for (const auto& [dict, problem] : cases) {
      INFO("header " << dict);
      const std::string message = rejection(dir, npy_file(dict, f8_data({1, 2})));
      CHECK(contains(message, problem));
    }
    CHECK(contains(rejection(dir, npy_file("{}", "")), "malformed .npy header"));
  }
}

TEST_CASE("npy: write rejects bad input and never leaves a partial file") {
  const TempDir dir;
  const std::vector<double> five = {1, 2, 3, 4, 5};
  const auto entries = [&] {
    return std::distance(fs::directory_iterator(dir.path), fs::directory_iterator());
  };
  SECTION("size mismatch") {
    const fs::path path = dir / "w.npy";
    const std::string message = input_error([&] { npy::write(path, five, {2, 3}); });
    CHECK(contains(message, path.string()));
    CHECK(contains(message, "cannot write 5 values with shape (2, 3), which needs 6"));
    CHECK(entries() == 0);
  }
  SECTION("negative dimension") {
    const std::string message = input_error([&] { npy::write(dir / "w.npy", five, {-5}); });
    CHECK(contains(message, "shape (-5,)"));
    CHECK(contains(message, "non-negative"));
    CHECK(entries() == 0);
  }
  SECTION("missing parent directory") {
    const fs::path path = dir / "no_such_dir" / "w.npy";
    const std::string message = input_error([&] { npy::write(path, five, {5}); });
    CHECK(contains(message, path.string()));
    CHECK(contains(message, "cannot create temporary file"));
    CHECK(entries() == 0);
  }
  SECTION("rename onto a non-empty directory fails and the temporary file is removed") {
    fs::create_directories(dir / "target.npy" / "inside");
    const std::string message = input_error([&] { npy::write(dir / "target.npy", five, {5}); });
    CHECK(contains(message, (dir / "target.npy").string()));
    CHECK(contains(message, "cannot move temporary file"));
    CHECK(entries() == 1);  // only target.npy/
  }
}
