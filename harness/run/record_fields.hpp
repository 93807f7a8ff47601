// One field table per results.json record: each key is named once, and the table serves both
// directions, so a record's writer and its reader cannot drift apart.
//
//   inline constexpr auto fields_of(std::type_identity<latency_record>) {
//     return std::tuple{field{"p50", &latency_record::p50}, field{"mean", &latency_record::mean}};
//   }
//   write_fields(j, record);  // {"p50": ..., "mean": ...}; an unset optional is left out
//   read_fields(j, record);   // tolerant: see read_value
//
// Reading is tolerant because results.json documents also come from older versions and from
// people: a key that is missing, null or of the wrong type leaves the member at its default
// instead of failing the whole document. Numbers convert the way a reader of a report would
// expect: a fraction in a count is cut to its whole part, a negative count reads as 0.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

namespace procpool::harness {

// When a field is written. An unset optional is left out, unless the schema says null.
enum class written {
  always,
  unless_default,   // only when it differs from its default: a flag that is usually off
  null_when_unset,  // an optional whose absence the schema writes as null
};

// One key of a record and the member it holds.
template <typename Record, typename T>
struct field {
  std::string_view key;
  T Record::*member;
  written when = written::always;
};
template <typename Record, typename T>
field(std::string_view, T Record::*, written = written::always) -> field<Record, T>;

namespace record_detail {

template <typename T>
struct is_optional : std::false_type {};
template <typename T>
struct is_optional<std::optional<T>> : std::true_type {};

template <typename T>
struct is_vector : std::false_type {};
template <typename T>
struct is_vector<std::vector<T>> : std::true_type {};

template <typename T>
struct is_string_map : std::false_type {};
template <typename T, typename Less>
struct is_string_map<std::map<std::string, T, Less>> : std::true_type {};

// A whole number: a negative one into an unsigned member reads as 0, a fraction is cut to its
// whole part, and one out of range reads as 0 (such a figure is nonsense anyway).
template <typename T>
bool read_whole(const nlohmann::json& value, T& out) {
  if (value.is_number_unsigned() || value.is_number_integer()) {
    if constexpr (std::is_unsigned_v<T>) {
      out = value.is_number_unsigned() || value.get<std::int64_t>() >= 0 ? value.get<T>() : T{0};
    } else {
      out = value.get<T>();
    }
    return true;
  }
  if (!value.is_number_float()) return false;
  const double v = value.get<double>();
  if (!std::isfinite(v)) return false;
  const bool fits = v >= double(std::numeric_limits<T>::min()) && v < double(std::numeric_limits<T>::max());
  out = fits ? static_cast<T>(v) : T{0};
  return true;
}

}  // namespace record_detail

// Reads `value` into `out` when it has a fitting type; returns whether it did. `out` is left
// as it was otherwise.
template <typename T>
bool read_value(const nlohmann::json& value, T& out) {
  using nlohmann::json;
  if constexpr (std::is_same_v<T, json>) {
    out = value;
    return true;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!value.is_boolean()) return false;
    out = value.get<bool>();
    return true;
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!value.is_number()) return false;
    out = value.get<T>();
    return true;
  } else if constexpr (std::is_integral_v<T>) {
    return record_detail::read_whole(value, out);
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!value.is_string()) return false;
    out = value.get<std::string>();
    return true;
  } else if constexpr (record_detail::is_optional<T>::value) {
    typename T::value_type inner{};
    if (value.is_null() || !read_value(value, inner)) return false;
    out = std::move(inner);
    return true;
  } else if constexpr (record_detail::is_vector<T>::value) {
    if (!value.is_array()) return false;
    out.clear();
    for (const auto& element : value) {
      typename T::value_type item{};
      read_value(element, item);  // a malformed element keeps its place, at its defaults
      out.push_back(std::move(item));
    }
    return true;
  } else if constexpr (record_detail::is_string_map<T>::value) {
    if (!value.is_object()) return false;
    out.clear();
    for (const auto& [key, element] : value.items()) {
      typename T::mapped_type item{};
      if (read_value(element, item)) out.emplace(key, std::move(item));
    }
    return true;
  } else {
    // A record: its own from_json, which is tolerant in turn.
    if (!value.is_object()) return false;
    value.get_to(out);
    return true;
  }
}

// How a member is written: a double with a whole value as an integer (120, not 120.0), so
// that a figure reads the same whichever side of the conversion it passed through.
template <typename T>
nlohmann::json write_value(const T& value) {
  if constexpr (std::is_floating_point_v<T>) {
    constexpr double exact = 9007199254740992.0;  // 2^53: every whole double below is exact
    if (std::isfinite(value) && value == std::floor(value) && std::abs(value) < exact) {
      if (value >= 0) return static_cast<std::uint64_t>(value);
      return static_cast<std::int64_t>(value);
    }
    return value;
  } else if constexpr (record_detail::is_vector<T>::value) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& item : value) out.push_back(write_value(item));
    return out;
  } else {
    return value;
  }
}

template <typename Record>
void write_fields(nlohmann::json& j, const Record& record) {
  std::apply(
      [&](const auto&... f) {
        const auto one = [&](const auto& fd) {
          const auto& member = record.*(fd.member);
          using member_type = std::remove_cvref_t<decltype(member)>;
          if constexpr (record_detail::is_optional<member_type>::value) {
            if (member) {
              j[std::string(fd.key)] = write_value(*member);
            } else if (fd.when == written::null_when_unset) {
              j[std::string(fd.key)] = nullptr;
            }
          } else {
            // Only plain values: a vector's operator== exists even when its elements have none.
            if constexpr (std::is_arithmetic_v<member_type> || std::is_same_v<member_type, std::string>) {
              if (fd.when == written::unless_default && member == member_type{}) return;
            }
            j[std::string(fd.key)] = write_value(member);
          }
        };
        (one(f), ...);
      },
      fields_of(std::type_identity<Record>{}));
}

template <typename Record>
void read_fields(const nlohmann::json& j, Record& record) {
  if (!j.is_object()) return;
  std::apply(
      [&](const auto&... f) {
        const auto one = [&](const auto& fd) {
          if (const auto it = j.find(fd.key); it != j.end()) read_value(*it, record.*(fd.member));
        };
        (one(f), ...);
      },
      fields_of(std::type_identity<Record>{}));
}

// Defines to_json and from_json of a record that has a field table.
#define PROCPOOL_RECORD_JSON(Record)                                                              \
  void to_json(nlohmann::json& j, const Record& r) {                                              \
    j = nlohmann::json::object();                                                                 \
    ::procpool::harness::write_fields(j, r);                                                      \
  }                                                                                               \
  void from_json(const nlohmann::json& j, Record& r) { ::procpool::harness::read_fields(j, r); }

// Whether `key` is one of the record's fields.
template <typename Record>
bool is_field(std::string_view key) {
  return std::apply([&](const auto&... f) { return ((f.key == key) || ...); },
                    fields_of(std::type_identity<Record>{}));
}

}  // namespace procpool::harness
