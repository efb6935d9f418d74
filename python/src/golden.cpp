// Golden cases (write, load) and the checker, returned as plain Python objects: the case as a dict of
// numpy arrays and numbers, the check report as a dict the Python layer wraps in CheckReport.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <optional>
#include <string>

#include "bindings.hpp"
#include "ringlab/errors.hpp"
#include "ringlab/golden.hpp"

namespace ringlab::python {

namespace {

nb::dict per_tensor(const PerTensor& values) {
  nb::dict dict;
  for (const auto& [name, value] : values) dict[name.c_str()] = value;
  return dict;
}

nb::dict per_precision(const std::map<Precision, PerTensor>& values) {
  nb::dict dict;
  for (const auto& [precision, tensors] : values) dict[to_string(precision).c_str()] = per_tensor(tensors);
  return dict;
}

// Moves the tensors out of `golden`.
nb::dict case_to_python(GoldenCase&& golden) {
  nb::dict result;
  result["config"] = nb::cast(golden.config, nb::rv_policy::copy);
  result["seed"] = golden.seed;
  result["algorithm"] = to_string(golden.algorithm);
  result["ringlab_version"] = golden.ringlab_version;
  nb::dict inputs, outputs;
  inputs["q"] = to_numpy(std::move(golden.inputs.q));
  inputs["k"] = to_numpy(std::move(golden.inputs.k));
  inputs["v"] = to_numpy(std::move(golden.inputs.v));
  inputs["do"] = to_numpy(std::move(golden.inputs.dout));
  for (const char* name : kOutputNames) outputs[name] = to_numpy(std::move(golden.outputs[name]));
  result["inputs"] = inputs;
  result["outputs"] = outputs;
  result["max_scaled_difference_from_dense"] = per_tensor(golden.max_scaled_difference_from_dense);
  result["tolerances"] = per_precision(golden.tolerances);
  result["baseline_errors"] = per_precision(golden.baseline_errors);
  return result;
}

nb::dict golden(const std::string& out_dir, const AttentionConfig& config, const std::optional<std::string>& algorithm,
                std::uint64_t seed, bool force) {
  const Algorithm chosen = algorithm ? parse_algorithm(*algorithm, "--algorithm") : default_algorithm(config);
  GoldenCase written;
  {
    nb::gil_scoped_release release;
    written = write_case(config, chosen, out_dir, force, seed);
  }
  return case_to_python(std::move(written));
}

nb::dict load(const std::string& dir) {
  GoldenCase loaded;
  {
    nb::gil_scoped_release release;
    loaded = load_case(dir);
  }
  return case_to_python(std::move(loaded));
}

nb::dict check(const std::string& case_dir, const std::string& outputs_dir, const std::string& dtype) {
  const Precision precision = parse_precision(dtype, "--dtype");
  CheckReport report;
  {
    nb::gil_scoped_release release;
    const GoldenCase golden = load_case(case_dir);
    report = check_outputs(golden, outputs_dir, precision);
  }
  nb::list tensors;
  for (const TensorCheck& check : report.tensors) {
    nb::dict entry;
    entry["name"] = check.name;
    entry["file"] = check.file.string();
    entry["file_dtype"] = npy::to_string(check.file_dtype);
    entry["max_abs_error"] = check.error.max_abs_error;
    entry["scaled_error"] = check.error.scaled_error;
    entry["tolerance"] = check.tolerance;
    entry["passed"] = check.passed;
    nb::list index;
    for (std::int64_t i : check.error.worst_index) index.append(i);
    entry["worst_index"] = nb::tuple(index);
    entry["worst_output"] = check.error.worst_output;
    entry["worst_reference"] = check.error.worst_reference;
    entry["worst_relative_error"] = check.error.worst_relative_error;
    tensors.append(entry);
  }
  nb::list missing;
  for (const auto& name : report.missing) missing.append(name);
  nb::dict result;
  result["precision"] = to_string(report.precision);
  result["tensors"] = tensors;
  result["missing"] = missing;
  result["passed"] = report.passed();
  return result;
}

}  // namespace

void bind_golden(nb::module_& m) {
  m.def("golden", &golden, nb::arg("out_dir"), nb::arg("config"), nb::arg("algorithm").none(), nb::arg("seed"),
        nb::arg("force"));
  m.def("load_case", &load, nb::arg("dir"));
  m.def("check", &check, nb::arg("case_dir"), nb::arg("outputs_dir"), nb::arg("dtype"));
}

}  // namespace ringlab::python
