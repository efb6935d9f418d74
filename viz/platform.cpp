#include "platform.hpp"

#define GLFW_INCLUDE_NONE
#include <GL/gl.h>
#include <GL/glext.h>
#include <GLFW/glfw3.h>
#include <imgui_impl_glfw.h>
#include <imgui_impl_opengl3.h>
#include <stb_image_write.h>

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "ringlab/errors.hpp"

namespace ringlab::viz {
namespace {

// Framebuffer objects are OpenGL 3.0: load the few entry points through GLFW.
struct FramebufferApi {
  PFNGLGENFRAMEBUFFERSPROC gen_framebuffers = nullptr;
  PFNGLBINDFRAMEBUFFERPROC bind_framebuffer = nullptr;
  PFNGLDELETEFRAMEBUFFERSPROC delete_framebuffers = nullptr;
  PFNGLGENRENDERBUFFERSPROC gen_renderbuffers = nullptr;
  PFNGLBINDRENDERBUFFERPROC bind_renderbuffer = nullptr;
  PFNGLDELETERENDERBUFFERSPROC delete_renderbuffers = nullptr;
  PFNGLRENDERBUFFERSTORAGEPROC renderbuffer_storage = nullptr;
  PFNGLFRAMEBUFFERRENDERBUFFERPROC framebuffer_renderbuffer = nullptr;
  PFNGLCHECKFRAMEBUFFERSTATUSPROC check_framebuffer_status = nullptr;

