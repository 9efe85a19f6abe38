// Errors the orchestrator reports to a user.
//
// InputError is for bad input (a file, a field, a value): its message names all three so the user can find
// and fix the problem. The CLI prints what() and exits with kExitInputError. Thread-safe: plain values.
#pragma once

#include <stdexcept>
#include <string>

namespace orch {

// Exit codes of the `orchestrator` command.
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;     // an unexpected failure (I/O, library error)
constexpr int kExitInputError = 2;  // bad input: file, field or value rejected

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class InputError : public Error {
 public:
  // "FILE: FIELD = VALUE: PROBLEM"; empty parts are left out.
  InputError(const std::string& file, const std::string& field, const std::string& value,
             const std::string& problem);
  explicit InputError(const std::string& message) : Error(message) {}
};

// Formats a double the way errors and summaries show it (shortest round-trip form).
std::string format_number(double v);

}  // namespace orch
