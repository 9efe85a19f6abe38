// Errors the orchestrator reports to a user.
//
// InputError is for bad input (a file, a field, a value): its message names all three so the user can find
// and fix the problem. The CLI prints what() and exits with kExitInputError. Thread-safe: plain values.
#pragma once

#include <stdexcept>
#include <string>

#include "core/exit_codes.h"

namespace orch {

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

// A lock that was not obtained within its bounded wait (the workspace lock, a busy run store). The message
// names the lock and, where known, who holds it. The CLI exits with kExitBusy.
class BusyError : public Error {
 public:
  using Error::Error;
};

// Formats a double the way errors and summaries show it (shortest round-trip form).
std::string format_number(double v);

}  // namespace orch

namespace orch {

// An error message as a stored failure reason: the first one or two lines (a LibTorch backtrace, "Exception
// raised from ...", and everything after it dropped), at most 400 characters. The full text belongs in a log.
std::string brief_reason(const std::string& message, size_t max_chars = 400);

}  // namespace orch