  bool load() {
    gen_framebuffers = reinterpret_cast<PFNGLGENFRAMEBUFFERSPROC>(glfwGetProcAddress("glGenFramebuffers"));
    bind_framebuffer = reinterpret_cast<PFNGLBINDFRAMEBUFFERPROC>(glfwGetProcAddress("glBindFramebuffer"));
    delete_framebuffers = reinterpret_cast<PFNGLDELETEFRAMEBUFFERSPROC>(glfwGetProcAddress("glDeleteFramebuffers"));
    gen_renderbuffers = reinterpret_cast<PFNGLGENRENDERBUFFERSPROC>(glfwGetProcAddress("glGenRenderbuffers"));
    bind_renderbuffer = reinterpret_cast<PFNGLBINDRENDERBUFFERPROC>(glfwGetProcAddress("glBindRenderbuffer"));
    delete_renderbuffers = reinterpret_cast<PFNGLDELETERENDERBUFFERSPROC>(glfwGetProcAddress("glDeleteRenderbuffers"));
    renderbuffer_storage = reinterpret_cast<PFNGLRENDERBUFFERSTORAGEPROC>(glfwGetProcAddress("glRenderbufferStorage"));
    framebuffer_renderbuffer =
        reinterpret_cast<PFNGLFRAMEBUFFERRENDERBUFFERPROC>(glfwGetProcAddress("glFramebufferRenderbuffer"));
    check_framebuffer_status =
        reinterpret_cast<PFNGLCHECKFRAMEBUFFERSTATUSPROC>(glfwGetProcAddress("glCheckFramebufferStatus"));
    return gen_framebuffers && bind_framebuffer && delete_framebuffers && gen_renderbuffers && bind_renderbuffer &&
           delete_renderbuffers && renderbuffer_storage && framebuffer_renderbuffer && check_framebuffer_status;
  }
};
FramebufferApi gl_fbo;

std::string glfw_error_text() {
  const char* description = nullptr;
  glfwGetError(&description);
  return description ? description : "unknown GLFW error";
}

}  // namespace

void Platform::init(const PlatformOptions& options) {
  options_ = options;
  if (!glfwInit())
    throw Error("cannot open a window: " + glfw_error_text() +
                (options.headless ? " (headless mode still needs an X display: run under `xvfb-run -a -s \"-screen 0 "
                                    "1920x1080x24\" ringlab-viz ...`)"
                                  : ""));
  glfwWindowHint(GLFW_CONTEXT_VERSION_MAJOR, 3);
  glfwWindowHint(GLFW_CONTEXT_VERSION_MINOR, 3);
  glfwWindowHint(GLFW_OPENGL_PROFILE, GLFW_OPENGL_CORE_PROFILE);
  glfwWindowHint(GLFW_OPENGL_FORWARD_COMPAT, GLFW_TRUE);
  glfwWindowHint(GLFW_SCALE_TO_MONITOR, GLFW_TRUE);
  if (options.headless) glfwWindowHint(GLFW_VISIBLE, GLFW_FALSE);
  const int w = options.headless ? 64 : options.width, h = options.headless ? 64 : options.height;
  window_ = glfwCreateWindow(w, h, "ringlab-viz — ring attention and dilated attention", nullptr, nullptr);
  if (!window_) throw Error("cannot create an OpenGL 3.3 window: " + glfw_error_text());
  glfwMakeContextCurrent(window_);
  glfwSwapInterval(options.headless ? 0 : 1);

  if (options.headless) {
    if (!gl_fbo.load()) throw Error("the OpenGL driver lacks framebuffer objects (OpenGL 3.0)");
    gl_fbo.gen_framebuffers(1, &framebuffer_);
    gl_fbo.gen_renderbuffers(1, &colorbuffer_);
    gl_fbo.bind_renderbuffer(GL_RENDERBUFFER, colorbuffer_);
    gl_fbo.renderbuffer_storage(GL_RENDERBUFFER, GL_RGBA8, options.width, options.height);
    gl_fbo.bind_framebuffer(GL_FRAMEBUFFER, framebuffer_);
    gl_fbo.framebuffer_renderbuffer(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_RENDERBUFFER, colorbuffer_);
    if (gl_fbo.check_framebuffer_status(GL_FRAMEBUFFER) != GL_FRAMEBUFFER_COMPLETE)
      throw Error("cannot create an offscreen framebuffer of " + std::to_string(options.width) + "x" +
                  std::to_string(options.height));
    scale_ = options.scale > 0 ? options.scale : 1.0f;
  } else {
    float x = 1, y = 1;
    glfwGetWindowContentScale(window_, &x, &y);
    scale_ = options.scale > 0 ? options.scale : std::max(1.0f, x);
    glfwSetWindowUserPointer(window_, this);
    glfwSetWindowContentScaleCallback(window_, [](GLFWwindow* window, float sx, float) {
      auto* self = static_cast<Platform*>(glfwGetWindowUserPointer(window));
      if (self->options_.scale <= 0) self->scale_ = std::max(1.0f, sx);
    });
  }

  IMGUI_CHECKVERSION();
  ImGui::CreateContext();
  ImGuiIO& io = ImGui::GetIO();
  io.IniFilename = nullptr;  // the layout is fixed; write nothing into the working directory
  io.ConfigWindowsMoveFromTitleBarOnly = true;
  ImGui_ImplGlfw_InitForOpenGL(window_, !options.headless);
  ImGui_ImplOpenGL3_Init("#version 330 core");
  imgui_ready_ = true;
  rebuild_fonts();
}

Platform::~Platform() {
  if (imgui_ready_) {
    ImGui_ImplOpenGL3_Shutdown();
    ImGui_ImplGlfw_Shutdown();
    ImGui::DestroyContext();
  }
  if (framebuffer_) gl_fbo.delete_framebuffers(1, &framebuffer_);
  if (colorbuffer_) gl_fbo.delete_renderbuffers(1, &colorbuffer_);
  if (window_) glfwDestroyWindow(window_);
  glfwTerminate();
}

bool Platform::should_close() const { return glfwWindowShouldClose(window_); }

void Platform::set_user_scale(float scale) { user_scale_ = std::clamp(scale, 0.5f, 3.0f); }

void Platform::rebuild_fonts() {
  applied_scale_ = scale();
  fonts_ = load_fonts(applied_scale_);
  apply_style(applied_scale_);
  ImGui_ImplOpenGL3_DestroyFontsTexture();
  ImGui_ImplOpenGL3_CreateFontsTexture();
}

void Platform::begin_frame(bool animating) {
  if (!options_.headless) {
    if (animating)
      glfwPollEvents();
    else
      glfwWaitEventsTimeout(0.25);
  }
  if (std::fabs(applied_scale_ - scale()) > 1e-3f) rebuild_fonts();
  ImGui_ImplOpenGL3_NewFrame();
  ImGui_ImplGlfw_NewFrame();
  if (options_.headless) {  // the offscreen image, not the hidden window, is the display
    ImGuiIO& io = ImGui::GetIO();
    io.DisplaySize = {static_cast<float>(options_.width), static_cast<float>(options_.height)};
    io.DisplayFramebufferScale = {1, 1};
    io.MousePos = headless_mouse_.value_or(ImVec2(-FLT_MAX, -FLT_MAX));
    io.MouseDown[0] = headless_mouse_ && headless_pressed_;
  }
  ImGui::NewFrame();
}

void Platform::end_frame() {
  ImGui::Render();
  int width = options_.width, height = options_.height;
  if (!options_.headless) glfwGetFramebufferSize(window_, &width, &height);
  glViewport(0, 0, width, height);
  const ImVec4 clear = ImGui::GetStyle().Colors[ImGuiCol_WindowBg];
  glClearColor(clear.x, clear.y, clear.z, 1.0f);
  glClear(GL_COLOR_BUFFER_BIT);  // the panels' background (they draw none themselves)
  ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
  if (options_.headless)
    glFinish();
  else
    glfwSwapBuffers(window_);
}

std::vector<std::uint8_t> Platform::read_pixels() const {
  const int w = options_.width, h = options_.height;
  std::vector<std::uint8_t> pixels(static_cast<std::size_t>(w) * static_cast<std::size_t>(h) * 4);
  glPixelStorei(GL_PACK_ALIGNMENT, 1);
  glReadPixels(0, 0, w, h, GL_RGBA, GL_UNSIGNED_BYTE, pixels.data());
  // OpenGL's first row is the bottom one.
  std::vector<std::uint8_t> flipped(pixels.size());
  const std::size_t row = static_cast<std::size_t>(w) * 4;
  for (int y = 0; y < h; ++y)
    std::copy_n(pixels.begin() + static_cast<std::ptrdiff_t>(row * static_cast<std::size_t>(h - 1 - y)), row,
                flipped.begin() + static_cast<std::ptrdiff_t>(row * static_cast<std::size_t>(y)));
  for (std::size_t i = 3; i < flipped.size(); i += 4) flipped[i] = 255;  // opaque
  return flipped;
}

void Platform::write_png(const std::filesystem::path& path) const {
  const auto rgba = read_pixels();
  std::vector<std::uint8_t> rgb;  // opaque: three channels make a smaller file
  rgb.reserve(rgba.size() / 4 * 3);
  for (std::size_t i = 0; i < rgba.size(); i += 4) rgb.insert(rgb.end(), {rgba[i], rgba[i + 1], rgba[i + 2]});
  stbi_write_png_compression_level = 9;
  if (!stbi_write_png(path.c_str(), options_.width, options_.height, 3, rgb.data(), options_.width * 3))
    throw Error("cannot write " + path.string());
}

}  // namespace ringlab::viz
