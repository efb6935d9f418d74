// ringlab._ringlab: nanobind bindings of ringlab::reference and ringlab::simulator. The public API is the
// Python package around it (python/ringlab/__init__.py, docs/python.md).
//
// Errors: ringlab::ConfigError and InputError become ringlab.ConfigError / ringlab.InputError (both
// ValueError), sim::FaultDetected ringlab.FaultDetected (with .device and .step), sim::OutOfMemory
// ringlab.OutOfMemory, any other ringlab::Error ringlab.Error; the message is the C++ what() unchanged.
// The Python classes are defined in the package and handed to set_exception_types at import.
#include "bindings.hpp"
#include "ringlab/errors.hpp"
#include "ringlab/sim/ledger.hpp"
#include "ringlab/sim/simulation.hpp"

namespace ringlab::python {

namespace {

// Python exception classes (strong references, kept for the life of the process).
struct ExceptionTypes {
  PyObject* error = nullptr;
  PyObject* config_error = nullptr;
  PyObject* input_error = nullptr;
  PyObject* fault_detected = nullptr;
  PyObject* out_of_memory = nullptr;
};
ExceptionTypes exception_types;

void set_exception_types(nb::handle error, nb::handle config_error, nb::handle input_error,
                         nb::handle fault_detected, nb::handle out_of_memory) {
  auto keep = [](PyObject*& slot, nb::handle type) {
    if (!PyExceptionClass_Check(type.ptr())) throw nb::type_error("set_exception_types: expected exception classes");
    Py_XDECREF(slot);
    slot = type.inc_ref().ptr();
  };
  keep(exception_types.error, error);
  keep(exception_types.config_error, config_error);
  keep(exception_types.input_error, input_error);
  keep(exception_types.fault_detected, fault_detected);
  keep(exception_types.out_of_memory, out_of_memory);
}

// Raises type(*args) with args built by Py_BuildValue(format, ...), or `fallback` with the message.
template <class... Args>
void raise(PyObject* type, PyObject* fallback, const char* message, const char* format, Args... args) {
  if (type == nullptr) {
    PyErr_SetString(fallback, message);
    return;
  }
  PyObject* value = Py_BuildValue(format, args...);
  if (value == nullptr) return;  // Py_BuildValue set an error
  PyErr_SetObject(type, value);
  Py_DECREF(value);
}

void translate(const std::exception_ptr& exception, void*) {
  try {
    std::rethrow_exception(exception);
  } catch (const sim::FaultDetected& e) {
    raise(exception_types.fault_detected, PyExc_RuntimeError, e.what(), "(sii)", e.what(), e.device(), e.step());
  } catch (const sim::OutOfMemory& e) {
    raise(exception_types.out_of_memory, PyExc_MemoryError, e.what(), "(s)", e.what());
  } catch (const ConfigError& e) {
    raise(exception_types.config_error, PyExc_ValueError, e.what(), "(ss)", e.what(), e.parameter().c_str());
  } catch (const InputError& e) {
    raise(exception_types.input_error, PyExc_ValueError, e.what(), "(s)", e.what());
  } catch (const Error& e) {
    raise(exception_types.error, PyExc_RuntimeError, e.what(), "(s)", e.what());
  }
}

}  // namespace

}  // namespace ringlab::python

NB_MODULE(_ringlab, m) {
  namespace rp = ringlab::python;
  m.doc() = "ringlab's exact attention reference, golden cases, checker and simulator (use the ringlab package)";
  nanobind::register_exception_translator(&rp::translate);
  m.def("set_exception_types", &rp::set_exception_types);
  rp::bind_config(m);
  rp::bind_attention(m);
  rp::bind_golden(m);
  rp::bind_schedule(m);
  rp::bind_simulate(m);
}
