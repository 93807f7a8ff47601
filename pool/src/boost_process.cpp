// Boost.Process v2 (1.81) is not header-only: its out-of-line parts are compiled once, here.
#include <boost/process/v2/src.hpp>
