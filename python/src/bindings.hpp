// Shared pieces of the nanobind module `ringlab._ringlab`: array conversion (numpy <-> ringlab::Tensor),
// JSON -> Python objects, and the registration function of each binding file. The Python package
// (python/ringlab/__init__.py) is the public API; this module is its thin, checked C++ layer.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "ringlab/tensor.hpp"

namespace ringlab::python {

namespace nb = nanobind;

// Inputs: C-contiguous CPU arrays of exactly T (the Python layer checks dtype and contiguity first and says
// what is wrong; these constraints make the C++ layer safe on its own: a mismatch is a TypeError, not a crash).
template <class T>
using InArray = nb::ndarray<const T, nb::c_contig, nb::device::cpu>;
template <class T>
using OutArray = nb::ndarray<nb::numpy, T>;

// Copies an input array into a Tensor (the reference owns its data).
template <class T>
Tensor<T> to_tensor(const InArray<T>& array) {
  Tensor<T> tensor;
  tensor.shape.resize(array.ndim());
  for (std::size_t i = 0; i < array.ndim(); ++i) tensor.shape[i] = static_cast<std::int64_t>(array.shape(i));
  tensor.data.assign(array.data(), array.data() + array.size());
  return tensor;
}

// Hands a Tensor's storage to numpy without copying; a capsule frees it with the array.
template <class T>
OutArray<T> to_numpy(Tensor<T>&& tensor) {
  auto* storage = new std::vector<T>(std::move(tensor.data));
  nb::capsule owner(storage, [](void* pointer) noexcept { delete static_cast<std::vector<T>*>(pointer); });
  std::vector<std::size_t> shape(tensor.shape.begin(), tensor.shape.end());
  return OutArray<T>(storage->data(), shape.size(), shape.data(), owner);
}

template <class T>
OutArray<T> to_numpy(std::vector<T>&& values, std::vector<std::size_t> shape) {
  auto* storage = new std::vector<T>(std::move(values));
  nb::capsule owner(storage, [](void* pointer) noexcept { delete static_cast<std::vector<T>*>(pointer); });
  return OutArray<T>(storage->data(), shape.size(), shape.data(), owner);
}

// nlohmann JSON (ordered or not) -> dict / list / int / float / str / bool / None.
template <class Json>
nb::object to_python(const Json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::object: {
      nb::dict dict;
      for (auto item = value.begin(); item != value.end(); ++item) dict[item.key().c_str()] = to_python(item.value());
      return dict;
    }
    case nlohmann::json::value_t::array: {
      nb::list list;
      for (const auto& element : value) list.append(to_python(element));
      return list;
    }
    case nlohmann::json::value_t::string: return nb::str(value.template get_ref<const std::string&>().c_str());
    case nlohmann::json::value_t::boolean: return nb::bool_(value.template get<bool>());
    case nlohmann::json::value_t::number_integer: return nb::int_(value.template get<std::int64_t>());
    case nlohmann::json::value_t::number_unsigned: return nb::int_(value.template get<std::uint64_t>());
    case nlohmann::json::value_t::number_float: return nb::float_(value.template get<double>());
    default: return nb::none();
  }
}

void bind_config(nb::module_& m);
void bind_attention(nb::module_& m);
void bind_golden(nb::module_& m);
void bind_schedule(nb::module_& m);
void bind_simulate(nb::module_& m);

}  // namespace ringlab::python
