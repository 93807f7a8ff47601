#include "statistics.hpp"

namespace procpool::harness {

std::optional<usl_fit> fit_usl(std::span<const usl_point>) { return std::nullopt; }
double usl_throughput(const usl_fit& fit, double n) noexcept {
  return fit.lambda * n / (1 + fit.sigma * (n - 1) + fit.kappa * n * (n - 1));
}
std::optional<mann_whitney_result> mann_whitney_u(std::span<const double>, std::span<const double>) {
  return std::nullopt;
}
double fisher_exact_two_sided(std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t) { return 1; }
double fisher_exact_greater(std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t) { return 1; }
double chi_square_independence(std::span<const std::pair<std::uint64_t, std::uint64_t>>) { return 1; }
double erlang_c_result::response_quantile_s(double) const { return 0; }
erlang_c_result erlang_c(double, double, std::size_t) { return {}; }
std::optional<std::size_t> erlang_c_servers_for(double, double, double, double, std::size_t) {
  return std::nullopt;
}

}  // namespace procpool::harness
