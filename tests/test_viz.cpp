// ringlab-viz, headless: every scene renders to a PNG whose content is real (many colours, every panel
// drawn, the ring panel showing each of the P device colours); the documented single-scene command works;
// bad flags exit 2. Runs the binary under xvfb-run when there is no display (CI), skips when neither exists.
#include <stb_image.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "catch_compat.hpp"
#include "palette.hpp"

namespace fs = std::filesystem;
using ringlab::viz::Rgb;

namespace {

struct Result {
  int status = -1;
  std::string output;
};

// Runs a shell command, capturing stdout and stderr.
Result shell(const std::string& command) {
  Result result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return result;
  std::array<char, 4096> buffer{};
  while (fgets(buffer.data(), buffer.size(), pipe)) result.output += buffer.data();
  const int status = pclose(pipe);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

bool on_path(const std::string& program) { return shell("command -v " + program + " >/dev/null").status == 0; }

// The viz command, wrapped in xvfb-run when there is no X display. Empty when rendering is impossible here.
std::string viz_command(bool needs_display) {
  const std::string viz = std::string("\"") + RINGLAB_VIZ_PATH + "\"";
  if (!needs_display) return viz;
  if (std::getenv("DISPLAY") && *std::getenv("DISPLAY")) return viz;
  if (on_path("xvfb-run")) return "xvfb-run -a -s \"-screen 0 1920x1080x24\" " + viz;
  return "";
}

fs::path scratch_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("ringlab_viz_test_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

struct Image {
  int width = 0, height = 0;
  std::vector<unsigned char> rgba;
  Rgb at(int x, int y) const {
    const std::size_t i = (static_cast<std::size_t>(y) * static_cast<std::size_t>(width) + static_cast<std::size_t>(x)) * 4;
    return {rgba[i], rgba[i + 1], rgba[i + 2]};
  }
};

Image load_png(const fs::path& path) {
  Image image;
  int channels = 0;
  unsigned char* data = stbi_load(path.c_str(), &image.width, &image.height, &channels, 4);
  if (!data) return image;
  image.rgba.assign(data, data + static_cast<std::size_t>(image.width) * static_cast<std::size_t>(image.height) * 4);
  stbi_image_free(data);
  return image;
}

struct Rect {
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
};

Rect region(const nlohmann::json& regions, const std::string& panel, const Image& image) {
  const auto& r = regions.at("panels").at(panel);
  Rect rect{static_cast<int>(r[0].get<double>()), static_cast<int>(r[1].get<double>()),
            static_cast<int>(r[0].get<double>() + r[2].get<double>()), static_cast<int>(r[1].get<double>() + r[3].get<double>())};
  rect.x0 = std::clamp(rect.x0, 0, image.width);
  rect.x1 = std::clamp(rect.x1, 0, image.width);
  rect.y0 = std::clamp(rect.y0, 0, image.height);
  rect.y1 = std::clamp(rect.y1, 0, image.height);
  return rect;
}

std::size_t distinct_colors(const Image& image, Rect r) {
  std::set<std::uint32_t> colors;
  for (int y = r.y0; y < r.y1; ++y)
    for (int x = r.x0; x < r.x1; ++x) {
      const Rgb c = image.at(x, y);
      colors.insert((static_cast<std::uint32_t>(c.r) << 16) | (static_cast<std::uint32_t>(c.g) << 8) | c.b);
    }
  return colors.size();
}

// Pixels within ±2 per channel of `color` (the interior of a filled shape; edges are anti-aliased).
int count_near(const Image& image, Rect r, Rgb color) {
  int count = 0;
  for (int y = r.y0; y < r.y1; ++y)
    for (int x = r.x0; x < r.x1; ++x) {
      const Rgb c = image.at(x, y);
      if (std::abs(c.r - color.r) <= 2 && std::abs(c.g - color.g) <= 2 && std::abs(c.b - color.b) <= 2) ++count;
    }
  return count;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> result;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) result.push_back(line);
  return result;
}

void check_screenshot(const fs::path& png, const fs::path& json, int width, int height) {
  INFO("screenshot " << png.string());
  REQUIRE(fs::exists(png));
  const Image image = load_png(png);
  REQUIRE(image.width == width);
  REQUIRE(image.height == height);
  std::ifstream in(json);
  REQUIRE(in);
  const nlohmann::json regions = nlohmann::json::parse(in);
  const int P = regions.at("devices").get<int>();
  INFO("scene " << regions.at("scene").get<std::string>() << ", P = " << P);

  // Not blank: a real picture has hundreds of colours, and no colour covers nearly everything.
  const Rect whole{0, 0, image.width, image.height};
  CHECK(distinct_colors(image, whole) >= 300);
  for (const char* panel : {"lesson", "config", "ring", "attention", "bottom"}) {
    INFO("panel " << panel);
    REQUIRE(regions.at("panels").contains(panel));
    CHECK(distinct_colors(image, region(regions, panel, image)) >= 20);
  }
  // The ring panel shows every device in its colour (nodes and the chunks they own).
  const Rect ring = region(regions, "ring", image);
  for (int p = 0; p < P; ++p) {
    INFO("device " << p << " of " << P);
    CHECK(count_near(image, ring, ringlab::viz::device_color(p, P)) >= 4);
  }
}

}  // namespace

TEST_CASE("the device palette keeps every device of a ring apart", "[viz]") {
  for (int P : {1, 2, 4, 8, 10, 11, 16, 64, 100, 256}) {
    int closest = 1 << 30;
    for (int a = 0; a < P; ++a)
      for (int b = a + 1; b < P; ++b) {
        const Rgb x = ringlab::viz::device_color(a, P), y = ringlab::viz::device_color(b, P);
        closest = std::min(closest, std::abs(x.r - y.r) + std::abs(x.g - y.g) + std::abs(x.b - y.b));
      }
    INFO("P = " << P);
    if (P > 1) CHECK(closest >= 12);  // more than the ±2 per channel the screenshot check allows
  }
}

TEST_CASE("--list-scenes prints one scene name per line", "[viz]") {
  const Result result = shell(viz_command(false) + " --list-scenes");
  REQUIRE(result.status == 0);
  const auto names = lines(result.output);
  CHECK(names.size() >= 8);
  for (const auto& name : names) CHECK(std::regex_match(name, std::regex("[a-z0-9-]+")));
  for (const char* required : {"causal-unbalanced", "zigzag-balances", "dilation-cuts-work", "memory-ring-vs-dense",
                               "overlap-hides-comm", "replicated-queries"})
    CHECK(std::find(names.begin(), names.end(), required) != names.end());
}

TEST_CASE("bad flags exit 2 with a message", "[viz]") {
  const std::string viz = viz_command(false);
  for (const char* flags : {"--bogus", "--scene no-such-scene --screenshot x.png", "--size 10x10 --screenshot x.png",
                            "--size wide --screenshot x.png", "--scene ring-basics --step 99 --screenshot x.png",
                            "--tab sideways --screenshot x.png", "--regions r.json", "--step -1"}) {
    const Result result = shell(viz + " " + flags);
    INFO("ringlab-viz " << flags << "\n" << result.output);
    CHECK(result.status == 2);
    CHECK(result.output.find("ringlab-viz: ") != std::string::npos);
  }
  CHECK(shell(viz + " --scene no-such-scene --screenshot x.png").output.find("zigzag-balances") != std::string::npos);
}

TEST_CASE("every scene renders headless with real content", "[viz][screenshot]") {
  const std::string viz = viz_command(true);
  if (viz.empty()) RINGLAB_SKIP("no X display and no xvfb-run: cannot render (scripts/setup.sh installs xvfb)");
  const fs::path dir = scratch_dir("all");
  const Result result = shell(viz + " --all-scenes \"" + dir.string() + "\"");
  INFO(result.output);
  REQUIRE(result.status == 0);
  const auto names = lines(shell(viz_command(false) + " --list-scenes").output);
  REQUIRE(!names.empty());
  for (const auto& name : names) check_screenshot(dir / (name + ".png"), dir / (name + ".json"), 1280, 800);
  fs::remove_all(dir);
}

TEST_CASE("the documented screenshot command writes the PNG at the requested size and step", "[viz][screenshot]") {
  const std::string viz = viz_command(true);
  if (viz.empty()) RINGLAB_SKIP("no X display and no xvfb-run: cannot render (scripts/setup.sh installs xvfb)");
  const fs::path dir = scratch_dir("one");
  const Result result = shell(viz + " --scene zigzag-balances --step 1 --screenshot \"" + (dir / "out.png").string() +
                              "\" --size 1024x640 --regions \"" + (dir / "out.json").string() + "\"");
  INFO(result.output);
  REQUIRE(result.status == 0);
  check_screenshot(dir / "out.png", dir / "out.json", 1024, 640);
  std::ifstream in(dir / "out.json");
  const nlohmann::json regions = nlohmann::json::parse(in);
  CHECK(regions.at("step").get<int>() == 1);
  CHECK(regions.at("devices").get<int>() == 4);
  fs::remove_all(dir);
}

TEST_CASE("edge-case configurations render every tab, hovered, without crashing", "[viz][screenshot]") {
  const std::string viz = viz_command(true);
  if (viz.empty()) RINGLAB_SKIP("no X display and no xvfb-run: cannot render (scripts/setup.sh installs xvfb)");
  // P = 1, P = 256, P > N, uneven chunks, one-device schemes, backward, replicated, windows, dilation (group,
  // ragged, selected rows), MQA, compute mode, N = 2^30, and an invalid config (shown as an error); then 48
  // clicks over a scene.
  const Result result = shell(viz + " --exercise --size 960x600");
  INFO(result.output);
  CHECK(result.status == 0);
  CHECK(result.output.find("exercised ") != std::string::npos);
  CHECK(result.output.find("invalid invalid: Hkv") != std::string::npos);
  CHECK(result.output.find("clicked 48 points") != std::string::npos);  // then a click fuzz of one scene
  CHECK(std::count(result.output.begin(), result.output.end(), '\n') >= 15);
}
