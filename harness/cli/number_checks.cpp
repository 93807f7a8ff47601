#include "cli/number_checks.hpp"

#include <cmath>

namespace procpool::harness {
namespace {

// Empty when `text` is a finite number that `holds`; else what it must be.
template <class Holds>
CLI::Validator number_check(std::string name, std::string must_be, Holds holds) {
  return CLI::Validator(
      [must_be, holds](std::string& text) -> std::string {
        double value = 0;
        try {
          std::size_t used = 0;
          value = std::stod(text, &used);
          if (used != text.size()) return "must be " + must_be + ", not " + text;
        } catch (const std::exception&) {
          return "must be " + must_be + ", not " + text;
        }
        return std::isfinite(value) && holds(value) ? std::string() : "must be " + must_be + ", not " + text;
      },
      std::move(name));
}

}  // namespace

CLI::Validator positive_number() {
  return number_check("POSITIVE", "a number greater than 0", [](double v) { return v > 0; });
}

CLI::Validator non_negative_number() {
  return number_check("NONNEGATIVE", "a number of 0 or more", [](double v) { return v >= 0; });
}

}  // namespace procpool::harness
