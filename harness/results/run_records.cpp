#include "results/run_records.hpp"

#include "run/record_fields.hpp"

namespace procpool::harness {

using json = nlohmann::json;

constexpr auto fields_of(std::type_identity<usl_point_record>) {
  return std::tuple{field{"n", &usl_point_record::n}, field{"throughput", &usl_point_record::throughput}};
}

constexpr auto fields_of(std::type_identity<usl_analysis>) {
  using r = usl_analysis;
  return std::tuple{field{"axis", &r::axis},
                    field{"group", &r::group},
                    field{"points", &r::points},
                    field{"lambda", &r::lambda},
                    field{"sigma", &r::sigma},
                    field{"kappa", &r::kappa},
                    field{"r_squared", &r::r_squared},
                    field{"relative_error", &r::relative_error},
                    field{"peak_n", &r::peak_n, written::null_when_unset},
                    field{"peak_throughput", &r::peak_throughput, written::null_when_unset},
                    field{"verdict", &r::verdict, written::null_when_unset},
                    field{"evidence", &r::evidence}};
}

constexpr auto fields_of(std::type_identity<axis_row>) {
  using r = axis_row;
  return std::tuple{field{"value", &r::value}, field{"requests", &r::requests},
                    field{"timeouts", &r::timeouts}, field{"rate", &r::rate}};
}

constexpr auto fields_of(std::type_identity<axis_analysis>) {
  using r = axis_analysis;
  return std::tuple{field{"key", &r::key}, field{"kind", &r::kind}, field{"rows", &r::rows},
                    field{"p_value", &r::p_value}, field{"depends", &r::depends}};
}

constexpr auto fields_of(std::type_identity<run_analyses>) {
  return std::tuple{field{"usl", &run_analyses::usl}, field{"axes", &run_analyses::axes}};
}

constexpr auto fields_of(std::type_identity<run_summary>) {
  using r = run_summary;
  return std::tuple{field{"cases", &r::cases},       field{"requests", &r::requests},
                    field{"failed", &r::failed},     field{"timeouts", &r::timeouts},
                    field{"verdicts", &r::verdicts}, field{"families", &r::families}};
}

PROCPOOL_RECORD_JSON(usl_point_record)
PROCPOOL_RECORD_JSON(usl_analysis)
PROCPOOL_RECORD_JSON(axis_row)
PROCPOOL_RECORD_JSON(axis_analysis)
PROCPOOL_RECORD_JSON(run_analyses)
PROCPOOL_RECORD_JSON(run_summary)

run_analyses analyses_of(const json& results) {
  run_analyses a;
  if (const auto it = results.is_object() ? results.find("analyses") : results.end(); it != results.end()) {
    read_value(*it, a);
  }
  return a;
}

}  // namespace procpool::harness
