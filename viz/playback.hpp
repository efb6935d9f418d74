// The playhead shared by the Ring, Attention and Timeline panels: a position in ring steps. The integer part
// is the step (forward steps 0..P−1, then backward ones); within a step the devices first compute (the chunk
// sits at its holder), then the chunks travel one hop to the next device.
#pragma once

namespace ringlab::viz {

class Model;

struct Playback {
  static constexpr float kComputePhase = 0.6f;  // share of a step drawn as computing; the rest is the hop

  double position = 0;  // in steps
  bool playing = false;
  bool loop = true;
  float speed = 0.5f;   // steps per second
  int total = 1;        // steps in the run (snapshots)

  int step() const;       // the current step, 0..total−1
  float phase() const;    // 0..1 within the step
  bool travelling() const { return phase() >= kComputePhase; }
  float travel() const;   // 0..1 along the hop while travelling
  void set_total(int steps);
  void jump_to(int step);  // to the middle of that step's compute
  void advance(double seconds);

  // The transport bar: start, step back, play/pause, step forward, end, and the scrub slider.
  void draw_controls(const Model& model);
  // Speed and loop (drawn by the Ring panel next to its legend).
  void draw_speed();
};

}  // namespace ringlab::viz
