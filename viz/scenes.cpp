#include "scenes.hpp"

namespace ringlab::viz {
namespace {

void shape(Settings& s, std::int64_t n, std::int64_t heads, std::int64_t kv_heads, std::int64_t head_dim, int ring) {
  auto& c = s.options.config;
  c.seq = c.kv_seq = n;
  c.heads = heads;
  c.kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.ring = ring;
}

std::vector<Scene> make_scenes() {
  std::vector<Scene> list;
  list.push_back({"ring-basics", "Ring attention in one picture",
                  "Each of P devices keeps its own queries. The K/V chunks travel around the ring, one hop per step, "
                  "while every device computes on the chunk it holds: after P steps every query has met every key.",
                  "Ring: the coloured chunks move (press Play). Attention matrix: each step fills one block per "
                  "device. Timeline: the sends (grey) hide under the compute.",
                  [](Settings& s) { shape(s, 1 << 15, 16, 16, 128, 4); }, 1, Tab::timeline, sim::MapOrder::positions});
  list.push_back({"ring-is-exact", "Ring attention is exact",
                  "The partial results of the steps merge with the log-sum-exp rule, so the ring computes exactly "
                  "dense attention, causal mask and all. Here the simulator runs real fp64 tensors through the ring "
                  "and compares the gathered output and gradients with one device.",
                  "Results: the error against dense attention is rounding only. Timeline: at this tiny size each hop "
                  "(microseconds) dwarfs the compute (nanoseconds): communication is all you see.",
                  [](Settings& s) {
                    shape(s, 512, 4, 2, 32, 4);
                    s.options.config.causal = true;
                    s.options.config.layout = Layout::zigzag;
                    s.options.pass = sim::Pass::both;
                  },
                  2, Tab::timeline, sim::MapOrder::positions});
  list.push_back({"causal-unbalanced", "Why causal ring attention is unbalanced",
                  "With the causal mask and contiguous chunks, device 0 owns the earliest queries: they see only its "
                  "own keys, so its later steps are skipped. The last device computes a full block at every step, "
                  "and the slowest device sets the pace.",
                  "Timeline: device 0 idles while device 3 works. Attention matrix: hatched blocks are skipped steps.",
                  [](Settings& s) {
                    shape(s, 1 << 16, 16, 4, 128, 4);
                    s.options.config.causal = true;
                  },
                  2, Tab::timeline, sim::MapOrder::positions});
  list.push_back({"zigzag-balances", "Zigzag fixes it",
                  "Zigzag gives device p chunk p and chunk 2P−1−p: one early, one late. Under the causal mask every "
                  "device now has the same work at every step, so nobody waits and the ring finishes sooner.",
                  "Timeline: equal bars on every device, a shorter makespan than the contiguous scene. Attention "
                  "matrix: each device's colour appears in two bands.",
                  [](Settings& s) {
                    shape(s, 1 << 16, 16, 4, 128, 4);
                    s.options.config.causal = true;
                    s.options.config.layout = Layout::zigzag;
                  },
                  2, Tab::timeline, sim::MapOrder::positions});
  list.push_back({"striped-layout", "Striped: tokens dealt round-robin",
                  "Striped gives device p every P-th token. Causal work is nearly balanced (device 0 does slightly "
                  "less), and every block of the matrix is a near-triangle.",
                  "Attention matrix (device order): every block is half full. Timeline: nearly equal bars.",
                  [](Settings& s) {
                    shape(s, 1 << 16, 16, 4, 128, 8);
                    s.options.config.causal = true;
                    s.options.config.layout = Layout::striped;
                  },
                  3, Tab::timeline, sim::MapOrder::devices});
  list.push_back({"dilation-cuts-work", "Dilation cuts the work",
                  "LongNet's dilated attention: a head attends only inside segments of w tokens, and there only to "
                  "every r-th token. Far-away blocks hold no pairs at all, so whole ring steps are skipped and the "
                  "chunks still travel.",
                  "Dilation: the selected positions per pattern and head, and the mask of one head. Attention "
                  "matrix: sparse blocks near the diagonal, hatched skipped steps.",
                  [](Settings& s) {
                    shape(s, 512, 8, 8, 64, 4);
                    s.options.config.causal = true;
                    s.options.config.dilation = {{64, 1}, {128, 2}, {256, 4}};
                  },
                  1, Tab::dilation, sim::MapOrder::positions});
  list.push_back({"dilation-stays-local", "Short segments stay home",
                  "When every LongNet segment fits inside one device's chunk, no query needs another device's keys: "
                  "every step after the first is skipped everywhere, and the ring sends nothing at all (the "
                  "schedule is local_only). On 4 H200s this made the PyTorch packages' dilated preset cost what "
                  "local attention costs (86-100 % efficiency) where rotating whole chunks gave 41-70 %.",
                  "Ring: the chunks stay at home; only step 1 computes. Timeline: no sends. Attention matrix: the "
                  "blocks on the diagonal only.",
                  [](Settings& s) {
                    shape(s, 1 << 16, 16, 16, 128, 4);  // the benchmark's case: 16K tokens per device
                    s.options.config.causal = true;
                    s.options.config.layout = Layout::contiguous;
                    s.options.config.dilation = {{2048, 1}, {4096, 2}, {8192, 4}};
                  },
                  1, Tab::timeline, sim::MapOrder::positions});
  list.push_back({"memory-ring-vs-dense", "Memory: ring vs dense",
                  "Per-device memory of ring attention is linear in the tokens per device, N/P: 64 devices hold "
                  "a million tokens in about a gigabyte each. Dense attention with materialised scores needs N² "
                  "bytes per head on one device: far beyond any GPU.",
                  "Memory: the stacked bars per device, the two one-device references, and the scaling plot "
                  "(log axes) against the GPU's capacity line.",
                  [](Settings& s) {
                    shape(s, 1 << 20, 32, 8, 128, 64);
                    s.options.config.causal = true;
                    s.options.config.layout = Layout::zigzag;
                  },
                  0, Tab::memory, sim::MapOrder::positions});
  list.push_back({"overlap-hides-comm", "Communication hides behind compute",
                  "With overlap on, each device sends its chunk onward while it computes on it. When a step's "
                  "compute takes longer than the hop, the transfer costs nothing: no device waits, even on the "
                  "slower link between the two nodes.",
                  "Timeline: grey send bars run under the coloured compute bars, and there is no red. Ring: the "
                  "dashed links cross nodes.",
                  [](Settings& s) {
                    shape(s, 1 << 16, 16, 8, 128, 8);
                    s.options.config.causal = true;
                    s.options.config.layout = Layout::zigzag;
                    s.options.devices_per_node = 4;
                  },
                  3, Tab::timeline, sim::MapOrder::positions});
  list.push_back({"overlap-off-exposes-comm", "Without overlap, communication is exposed",
                  "The same ring with overlap off: a device sends its chunk only after computing on it, and the next "
                  "device waits for the whole hop before it can start. Every step now pays compute plus transfer.",
                  "Timeline: the red stretches between compute bars are waits on communication; the makespan is "
                  "much longer than in the overlap scene.",
                  [](Settings& s) {
                    shape(s, 1 << 16, 16, 8, 128, 8);
                    s.options.config.causal = true;
                    s.options.config.layout = Layout::zigzag;
                    s.options.devices_per_node = 4;
                    s.options.overlap = false;
                  },
                  3, Tab::timeline, sim::MapOrder::positions});
  list.push_back({"replicated-queries", "Replicated queries cost P× compute",
                  "A variant in circulation keeps all queries on every device and rotates only K/V. It is exact, "
                  "but every device computes the whole attention: P× the work, and queries, outputs and "
                  "accumulators of all N tokens on every device.",
                  "Attention matrix: at every step every column is computed again; coverage counts up to P. "
                  "Timeline: each device is busy as long as one device running everything.",
                  [](Settings& s) {
                    shape(s, 1 << 16, 16, 4, 128, 4);
                    s.options.config.causal = true;
                    set_scheme_choice(s, SchemeChoice::ring_replicated);
                  },
                  1, Tab::timeline, sim::MapOrder::positions});
  list.push_back({"inter-node-link", "Crossing nodes: the slowest link sets the pace",
                  "Sixteen devices on two nodes of eight: fourteen hops use fast NVLink, two use the slower "
                  "inter-node network. With short steps, the two slow hops cannot hide behind compute and the "
                  "whole ring waits for them.",
                  "Ring: the two inter-node links are drawn dashed. Timeline: red waits behind the slow hops.",
                  [](Settings& s) {
                    shape(s, 1 << 16, 8, 8, 64, 16);
                    s.options.devices_per_node = 8;
                  },
                  2, Tab::timeline, sim::MapOrder::positions});
  return list;
}

}  // namespace

const std::vector<Scene>& scenes() {
  static const std::vector<Scene> list = make_scenes();
  return list;
}

const Scene* find_scene(const std::string& name) {
  for (const Scene& scene : scenes())
    if (scene.name == name) return &scene;
  return nullptr;
}

Settings scene_settings(const Scene& scene) {
  Settings settings = default_settings();
  scene.configure(settings);
  return settings;
}

}  // namespace ringlab::viz
