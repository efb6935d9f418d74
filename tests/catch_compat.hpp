// Lets the tests build against Catch2 2.13 (Debian, the development machine) and Catch2 3.x (the GPU
// machines). Include this instead of a Catch2 header.
#pragma once

#if __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
using Catch::Approx;  // Catch2 2 has it in the global namespace
#define RINGLAB_SKIP(message) SKIP(message)
#else
#include <catch2/catch.hpp>
#include <iostream>
// Catch2 2 has no SKIP: say why (on stderr, so it shows in CI logs) and leave the test case.
#define RINGLAB_SKIP(message)                                 \
  do {                                                        \
    std::cerr << "SKIPPED: " << (message) << std::endl;       \
    WARN(message);                                            \
    return;                                                   \
  } while (false)
#endif
