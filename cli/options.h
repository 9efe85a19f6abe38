// Shared Boost.Program_options plumbing for the subcommands: parsing errors become InputErrors and --help
// prints the command's usage.
#pragma once

#include <boost/program_options.hpp>
#include <iostream>
#include <string>

#include "cli/commands.h"
#include "core/choices.h"
#include "core/errors.h"

namespace orch::cli {

namespace po = boost::program_options;

// Parses `args`; returns false (after printing usage) when --help was given.
inline bool parse_options(const Args& args, po::options_description& desc, po::variables_map& vm,
                          const std::string& usage, const po::positional_options_description* positional = nullptr) {
  desc.add_options()("help,h", "show this help");
  try {
    auto parser = po::command_line_parser(args).options(desc);
    if (positional) parser.positional(*positional);
    po::store(parser.run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: " << usage << "\n\n" << desc << "\n";
      return false;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw InputError("", "", "", std::string(e.what()) + " (usage: " + usage + "; see --help)");
  }
  return true;
}

// A flag naming a fixed choice (core/choices.h); InputError names the flag and the values it takes.
template <class E>
E choice_flag(const std::string& flag, const std::string& text) {
  auto e = choice_from<E>(text);
  if (!e) throw InputError(flag, "", text, choice_expectation<E>());
  return *e;
}

}  // namespace orch::cli
